//! EMMET (Gupta et al. 2024, equality-constrained mass editing: batched ROME, reference §8):
//! its update math as a pure f64 tensor function ([`emmet_update`], property-tested in
//! `tests/alphaedit_emmet.rs`), and the method on a model ([`compute_emmet`]: MEMIT's
//! targets, keys and residuals with that solve per layer).

use gpt_core::progress::ProgressFn;
use gpt_core::tch::{Kind, Tensor};
use gpt_core::{EditableModel, ResumableModel, Tokenizer};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::hparams::RomeHparams;
use crate::layered::{compute_layered, LayeredEdit, LayeredSpec};
use crate::memit::{check_per_layer, MemitHparams};
use crate::request::RewriteRequest;
use crate::target_cache::TargetCache;
use crate::update::{check_shape, f64_of, solve_spd_checked};

/// The first stage [`compute_emmet`] reports: the target residual `z` of each request.
pub const TARGETS_STAGE: &str = "EMMET targets";
/// The second stage [`compute_emmet`] reports: the update of each edited layer.
pub const LAYERS_STAGE: &str = "EMMET layers";

/// EMMET's hyperparameters (`hparams/EMMET/*.json` of the unified-model-editing repository).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmmetHparams {
    /// The edited layers (their MLP output projections), ascending.
    pub layers: Vec<usize>,
    /// The z optimisation, as MEMIT's (`layer` is ignored: z sits at the last layer).
    pub z: RomeHparams,
    /// `w`, the weight of the key covariance in `C' = w·C + update_norm_lambda·I`.
    pub mom2_update_weight: f64,
    /// The ridge on `D = KᵀC'⁻¹K` when a batch has more than one key.
    pub emmet_lambda: f64,
    /// The ridge on `C'`.
    pub update_norm_lambda: f64,
}

impl EmmetHparams {
    fn with(memit: MemitHparams, layer: usize, mom2_update_weight: f64) -> Self {
        let mut z = memit.z;
        z.layer = layer;
        Self {
            layers: vec![layer],
            z,
            mom2_update_weight,
            emmet_lambda: 0.1,
            update_norm_lambda: 0.0,
        }
    }

    /// GPT-2 XL: layer 17 only, w 1000, emmet_lambda 0.1, update_norm_lambda 0, MEMIT's z
    /// settings (clamp 0.75, 20 steps).
    pub fn gpt2_xl() -> Self {
        Self::with(MemitHparams::gpt2_xl(), 17, 1000.0)
    }

    /// GPT-J: layer 5 only, w 10000, MEMIT's z settings (25 steps).
    pub fn gpt_j() -> Self {
        Self::with(MemitHparams::gpt_j(), 5, 10_000.0)
    }

    /// Llama-2-7B: layer 5 only, w 1, z as MEMIT's Llama values (clamp 4, 25 steps, weight
    /// decay 1e-3).
    pub fn llama_7b() -> Self {
        Self::with(MemitHparams::llama_7b(), 5, 1.0)
    }

    /// SmolLM2-135M (this project's choice; no reference file): ROME's layer 4 only, GPT-2
    /// XL's other values.
    pub fn smollm2() -> Self {
        Self::with(MemitHparams::gpt2_xl(), 4, 1000.0)
    }
}

/// The result of an EMMET run: one dense change per layer and how they were found.
pub type EmmetEdit = LayeredEdit;

/// Computes EMMET's changes for all `requests` together (never leaving the model changed).
/// `cs` holds `C = E[k kᵀ]` of each edited layer, in `hp.layers` order; `templates` are the
/// context templates (the bare `"{}"` first). `progress` hears of [`TARGETS_STAGE`] and then
/// [`LAYERS_STAGE`], as [`compute_memit`](crate::compute_memit)'s.
///
/// # Errors
/// Malformed requests, layers out of range or not ascending, statistics of the wrong count
/// or shape, a singular `C'` or `D` (e.g. two requests with the same key and
/// `emmet_lambda = 0`), model errors; [`Error::Cancelled`] when `progress` stops it (the
/// model is left as it was).
pub fn compute_emmet<M: EditableModel + ResumableModel + ?Sized>(
    model: &mut M,
    tokenizer: &Tokenizer,
    requests: &[RewriteRequest],
    hp: &EmmetHparams,
    cs: &[Tensor],
    templates: &[String],
    progress: &mut ProgressFn<'_>,
) -> Result<EmmetEdit> {
    compute_emmet_cached(
        model, tokenizer, requests, hp, cs, templates, progress, None,
    )
}

/// [`compute_emmet`] with target residuals looked up in and stored to `cache`.
#[allow(clippy::too_many_arguments)]
pub fn compute_emmet_cached<M: EditableModel + ResumableModel + ?Sized>(
    model: &mut M,
    tokenizer: &Tokenizer,
    requests: &[RewriteRequest],
    hp: &EmmetHparams,
    cs: &[Tensor],
    templates: &[String],
    progress: &mut ProgressFn<'_>,
    cache: Option<&TargetCache>,
) -> Result<EmmetEdit> {
    let spec = LayeredSpec {
        method: "EMMET",
        targets_stage: TARGETS_STAGE,
        layers_stage: LAYERS_STAGE,
        layers: &hp.layers,
        z: &hp.z,
        cache,
        keys_after: false,
        check: &|| check_per_layer("statistics", cs.len(), &hp.layers),
    };
    let mut solve = |i: usize, keys: &Tensor, resid: &Tensor| -> Result<Tensor> {
        let c = cs
            .get(i)
            .ok_or_else(|| Error::InvalidInput(format!("no statistics for edited layer {i}")))?;
        emmet_update(
            c,
            hp.mom2_update_weight,
            hp.update_norm_lambda,
            hp.emmet_lambda,
            keys,
            resid,
        )
    };
    let run = compute_layered(
        model, tokenizer, requests, &spec, templates, &mut solve, progress,
    )?;
    Ok(run.into())
}

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
