//! The update math of ROME and MEMIT as pure tensor functions: no model needed, so users can
//! property-test it (see `tests/update_math.rs`). Everything is computed in f64; results
//! are f64 (an [`EditableModel`](gpt_core::EditableModel) converts a delta to its weight's
//! dtype when applying it). Linear systems are solved by Cholesky factorisation (LU for the
//! non-symmetric ones of AlphaEdit, [`solve_general`]), never by an explicit inverse. The
//! AlphaEdit and EMMET updates built on these solvers live in [`crate::nullspace`] and
//! [`crate::emmet`].

use gpt_core::tch::{Kind, Tensor};
use gpt_core::{WeightDelta, WeightId};

use crate::error::{Error, Result};

pub(crate) fn f64_of(t: &Tensor) -> Result<Tensor> {
    Ok(t.f_to_kind(Kind::Double)?)
}

pub(crate) fn check_shape(
    what: &'static str,
    t: &Tensor,
    expected: &[i64],
    words: &str,
) -> Result<()> {
    if t.size() != expected {
        return Err(Error::Shape {
            what,
            expected: words.to_string(),
            got: t.size(),
        });
    }
    Ok(())
}

/// The largest condition-number estimate [`solve_spd`] accepts.
pub const MAX_CONDITION: f64 = 1e14;

/// Solves `A x = b` for a symmetric positive definite `A: [n, n]` and `b: [n]` or `[n, m]`
/// by Cholesky factorisation (`A = L Lᵀ`), in f64. `what` names `A` in errors.
///
/// # Errors
/// [`Error::Shape`] for shapes that do not fit; [`Error::NotPositiveDefinite`] when the
/// factorisation fails (a singular or indefinite `A`); [`Error::IllConditioned`] when
/// `(max Lᵢᵢ / min Lᵢᵢ)²` exceeds [`MAX_CONDITION`] (a nearly singular `A`: statistics over too
/// little text; MEMIT's `λC + KKᵀ` is regularised by `λ`).
pub fn solve_spd(a: &Tensor, b: &Tensor, what: &'static str) -> Result<Tensor> {
    cholesky_solve(a, b, what, false)
}

/// [`solve_spd`] with a second, sharper condition estimate: also `‖A‖₁ · est(‖A⁻¹‖₁)` by
/// Hager's and Higham's estimator (LAPACK's `pocon`: a few more solves with the factor,
/// `O(n²)` each). The pivot ratio alone can miss a singular `A` that Cholesky accepted
/// because rounding left its zero eigenvalues at `+1e-16` (estimate `1e11`, true condition
/// `1e16`); this refuses it. Used by EMMET; [`solve_spd`] keeps the pivot ratio only so that
/// ROME's and MEMIT's results stay as they were.
///
/// # Errors
/// As [`solve_spd`].
pub fn solve_spd_checked(a: &Tensor, b: &Tensor, what: &'static str) -> Result<Tensor> {
    cholesky_solve(a, b, what, true)
}

/// The Cholesky solve of [`solve_spd`] (`thorough`: and [`solve_spd_checked`]).
fn cholesky_solve(a: &Tensor, b: &Tensor, what: &'static str, thorough: bool) -> Result<Tensor> {
    let n = a.size().first().copied().unwrap_or(0);
    check_shape(what, a, &[n, n], "[n, n]")?;
    if b.size().first() != Some(&n) || b.dim() > 2 || b.dim() == 0 {
        return Err(Error::Shape {
            what: "right-hand side",
            expected: format!("[{n}] or [{n}, m]"),
            got: b.size(),
        });
    }
    let (l, info) = f64_of(a)?.f_linalg_cholesky_ex(false, false)?;
    let info = info.f_int64_value(&[])?;
    if info != 0 {
        return Err(Error::NotPositiveDefinite {
            what,
            failed_at: (info > 0).then_some(info),
        });
    }
    // (max Lᵢᵢ / min Lᵢᵢ)² bounds the condition number from below: past ~1e14 an f64
    // solve keeps about two correct digits, so the "update" would be noise.
    let diag = l.f_diagonal(0, 0, 1)?;
    let (hi, lo) = (
        diag.f_max()?.f_double_value(&[])?,
        diag.f_min()?.f_double_value(&[])?,
    );
    let mut condition = (hi / lo).powi(2);
    if thorough && condition.is_finite() && n > 0 {
        let solve = |x: &Tensor, _adjoint: bool| -> Result<Tensor> {
            Ok(x.f_unsqueeze(1)?
                .f_cholesky_solve(&l, false)?
                .f_squeeze_dim(1)?)
        };
        let a_norm = one_norm_of_matrix(&f64_of(a)?)?;
        condition = condition.max(a_norm * inverse_one_norm_estimate(&solve, n, l.device())?);
    }
    if !(condition.is_finite() && condition <= MAX_CONDITION) {
        return Err(Error::IllConditioned { what, condition });
    }
    let column = b.dim() == 1;
    let b2 = if column {
        f64_of(b)?.f_unsqueeze(1)?
    } else {
        f64_of(b)?
    };
    let x = b2.f_cholesky_solve(&l, false)?;
    if !bool::try_from(x.f_isfinite()?.f_all()?)? {
        return Err(Error::NotPositiveDefinite {
            what,
            failed_at: None,
        });
    }
    Ok(if column { x.f_squeeze_dim(1)? } else { x })
}

/// `‖A‖₁`, the largest column sum of `|A|`.
fn one_norm_of_matrix(a: &Tensor) -> Result<f64> {
    Ok(a.f_abs()?
        .f_sum_dim_intlist([0i64].as_slice(), false, Kind::Double)?
        .f_max()?
        .f_double_value(&[])?)
}

/// A lower estimate of `‖A⁻¹‖₁` for an `A: [n, n]` given by `solve(x, adjoint)` = `A⁻¹x`
/// (`A⁻ᵀx` when `adjoint`) on vectors `[n]` (Hager 1984, Higham 1988; LAPACK's `lacn2`):
/// power-like iterations with `A⁻¹` and `A⁻ᵀ` on ±1 vectors, then the alternating test
/// vector `xᵢ = (−1)ⁱ(1 + i/(n−1))`. Non-finite when `A` is singular.
fn inverse_one_norm_estimate(
    solve: &dyn Fn(&Tensor, bool) -> Result<Tensor>,
    n: i64,
    device: gpt_core::tch::Device,
) -> Result<f64> {
    let one_norm =
        |y: &Tensor| -> Result<f64> { Ok(y.f_abs()?.f_sum(Kind::Double)?.f_double_value(&[])?) };
    // sign with sign(0) = +1, so that ξ is a ±1 vector.
    let signs = |y: &Tensor| -> Result<Tensor> {
        Ok(y.f_ge(0.0)?
            .f_to_kind(Kind::Double)?
            .f_mul_scalar(2.0)?
            .f_sub_scalar(1.0)?)
    };
    let mut x = Tensor::f_ones([n], (Kind::Double, device))?.f_div_scalar(n as f64)?;
    let mut y = solve(&x, false)?;
    let mut estimate = one_norm(&y)?;
    for iteration in 0..5 {
        if !estimate.is_finite() {
            return Ok(f64::INFINITY);
        }
        let z = solve(&signs(&y)?, true)?;
        let j = z.f_abs()?.f_argmax(0, false)?.f_int64_value(&[])?;
        let z_max = z.f_abs()?.f_max()?.f_double_value(&[])?;
        // Converged when no unit vector promises a larger ‖A⁻¹x‖₁ (not tested on the first
        // step, whose x is not a unit vector).
        if iteration > 0 && z_max <= z.f_dot(&x)?.f_double_value(&[])? {
            break;
        }
        let mut unit = vec![0.0f64; usize::try_from(n).unwrap_or(0)];
        if let Some(e) = usize::try_from(j).ok().and_then(|j| unit.get_mut(j)) {
            *e = 1.0;
        }
        x = Tensor::f_from_slice(&unit)?.f_to_device(device)?;
        y = solve(&x, false)?;
        let next = one_norm(&y)?;
        if next <= estimate {
            break;
        }
        estimate = next;
    }
    // Higham's safeguard against the counter-examples of the iteration above.
    let alternating: Vec<f64> = (0..n)
        .map(|i| {
            let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
            sign * (1.0 + i as f64 / ((n - 1).max(1)) as f64)
        })
        .collect();
    let alt = solve(
        &Tensor::f_from_slice(&alternating)?.f_to_device(device)?,
        false,
    )?;
    let alternative = 2.0 * one_norm(&alt)? / (3.0 * n as f64);
    // f64::max ignores a NaN, so check both: a non-finite solve means a singular A.
    if !(estimate.is_finite() && alternative.is_finite()) {
        return Ok(f64::INFINITY);
    }
    Ok(estimate.max(alternative))
}

/// Solves `A x = b` for a general square `A: [n, n]` (not necessarily symmetric) and
/// `b: [n]` or `[n, m]` by LU factorisation with partial pivoting (`P A = L U`, what
/// `torch.linalg.solve` does), in f64. `what` names `A` in errors.
///
/// The condition number is estimated from the factors without forming `A⁻¹`: the larger of
/// `max |Uᵢᵢ| / min |Uᵢᵢ|` and `‖A‖₁ · est(‖A⁻¹‖₁)`, the second by Hager's and Higham's
/// estimator (LAPACK's `gecon`: a few solves with `A` and `Aᵀ`, `O(n²)` each). Both are lower
/// bounds of the true 1-norm condition number, usually within a small factor of it.
///
/// # Errors
/// [`Error::Shape`] for shapes that do not fit; [`Error::InvalidInput`] for a non-finite
/// `A`; [`Error::IllConditioned`] when `A` is singular (a zero pivot: the condition is
/// reported as infinite), when the condition estimate exceeds [`MAX_CONDITION`] (a nearly
/// singular `A`), or when the solution is not finite.
pub fn solve_general(a: &Tensor, b: &Tensor, what: &'static str) -> Result<Tensor> {
    let n = a.size().first().copied().unwrap_or(0);
    check_shape(what, a, &[n, n], "[n, n]")?;
    if b.size().first() != Some(&n) || b.dim() > 2 || b.dim() == 0 {
        return Err(Error::Shape {
            what: "right-hand side",
            expected: format!("[{n}] or [{n}, m]"),
            got: b.size(),
        });
    }
    let a = f64_of(a)?;
    if !bool::try_from(a.f_isfinite()?.f_all()?)? {
        return Err(Error::InvalidInput(format!(
            "{what} has non-finite entries"
        )));
    }
    let (lu, pivots, info) = Tensor::f_linalg_lu_factor_ex(&a, true, false)?;
    if n > 0 {
        let diag = lu.f_diagonal(0, 0, 1)?.f_abs()?;
        let (hi, lo) = (
            diag.f_max()?.f_double_value(&[])?,
            diag.f_min()?.f_double_value(&[])?,
        );
        // info > 0: an exactly zero pivot, so `A` is singular.
        let condition = if info.f_int64_value(&[])? != 0 || lo == 0.0 {
            f64::INFINITY
        } else {
            let solve = |x: &Tensor, adjoint: bool| -> Result<Tensor> {
                Ok(
                    Tensor::f_linalg_lu_solve(&lu, &pivots, &x.f_unsqueeze(1)?, true, adjoint)?
                        .f_squeeze_dim(1)?,
                )
            };
            let estimate = inverse_one_norm_estimate(&solve, n, lu.device())?;
            (hi / lo).max(one_norm_of_matrix(&a)? * estimate)
        };
        if !(condition.is_finite() && condition <= MAX_CONDITION) {
            return Err(Error::IllConditioned { what, condition });
        }
    }
    let column = b.dim() == 1;
    let b2 = if column {
        f64_of(b)?.f_unsqueeze(1)?
    } else {
        f64_of(b)?
    };
    let x = Tensor::f_linalg_lu_solve(&lu, &pivots, &b2, true, false)?;
    if !bool::try_from(x.f_isfinite()?.f_all()?)? {
        return Err(Error::IllConditioned {
            what,
            condition: f64::INFINITY,
        });
    }
    Ok(if column { x.f_squeeze_dim(1)? } else { x })
}

/// A rank-one change `ΔW = left ⊗ right` (`left: [out]`, `right: [in]`), f64.
#[derive(Debug)]
pub struct RankOneUpdate {
    /// `[out]`: the residual scaled by the denominator, `(v − W k) / (uᵀ k)`.
    pub left: Tensor,
    /// `[in]`: the direction `u = C⁻¹ k_dir`.
    pub right: Tensor,
}

impl RankOneUpdate {
    /// The dense change `[out, in]`.
    ///
    /// # Errors
    /// libtorch errors only.
    pub fn dense(&self) -> Result<Tensor> {
        Ok(self.left.f_outer(&self.right)?)
    }

    /// As a [`WeightDelta`] of `target`.
    pub fn into_delta(self, target: WeightId) -> WeightDelta {
        WeightDelta::RankOne {
            target,
            u: self.left,
            v: self.right,
        }
    }

    /// `‖ΔW‖_F = ‖left‖·‖right‖`.
    ///
    /// # Errors
    /// libtorch errors only.
    pub fn frobenius_norm(&self) -> Result<f64> {
        let l = self.left.f_norm()?.f_double_value(&[])?;
        let r = self.right.f_norm()?.f_double_value(&[])?;
        Ok(l * r)
    }
}

/// ROME's rank-one update (Meng et al. 2022, Eq. 2):
///
/// `u = C⁻¹ k_dir`, `ΔW = residual · uᵀ / (uᵀ k)`, so that `(W + ΔW) k = W k + residual`
/// exactly, and every key `x` with `uᵀ x = 0` keeps `(W + ΔW) x = W x`.
///
/// - `c: [in, in]`: the uncentred second moment of keys, `E[k kᵀ]` (symmetric positive
///   definite);
/// - `k_dir: [in]`: the key that fixes the direction (ROME: `k*`, the template average);
/// - `k: [in]`: the key whose output is set (original ROME: the bare prompt's key; r-ROME:
///   `k*` too — with `k = k_dir` the update is the minimum-norm one in the `C` metric,
///   `tr(ΔW C ΔWᵀ)`, among all with `ΔW k* = residual`);
/// - `residual: [out]`: `v* − (W k + b)`, the change wanted at `k`.
///
/// # Errors
/// Shapes that do not fit; [`Error::NotPositiveDefinite`] for a singular `C`;
/// [`Error::Degenerate`] when `uᵀk` is (nearly) zero relative to `‖u‖‖k‖`.
pub fn rank_one_update(
    c: &Tensor,
    k_dir: &Tensor,
    k: &Tensor,
    residual: &Tensor,
) -> Result<RankOneUpdate> {
    let d_in = c.size().first().copied().unwrap_or(0);
    check_shape("C", c, &[d_in, d_in], "[d_in, d_in]")?;
    check_shape("k_dir", k_dir, &[d_in], "[d_in]")?;
    check_shape("k", k, &[d_in], "[d_in]")?;
    if residual.dim() != 1 {
        return Err(Error::Shape {
            what: "residual",
            expected: "[d_out]".into(),
            got: residual.size(),
        });
    }
    let u = solve_spd(c, k_dir, "the key second moment C")?;
    let k = f64_of(k)?;
    let denominator = u.f_dot(&k)?.f_double_value(&[])?;
    let scale = u.f_norm()?.f_double_value(&[])? * k.f_norm()?.f_double_value(&[])?;
    if !denominator.is_finite() || denominator.abs() <= 1e-12 * scale.max(f64::MIN_POSITIVE) {
        return Err(Error::Degenerate { denominator });
    }
    Ok(RankOneUpdate {
        left: f64_of(residual)?.f_div_scalar(denominator)?,
        right: u,
    })
}

/// MEMIT's batched update for one layer (Meng et al. 2023, Eq. 14):
///
/// `ΔW = R Kᵀ (λ C + K Kᵀ)⁻¹`, the minimiser of `‖ΔW K − R‖²_F + λ tr(ΔW C ΔWᵀ)` — the
/// residuals `R: [out, n]` are written at the keys `K: [in, n]` while keys distributed as
/// `C: [in, in]` (their second moment) change as little as possible; `λ` is MEMIT's
/// `mom2_update_weight`. Returns the dense `[out, in]` change, f64.
///
/// With one key and `λ → 0` this is ROME's update with `k_dir = k`; for any `λ` it is that
/// update scaled by `kᵀC⁻¹k / (λ + kᵀC⁻¹k)`.
///
/// # Errors
/// Shapes that do not fit, a negative or non-finite `λ`, and [`Error::NotPositiveDefinite`]
/// when `λC + KKᵀ` is singular.
pub fn memit_update(c: &Tensor, lambda: f64, keys: &Tensor, residuals: &Tensor) -> Result<Tensor> {
    let d_in = c.size().first().copied().unwrap_or(0);
    check_shape("C", c, &[d_in, d_in], "[d_in, d_in]")?;
    let n = keys.size().get(1).copied().unwrap_or(0);
    check_shape("keys", keys, &[d_in, n], "[d_in, n]")?;
    let d_out = residuals.size().first().copied().unwrap_or(0);
    check_shape(
        "residuals",
        residuals,
        &[d_out, n],
        "[d_out, n] (n = number of keys)",
    )?;
    if !(lambda.is_finite() && lambda >= 0.0) {
        return Err(Error::InvalidInput(format!(
            "the covariance weight λ = {lambda} must be finite and >= 0"
        )));
    }
    let k = f64_of(keys)?;
    let a = f64_of(c)?
        .f_mul_scalar(lambda)?
        .f_add(&k.f_matmul(&k.f_transpose(0, 1)?)?)?;
    let adj_k = solve_spd(&a, &k, "λC + KKᵀ")?; // [in, n]
    Ok(f64_of(residuals)?.f_matmul(&adj_k.f_transpose(0, 1)?)?)
}

/// The uncentred second moment `E[k kᵀ]` as a mergeable running sum: `sum = Σ k kᵀ` (f64)
/// over `count` keys.
#[derive(Debug)]
pub struct SecondMoment {
    /// `[d, d]` f64: `Σ kᵢ kᵢᵀ`.
    pub sum: Tensor,
    /// Number of keys added.
    pub count: u64,
}

impl SecondMoment {
    /// An empty moment of dimension `d` on the CPU.
    ///
    /// # Errors
    /// libtorch errors only.
    pub fn new(d: usize) -> Result<Self> {
        Ok(Self {
            sum: Tensor::f_zeros(
                [d as i64, d as i64],
                (Kind::Double, gpt_core::tch::Device::Cpu),
            )?,
            count: 0,
        })
    }

    /// Adds the rows of `keys: [n, d]` (any dtype or device; accumulated in f64 on the CPU).
    ///
    /// # Errors
    /// [`Error::Shape`] for keys of another dimension.
    pub fn add(&mut self, keys: &Tensor) -> Result<()> {
        let d = self.sum.size().first().copied().unwrap_or(0);
        let n = keys.size().first().copied().unwrap_or(0);
        check_shape("keys", keys, &[n, d], "[n, d]")?;
        let k = keys
            .f_to_device(gpt_core::tch::Device::Cpu)?
            .f_to_kind(Kind::Double)?;
        let _ = self.sum.f_add_(&k.f_transpose(0, 1)?.f_matmul(&k)?)?;
        self.count += n as u64;
        Ok(())
    }

    /// Adds another moment's sums (e.g. a shard computed elsewhere).
    ///
    /// # Errors
    /// [`Error::Shape`] for a moment of another dimension.
    pub fn merge(&mut self, other: &SecondMoment) -> Result<()> {
        check_shape(
            "merged moment",
            &other.sum,
            &self.sum.size(),
            "the same [d, d]",
        )?;
        let _ = self.sum.f_add_(&other.sum)?;
        self.count += other.count;
        Ok(())
    }

    /// `E[k kᵀ] = sum / count`, f64 `[d, d]`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when no key was added.
    pub fn moment(&self) -> Result<Tensor> {
        if self.count == 0 {
            return Err(Error::InvalidInput(
                "the second moment of no keys is undefined".into(),
            ));
        }
        Ok(self.sum.f_div_scalar(self.count as f64)?)
    }
}
