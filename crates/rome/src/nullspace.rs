//! AlphaEdit's update math (Fang et al. 2025) as pure f64 tensor functions: the null-space
//! projector of a layer's key statistics ([`NullSpaceProjector`]), the running sum of the keys
//! of earlier edits ([`KeyHistory`]) and the projected solve ([`alphaedit_update`]). No model
//! needed; property-tested in `tests/alphaedit_emmet.rs`.
//!
//! AlphaEdit writes new facts only along directions the preserved knowledge does not use:
//! the eigenvectors of the key second moment `C = E[k kᵀ]` with (nearly) zero eigenvalue.
//! Every update it returns satisfies `Δ = Δ P`, so a key `k₀` in `C`'s dominant span
//! (`P k₀ = 0`) keeps its output exactly: `(W + Δ) k₀ = W k₀`.

use std::collections::HashMap;
use std::path::Path;

use gpt_core::tch::{Device, Kind, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::st_file;
use crate::update::{check_shape, f64_of, solve_general, SecondMoment};

/// AlphaEdit's `nullspace_threshold` in all three reference presets (GPT-2 XL, GPT-J,
/// Llama3-8B).
pub const REFERENCE_NULLSPACE_THRESHOLD: f64 = 2e-2;

/// The metadata key of a saved projector (JSON of its threshold, kept and dimension).
const PROJECTOR_META_KEY: &str = "factscope.nullspace_projector";
/// The tensor name of a saved projector.
const PROJECTOR_KEY: &str = "projector";
/// The metadata key of a saved key history (JSON of its dimension and count).
const HISTORY_META_KEY: &str = "factscope.key_history";
/// The tensor name of a saved key history's `Σ k kᵀ`.
const HISTORY_KEY: &str = "key_history.sum";

/// Relative asymmetry `max |C − Cᵀ| / max |C|` accepted in a second moment: a moment summed
/// in f32 (the reference's statistics) is symmetric only to about 1e-7.
const SYMMETRY_TOLERANCE: f64 = 1e-5;

fn all_finite(t: &Tensor) -> Result<bool> {
    Ok(bool::try_from(t.f_isfinite()?.f_all()?)?)
}

fn max_abs(t: &Tensor) -> Result<f64> {
    if t.numel() == 0 {
        return Ok(0.0);
    }
    Ok(t.f_abs()?.f_max()?.f_double_value(&[])?)
}

/// AlphaEdit's projector onto the (near) null space of a layer's key second moment:
/// `P = Û Ûᵀ`, `Û` the eigenvectors of `C` whose eigenvalue is below the threshold.
///
/// `P` is `[d, d]` f64, symmetric and idempotent (`P = Pᵀ = P²`) of rank [`kept`](Self::kept).
/// It is computed once per edited layer and can be saved next to the statistics
/// ([`save`](Self::save), or [`matrix`](Self::matrix) with [`from_parts`](Self::from_parts)).
#[derive(Debug)]
pub struct NullSpaceProjector {
    matrix: Tensor,
    threshold: f64,
    kept: usize,
}

#[derive(Serialize, Deserialize)]
struct ProjectorMeta {
    d: usize,
    /// `None` for an infinite threshold ([`NullSpaceProjector::identity`]): JSON has no
    /// infinity.
    threshold: Option<f64>,
    kept: usize,
}

impl NullSpaceProjector {
    /// The projector of the second moment `c: [d, d]` (any dtype; the uncentred `E[k kᵀ]`
    /// normalised by the count, as [`KeyStats::c`](crate::KeyStats::c) returns it): keeps
    /// the eigenvectors `uᵢ` of `C` with `|λᵢ| < threshold` and returns `P = Σ uᵢ uᵢᵀ`, in f64
    /// on `c`'s device.
    ///
    /// The reference takes `svd(C)` and keeps singular values below `nullspace_threshold`;
    /// for a symmetric `C` the singular values are `|λᵢ|`, so this symmetric
    /// eigendecomposition (`linalg_eigh`) keeps the same directions. The threshold is
    /// absolute on the normalised `C`, which is what the reference's `mom2.moment()` is too,
    /// so the reference's number ([`REFERENCE_NULLSPACE_THRESHOLD`]) applies unchanged — but
    /// how many directions it keeps depends on the model's key scale: report
    /// [`kept`](Self::kept).
    ///
    /// # Errors
    /// [`Error::Shape`] for a non-square `c`; [`Error::InvalidInput`] for a threshold that
    /// is not finite and positive, a `c` with non-finite entries, one that is not symmetric
    /// (relative asymmetry above 1e-5), or one with an eigenvalue below `−threshold` (not a
    /// second moment: the kept directions would depend on the sign convention).
    pub fn from_second_moment(c: &Tensor, threshold: f64) -> Result<Self> {
        if !(threshold.is_finite() && threshold > 0.0) {
            return Err(Error::InvalidInput(format!(
                "the null-space threshold {threshold} must be finite and > 0"
            )));
        }
        let d = c.size().first().copied().unwrap_or(0);
        check_shape("C", c, &[d, d], "[d, d]")?;
        let c = f64_of(c)?;
        if !all_finite(&c)? {
            return Err(Error::InvalidInput(
                "the key second moment C has non-finite entries".into(),
            ));
        }
        let ct = c.f_transpose(0, 1)?;
        let asymmetry = max_abs(&c.f_sub(&ct)?)?;
        let scale = max_abs(&c)?;
        if asymmetry > SYMMETRY_TOLERANCE * scale {
            return Err(Error::InvalidInput(format!(
                "the key second moment C is not symmetric (max |C − Cᵀ| = {asymmetry:e}, max |C| = {scale:e})"
            )));
        }
        // Symmetrise so that the decomposition sees the matrix the caller meant, not
        // whichever triangle rounding favoured.
        let c = c.f_add(&ct)?.f_div_scalar(2.0)?;
        let (eigenvalues, eigenvectors) = c.f_linalg_eigh("L")?;
        if d > 0 {
            let lowest = eigenvalues.f_min()?.f_double_value(&[])?;
            if lowest < -threshold {
                return Err(Error::InvalidInput(format!(
                    "the key second moment C has eigenvalue {lowest:e} < −threshold ({threshold:e}): not a second moment"
                )));
            }
        }
        let keep = eigenvalues.f_abs()?.f_lt(threshold)?;
        let kept = usize::try_from(keep.f_sum(Kind::Int64)?.f_int64_value(&[])?).unwrap_or(0);
        // Û Ûᵀ as U diag(mask) Uᵀ: the dropped columns contribute exact zeros.
        let u_kept = eigenvectors.f_mul(&keep.f_to_kind(Kind::Double)?.f_unsqueeze(0)?)?;
        let matrix = u_kept.f_matmul(&eigenvectors.f_transpose(0, 1)?)?;
        // Exactly symmetric, whatever the matmul's rounding.
        let matrix = matrix
            .f_add(&matrix.f_transpose(0, 1)?)?
            .f_div_scalar(2.0)?;
        Ok(Self {
            matrix,
            threshold,
            kept,
        })
    }

    /// The identity projector on `d` dimensions (everything is null space; `kept = d`,
    /// threshold infinite): with it and no earlier keys [`alphaedit_update`] is MEMIT's solve
    /// with `λC = L2·I`.
    ///
    /// # Errors
    /// libtorch errors only.
    pub fn identity(d: usize) -> Result<Self> {
        Ok(Self {
            matrix: Tensor::f_eye(d as i64, (Kind::Double, Device::Cpu))?,
            threshold: f64::INFINITY,
            kept: d,
        })
    }

    /// A projector from a saved matrix `p: [d, d]` and its metadata (the threshold it was
    /// computed with and how many directions it kept), e.g. [`matrix`](Self::matrix),
    /// [`threshold`](Self::threshold) and [`kept`](Self::kept) of one computed earlier.
    /// Stored as f64 on `p`'s device.
    ///
    /// # Errors
    /// [`Error::Shape`] for a non-square `p`; [`Error::InvalidInput`] for non-finite entries,
    /// a non-symmetric `p` (`max |P − Pᵀ| > 1e-6`; a smaller asymmetry, e.g. of a `P` saved
    /// in f32, is averaged away), a `kept` above `d`, a threshold that is NaN or not positive, or a
    /// trace that differs from `kept` (the trace of a projector is its rank) by more than
    /// `1e-6·d`.
    pub fn from_parts(p: Tensor, threshold: f64, kept: usize) -> Result<Self> {
        let d = p.size().first().copied().unwrap_or(0);
        check_shape("projector P", &p, &[d, d], "[d, d]")?;
        if threshold.is_nan() || threshold <= 0.0 {
            return Err(Error::InvalidInput(format!(
                "the null-space threshold {threshold} must be > 0"
            )));
        }
        if kept as i64 > d {
            return Err(Error::InvalidInput(format!(
                "a projector on {d} dimensions cannot keep {kept}"
            )));
        }
        let p = f64_of(&p)?;
        if !all_finite(&p)? {
            return Err(Error::InvalidInput(
                "the projector P has non-finite entries".into(),
            ));
        }
        let pt = p.f_transpose(0, 1)?;
        let asymmetry = max_abs(&p.f_sub(&pt)?)?;
        // A projector's entries are at most 1 in magnitude; 1e-6 admits one saved in f32
        // (the reference's `null_space_project.pt`), which is then symmetrised.
        if asymmetry > 1e-6 {
            return Err(Error::InvalidInput(format!(
                "the projector P is not symmetric (max |P − Pᵀ| = {asymmetry:e})"
            )));
        }
        let p = p.f_add(&pt)?.f_div_scalar(2.0)?;
        let trace = if d == 0 {
            0.0
        } else {
            p.f_trace()?.f_double_value(&[])?
        };
        if (trace - kept as f64).abs() > 1e-6 * (d.max(1) as f64) {
            return Err(Error::InvalidInput(format!(
                "the projector's trace {trace} is not its rank `kept` = {kept}"
            )));
        }
        Ok(Self {
            matrix: p,
            threshold,
            kept,
        })
    }

    /// How many directions the projector keeps: its rank, the number of eigenvalues of `C`
    /// below the threshold.
    pub fn kept(&self) -> usize {
        self.kept
    }

    /// The dimension `d` of the keys.
    pub fn dim(&self) -> usize {
        usize::try_from(self.matrix.size().first().copied().unwrap_or(0)).unwrap_or(0)
    }

    /// The eigenvalue threshold it was computed with (infinite for [`identity`](Self::identity)).
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// `P`, `[d, d]` f64.
    pub fn matrix(&self) -> &Tensor {
        &self.matrix
    }

    /// A copy of `P`, `[d, d]` f64 (to store it elsewhere; [`from_parts`](Self::from_parts)
    /// takes it back).
    ///
    /// # Errors
    /// libtorch errors only.
    pub fn to_tensor(&self) -> Result<Tensor> {
        Ok(self.matrix.f_detach_copy()?)
    }

    /// `P x` for keys `x: [d]` or `[d, n]` (any dtype; moved to `P`'s device), f64: the part
    /// of each key in the null space.
    ///
    /// # Errors
    /// [`Error::Shape`] for keys of another dimension.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let d = self.matrix.size().first().copied().unwrap_or(0);
        if x.size().first() != Some(&d) || x.dim() > 2 || x.dim() == 0 {
            return Err(Error::Shape {
                what: "keys to project",
                expected: format!("[{d}] or [{d}, n]"),
                got: x.size(),
            });
        }
        let x = f64_of(x)?.f_to_device(self.matrix.device())?;
        Ok(self.matrix.f_matmul(&x)?)
    }

    /// Writes the projector atomically: a safetensors file with the f64 tensor `projector`
    /// and its threshold, `kept` and dimension as JSON under `factscope.nullspace_projector`.
    ///
    /// # Errors
    /// Serialisation or write failures naming the file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let meta = ProjectorMeta {
            d: self.dim(),
            threshold: self.threshold.is_finite().then_some(self.threshold),
            kept: self.kept,
        };
        let json = serde_json::to_string(&meta).map_err(|e| Error::Stats {
            path: path.to_path_buf(),
            reason: format!("cannot serialise metadata: {e}"),
        })?;
        st_file::write(
            path,
            &[(PROJECTOR_KEY.to_string(), &self.matrix)],
            HashMap::from([(PROJECTOR_META_KEY.to_string(), json)]),
        )
    }

    /// Reads a projector written by [`save`](Self::save) (checked as
    /// [`from_parts`](Self::from_parts) checks), on the CPU.
    ///
    /// # Errors
    /// [`Error::Stats`] for an unreadable, truncated or corrupt file, or one without the
    /// metadata or the tensor; [`from_parts`](Self::from_parts)'s errors for an inconsistent
    /// one.
    pub fn load(path: &Path) -> Result<Self> {
        let file = st_file::read(path)?;
        let json = file.meta(PROJECTOR_META_KEY)?;
        let meta: ProjectorMeta = serde_json::from_str(json)
            .map_err(|e| file.error(format!("bad `{PROJECTOR_META_KEY}` metadata: {e}")))?;
        let p = file
            .tensor(PROJECTOR_KEY)?
            .ok_or_else(|| file.error(format!("no tensor `{PROJECTOR_KEY}`")))?;
        let d = meta.d as i64;
        if p.size() != [d, d] {
            return Err(file.error(format!(
                "`{PROJECTOR_KEY}` has shape {:?}, expected [{d}, {d}]",
                p.size()
            )));
        }
        Self::from_parts(p, meta.threshold.unwrap_or(f64::INFINITY), meta.kept)
    }
}

/// The running sum `K_p K_pᵀ = Σ k kᵀ` over the keys of all earlier edit batches of one
/// layer (the reference's `cache_c`): AlphaEdit's memory of what it wrote before, so that a
/// later batch does not overwrite it. Zero at the start; after each batch, add that batch's
/// keys (computed with the model as edited). Saved and loaded for resumable sequential runs.
#[derive(Debug)]
pub struct KeyHistory {
    moment: SecondMoment,
}

#[derive(Serialize, Deserialize)]
struct HistoryMeta {
    d: usize,
    count: u64,
}

impl KeyHistory {
    /// An empty history of keys of dimension `d` (`K_p K_pᵀ = 0`), f64 on the CPU.
    ///
    /// # Errors
    /// libtorch errors only.
    pub fn new(d: usize) -> Result<Self> {
        Ok(Self {
            moment: SecondMoment::new(d)?,
        })
    }

    /// Adds a batch's keys `keys: [d, n]` (one column per key, as [`alphaedit_update`] takes
    /// them; any dtype or device, accumulated in f64 on the CPU): `sum += K Kᵀ`.
    ///
    /// # Errors
    /// [`Error::Shape`] for keys of another dimension.
    pub fn add(&mut self, keys: &Tensor) -> Result<()> {
        let d = self.moment.sum.size().first().copied().unwrap_or(0);
        let n = keys.size().get(1).copied().unwrap_or(0);
        check_shape("keys", keys, &[d, n], "[d, n]")?;
        self.moment.add(&keys.f_transpose(0, 1)?)
    }

    /// `K_p K_pᵀ`, `[d, d]` f64 on the CPU: the `kp_kpt` of [`alphaedit_update`].
    pub fn sum(&self) -> &Tensor {
        &self.moment.sum
    }

    /// How many keys were added.
    pub fn count(&self) -> u64 {
        self.moment.count
    }

    /// The dimension `d` of the keys.
    pub fn dim(&self) -> usize {
        usize::try_from(self.moment.sum.size().first().copied().unwrap_or(0)).unwrap_or(0)
    }

    /// Writes the history atomically: a safetensors file with the f64 tensor
    /// `key_history.sum` and its dimension and count as JSON under `factscope.key_history`.
    ///
    /// # Errors
    /// Serialisation or write failures naming the file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let meta = HistoryMeta {
            d: self.dim(),
            count: self.count(),
        };
        let json = serde_json::to_string(&meta).map_err(|e| Error::Stats {
            path: path.to_path_buf(),
            reason: format!("cannot serialise metadata: {e}"),
        })?;
        st_file::write(
            path,
            &[(HISTORY_KEY.to_string(), &self.moment.sum)],
            HashMap::from([(HISTORY_META_KEY.to_string(), json)]),
        )
    }

    /// Reads a history written by [`save`](Self::save), on the CPU.
    ///
    /// # Errors
    /// [`Error::Stats`] for an unreadable, truncated or corrupt file, one without the
    /// metadata or the tensor, or one whose tensor does not have the recorded shape.
    pub fn load(path: &Path) -> Result<Self> {
        let file = st_file::read(path)?;
        let json = file.meta(HISTORY_META_KEY)?;
        let meta: HistoryMeta = serde_json::from_str(json)
            .map_err(|e| file.error(format!("bad `{HISTORY_META_KEY}` metadata: {e}")))?;
        let sum = file
            .tensor(HISTORY_KEY)?
            .ok_or_else(|| file.error(format!("no tensor `{HISTORY_KEY}`")))?;
        let d = meta.d as i64;
        if sum.size() != [d, d] {
            return Err(file.error(format!(
                "`{HISTORY_KEY}` has shape {:?}, expected [{d}, {d}]",
                sum.size()
            )));
        }
        Ok(Self {
            moment: SecondMoment {
                sum,
                count: meta.count,
            },
        })
    }
}

/// AlphaEdit's update for one layer, solved as the reference solves it:
///
/// `Δᵀ = solve(P (K₁K₁ᵀ + K_pK_pᵀ) + L2·I, P K₁ Rᵀ)`, returned as the dense `Δ: [d_out, d_k]`
/// (f64, on the keys' device).
///
/// - `p`: the layer's [`NullSpaceProjector`] (`[d_k, d_k]`);
/// - `keys: [d_k, n]`: the new keys `K₁`, one column per key;
/// - `residuals: [d_out, n]`: `R`, the change wanted at each key (MEMIT's residual for this
///   layer, already divided by the layers remaining);
/// - `kp_kpt: [d_k, d_k]`: `K_pK_pᵀ`, the keys of all earlier batches ([`KeyHistory::sum`];
///   zeros for the first batch);
/// - `l2`: the reference's `L2` (10 for GPT-2 XL and GPT-J, 1 for Llama3-8B).
///
/// There is no `λC` term: the preserved knowledge enters only through `P`. With `L2 > 0` the
/// solution is the minimiser, among `Δ` with `Δ = ΔP`, of
/// `‖Δ K₁ − R‖²_F + ‖Δ K_p‖²_F + L2 ‖Δ‖²_F` (the paper's form `R K₁ᵀ P (K_pK_pᵀP + K₁K₁ᵀP +
/// L2·I)⁻¹`), so:
/// - `Δ = ΔP`: keys `k₀` with `P k₀ = 0` (`C`'s dominant span) keep their outputs exactly;
/// - `‖Δ K₁ − R‖ ≤ ‖R‖`: the edited keys move toward their targets (strictly unless
///   `R K₁ᵀ P = 0`);
/// - with keys in the null space (`P K₁ = K₁`) and `K_pK_pᵀ P = 0`, `Δ K₁ = R G (G + L2·I)⁻¹`
///   with `G = K₁ᵀK₁`, which tends to `R` as `L2 → 0`;
/// - with `P = I` and `K_p = 0` it is MEMIT's `R K₁ᵀ (K₁K₁ᵀ + L2·I)⁻¹`.
///
/// The system matrix is not symmetric, so it is solved by LU ([`solve_general`]).
///
/// # Errors
/// Shapes that do not fit; [`Error::InvalidInput`] for an `l2` that is negative or not
/// finite; [`Error::IllConditioned`] when the system is singular or nearly so (always for
/// `L2 = 0` with `kept < d_k`: `P(…)` has rank at most `kept`).
pub fn alphaedit_update(
    p: &NullSpaceProjector,
    keys: &Tensor,
    residuals: &Tensor,
    kp_kpt: &Tensor,
    l2: f64,
) -> Result<Tensor> {
    let d_k = p.matrix.size().first().copied().unwrap_or(0);
    let n = keys.size().get(1).copied().unwrap_or(0);
    check_shape(
        "keys",
        keys,
        &[d_k, n],
        "[d_k, n] (d_k = the projector's dimension)",
    )?;
    let d_out = residuals.size().first().copied().unwrap_or(0);
    check_shape(
        "residuals",
        residuals,
        &[d_out, n],
        "[d_out, n] (n = number of keys)",
    )?;
    check_shape("K_pK_pᵀ", kp_kpt, &[d_k, d_k], "[d_k, d_k]")?;
    if !(l2.is_finite() && l2 >= 0.0) {
        return Err(Error::InvalidInput(format!(
            "AlphaEdit's L2 = {l2} must be finite and >= 0"
        )));
    }
    const WHAT: &str = "AlphaEdit's P(K₁K₁ᵀ + K_pK_pᵀ) + L2·I";
    if l2 == 0.0 && (p.kept as i64) < d_k {
        // P(…) has rank at most `kept`: singular whatever the keys, so say so exactly rather
        // than rely on the rounding of a numerical estimate.
        return Err(Error::IllConditioned {
            what: WHAT,
            condition: f64::INFINITY,
        });
    }
    let device = keys.device();
    let k = f64_of(keys)?;
    let proj = p.matrix.f_to_device(device)?;
    let kp_kpt = f64_of(kp_kpt)?.f_to_device(device)?;
    let eye = Tensor::f_eye(d_k, (Kind::Double, device))?;
    let a = proj
        .f_matmul(&k.f_matmul(&k.f_transpose(0, 1)?)?.f_add(&kp_kpt)?)?
        .f_add(&eye.f_mul_scalar(l2)?)?;
    let b = proj
        .f_matmul(&k)?
        .f_matmul(&f64_of(residuals)?.f_transpose(0, 1)?)?; // [d_k, d_out]
    let delta_t = solve_general(&a, &b, WHAT)?;
    Ok(delta_t.f_transpose(0, 1)?.f_contiguous()?)
}
