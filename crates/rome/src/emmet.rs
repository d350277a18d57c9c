//! EMMET's update math (Gupta et al. 2024, equality-constrained mass editing: batched ROME)
//! as a pure f64 tensor function. No model needed; property-tested in
//! `tests/alphaedit_emmet.rs`.

use gpt_core::tch::{Kind, Tensor};

use crate::error::{Error, Result};
use crate::update::{check_shape, f64_of, solve_spd_checked};

/// EMMET's update for one layer:
///
/// `C' = w·C + update_norm_lambda·I`, `D = Kᵀ C'⁻¹ K (+ emmet_lambda·I when n > 1)`,
/// `Δ = R D⁻¹ Kᵀ C'⁻¹`, returned as the dense `Δ: [d_out, d_k]` (f64, on `c`'s device).
///
/// - `c: [d_k, d_k]`: the key second moment `E[k kᵀ]`;
/// - `mom2_update_weight`: `w` (1000 in the GPT-2 XL preset);
/// - `update_norm_lambda`: a ridge on `C'` (0 in the preset);
/// - `emmet_lambda`: a ridge on `D` against ill-conditioned batches, used only with more
///   than one key (0.1 in the preset);
/// - `keys: [d_k, n]`: `K`, one column per key;
/// - `residuals: [d_out, n]`: `R`, the change wanted at each key (already divided by the
///   layers remaining).
///
/// With `emmet_lambda = 0` (or one key) the edit is an equality constraint:
/// `Δ K = R` exactly (for `n ≤ d_k` independent keys), and `Δ` is the change of least
/// `C'`-norm `tr(Δ C' Δᵀ)` that achieves it. With one key it is ROME's rank-one update with
/// `C'` ([`rank_one_update`](crate::rank_one_update)`(C', k, k, r)`). With
/// `emmet_lambda > 0`, `Δ K = R D₀ (D₀ + emmet_lambda·I)⁻¹` (`D₀ = KᵀC'⁻¹K`): the keys move
/// toward their targets but not all the way.
///
/// Both systems are solved by Cholesky ([`solve_spd_checked`]: [`solve_spd`](crate::solve_spd)
/// with a sharper condition estimate). Unlike the reference, which falls back to a
/// pseudo-inverse when `D` cannot be inverted, a singular or ill-conditioned `C'` or `D`
/// (dependent keys, more keys than dimensions with `emmet_lambda = 0`) is an error.
///
/// # Errors
/// Shapes that do not fit, no keys, or a weight or λ that is negative or not finite;
/// [`Error::NotPositiveDefinite`] or [`Error::IllConditioned`] when `C'` or `D` is singular
/// or nearly so.
pub fn emmet_update(
    c: &Tensor,
    mom2_update_weight: f64,
    update_norm_lambda: f64,
    emmet_lambda: f64,
    keys: &Tensor,
    residuals: &Tensor,
) -> Result<Tensor> {
    let d_k = c.size().first().copied().unwrap_or(0);
    check_shape("C", c, &[d_k, d_k], "[d_k, d_k]")?;
    let n = keys.size().get(1).copied().unwrap_or(0);
    check_shape("keys", keys, &[d_k, n], "[d_k, n]")?;
    let d_out = residuals.size().first().copied().unwrap_or(0);
    check_shape(
        "residuals",
        residuals,
        &[d_out, n],
        "[d_out, n] (n = number of keys)",
    )?;
    if n == 0 {
        return Err(Error::InvalidInput("EMMET needs at least one key".into()));
    }
    for (name, value) in [
        ("mom2_update_weight", mom2_update_weight),
        ("update_norm_lambda", update_norm_lambda),
        ("emmet_lambda", emmet_lambda),
    ] {
        if !(value.is_finite() && value >= 0.0) {
            return Err(Error::InvalidInput(format!(
                "EMMET's {name} = {value} must be finite and >= 0"
            )));
        }
    }
    let device = c.device();
    let k = f64_of(keys)?.f_to_device(device)?;
    let eye = |m: i64| Tensor::f_eye(m, (Kind::Double, device));
    let c_prime = f64_of(c)?
        .f_mul_scalar(mom2_update_weight)?
        .f_add(&eye(d_k)?.f_mul_scalar(update_norm_lambda)?)?;
    let c_inv_k = solve_spd_checked(&c_prime, &k, "EMMET's C' = w·C + update_norm_lambda·I")?; // [d_k, n]
    let d = k.f_transpose(0, 1)?.f_matmul(&c_inv_k)?; // [n, n]
                                                      // Symmetrise: Kᵀ(C'⁻¹K) is symmetric only up to rounding, and Cholesky reads one triangle.
    let mut d = d.f_add(&d.f_transpose(0, 1)?)?.f_div_scalar(2.0)?;
    if n > 1 {
        d = d.f_add(&eye(n)?.f_mul_scalar(emmet_lambda)?)?;
    }
    // D⁻¹ Kᵀ C'⁻¹ = D⁻¹ (C'⁻¹K)ᵀ, C' being symmetric.
    let adj = solve_spd_checked(
        &d,
        &c_inv_k.f_transpose(0, 1)?,
        "EMMET's D = KᵀC'⁻¹K (+ emmet_lambda·I)",
    )?; // [n, d_k]
    Ok(f64_of(residuals)?.f_to_device(device)?.f_matmul(&adj)?)
}
