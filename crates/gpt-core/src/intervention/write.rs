//! [`SiteWrite`]: the one general position-wise intervention (set, add or patch values at
//! chosen `(row, position[, head])` sites), and [`write_sites`], its tensor core.

use tch::Tensor;

use crate::cache::ActivationCache;
use crate::error::{Error, Result};
use crate::hook::HookPoint;
use crate::intervention::sites::{ResolvedSites, Sites};
use crate::intervention::{HookAction, Intervention};

/// Whether a [`SiteWrite`] replaces the selected entries or adds to them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOp {
    /// `act[site] = value`.
    Set,
    /// `act[site] += value`.
    Add,
}

/// A closure computing values from the current activation.
pub type ValuesFn<'a> = Box<dyn FnMut(&Tensor) -> Result<Tensor> + 'a>;

/// Where the values of a [`SiteWrite`] come from.
#[non_exhaustive]
pub enum Values<'a> {
    /// A tensor (see [`write_sites`] for the shapes accepted).
    Tensor(Tensor),
    /// The same point of a recorded run, read at `sites` (activation patching).
    Cached {
        /// The recorded run.
        cache: &'a ActivationCache,
        /// Where to read in the recorded activation.
        sites: Sites,
    },
    /// Computed from the current activation when the point is reached (e.g. "row 0's value").
    Fn(ValuesFn<'a>),
}

impl std::fmt::Debug for Values<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Values::Tensor(t) => write!(f, "Tensor({:?})", t.size()),
            Values::Cached { sites, .. } => write!(f, "Cached({sites:?})"),
            Values::Fn(_) => f.write_str("Fn"),
        }
    }
}

/// Sets, adds or patches values at chosen sites of one hook point.
///
/// This is the building block of causal tracing (corrupt the subject's embeddings, restore a
/// clean state), activation patching (source → base, per position or per head) and editing
/// (ROME's δ added at each prompt's last subject token):
///
/// ```no_run
/// use gpt_core::intervention::{SiteWrite, Sites};
/// use gpt_core::{tch::{Kind, Tensor}, HookPoint};
/// let delta = Tensor::zeros([576], (Kind::Float, gpt_core::tch::Device::Cpu)).set_requires_grad(true);
/// // Row i gets δ added at its own last subject token (positions 4, 6, 5).
/// let mut add_delta = SiteWrite::add(HookPoint::mlp_out(4), Sites::per_row([4, 6, 5]), delta);
/// // Rows 1.. get row 0's value at position 3 (restore a clean state in one batch).
/// let mut restore = SiteWrite::set_with(HookPoint::resid_post(7), Sites::position(3).rows(1..11), |act| {
///     Ok(act.f_narrow(0, 0, 1)?.f_select(1, 3)?)
/// });
/// # let _ = (&mut add_delta, &mut restore);
/// ```
#[derive(Debug)]
pub struct SiteWrite<'a> {
    point: HookPoint,
    sites: Sites,
    op: WriteOp,
    values: Values<'a>,
}

impl<'a> SiteWrite<'a> {
    /// A write of `values` at `sites` of `point`.
    pub fn new(point: HookPoint, sites: Sites, op: WriteOp, values: Values<'a>) -> Self {
        Self {
            point,
            sites,
            op,
            values,
        }
    }

    /// `act[sites] = values`.
    pub fn set(point: HookPoint, sites: Sites, values: Tensor) -> Self {
        Self::new(point, sites, WriteOp::Set, Values::Tensor(values))
    }

    /// `act[sites] += values` (e.g. a steering vector, or ROME's δ).
    pub fn add(point: HookPoint, sites: Sites, values: Tensor) -> Self {
        Self::new(point, sites, WriteOp::Add, Values::Tensor(values))
    }

    /// `act[sites] = f(act)`: values computed from the activation itself.
    pub fn set_with(
        point: HookPoint,
        sites: Sites,
        f: impl FnMut(&Tensor) -> Result<Tensor> + 'a,
    ) -> Self {
        Self::new(point, sites, WriteOp::Set, Values::Fn(Box::new(f)))
    }

    /// `act[sites] += f(act)`.
    pub fn add_with(
        point: HookPoint,
        sites: Sites,
        f: impl FnMut(&Tensor) -> Result<Tensor> + 'a,
    ) -> Self {
        Self::new(point, sites, WriteOp::Add, Values::Fn(Box::new(f)))
    }

    /// `act[sites] = cache[point][source_sites]`: activation patching from a recorded run.
    pub fn patch(
        point: HookPoint,
        sites: Sites,
        cache: &'a ActivationCache,
        source_sites: Sites,
    ) -> Self {
        Self::new(
            point,
            sites,
            WriteOp::Set,
            Values::Cached {
                cache,
                sites: source_sites,
            },
        )
    }

    /// The hook point written.
    pub fn point(&self) -> HookPoint {
        self.point
    }
}

impl Intervention for SiteWrite<'_> {
    fn wants(&self, point: HookPoint) -> bool {
        point == self.point
    }

    fn visit(&mut self, point: HookPoint, act: &Tensor) -> Result<HookAction> {
        let values = match &mut self.values {
            Values::Tensor(t) => t.shallow_clone(),
            Values::Fn(f) => f(act)?,
            Values::Cached { cache, sites } => read_sites(point, cache.try_get(point)?, sites)?,
        };
        Ok(HookAction::Replace(write_sites(
            point,
            act,
            &self.sites,
            self.op,
            &values,
        )?))
    }
}

/// The entries of `act` at `sites`: `[n, *entry]` for `n` selected sites.
///
/// # Errors
/// As [`Sites::resolve`].
pub fn read_sites(point: HookPoint, act: &Tensor, sites: &Sites) -> Result<Tensor> {
    let resolved = sites.resolve(point, &act.size(), act.device())?;
    Ok(act.f_index(&resolved.indices())?)
}

/// `act` with the entries at `sites` set to (or increased by) `values`, out of place (the
/// activation shown to an intervention is never modified); differentiable in `act` and
/// `values`.
///
/// With `n` selected sites whose entries have shape `E` (the activation's dimensions after
/// row, position and head), `values` may be shaped `E` (the same value everywhere), `[n, E]`
/// (one per site, in row-major site order, or any shape that flattens to it), or `[k, E]`
/// with `k` the number of positions per row when every row has the same positions (the same
/// values in every row, e.g. a batch-1 source patched into every row). Values are converted
/// to the activation's dtype and device. With [`WriteOp::Set`], a site selected twice gets
/// one of its values.
///
/// # Errors
/// [`Error::SiteOutOfRange`] / [`Error::InvalidSites`] from [`Sites::resolve`];
/// [`Error::SiteValuesShape`] when `values` fits none of the shapes above.
pub fn write_sites(
    point: HookPoint,
    act: &Tensor,
    sites: &Sites,
    op: WriteOp,
    values: &Tensor,
) -> Result<Tensor> {
    let resolved = sites.resolve(point, &act.size(), act.device())?;
    let values = fit_values(point, &resolved, values)?
        .f_to_device(act.device())?
        .f_to_kind(act.kind())?;
    Ok(act.f_index_put(&resolved.indices(), &values, op == WriteOp::Add)?)
}

/// `values` reshaped (and broadcast or tiled) to `[n, E]`.
fn fit_values(point: HookPoint, r: &ResolvedSites, values: &Tensor) -> Result<Tensor> {
    let n = r.len as i64;
    let entry: i64 = r.entry_shape.iter().product();
    let mut target = vec![n];
    target.extend(&r.entry_shape);
    let bad = || Error::SiteValuesShape {
        point,
        sites: r.len,
        entry: r.entry_shape.clone(),
        got: values.size(),
    };
    if values.size() == r.entry_shape {
        return Ok(values.f_expand(&target, false)?);
    }
    let numel = values.numel() as i64;
    if entry == 0 || numel % entry != 0 {
        return Err(bad());
    }
    let k = numel / entry;
    let mut rows_shape = vec![k];
    rows_shape.extend(&r.entry_shape);
    let v = values.f_reshape(&rows_shape)?;
    if k == n {
        Ok(v)
    } else if k == 1 {
        Ok(v.f_expand(&target, false)?)
    } else if r.same_positions && r.n_rows > 0 && k * r.n_rows as i64 == n {
        let mut reps = vec![r.n_rows as i64];
        reps.extend(std::iter::repeat_n(1, r.entry_shape.len()));
        Ok(v.f_repeat(&reps)?)
    } else {
        Err(bad())
    }
}
