//! Activation caches: record activations during a forward pass and patch them back.

use std::collections::BTreeMap;

use tch::{IndexOp, Tensor};

use crate::error::{Error, Result};
use crate::hook::HookPoint;
use crate::intervention::{HookAction, Intervention};

/// Activations recorded at hook points, in execution order.
///
/// The model never mutates an activation after its hook site (interventions replace values
/// instead), so cached tensors can share storage with the forward pass that made them.
#[derive(Debug, Default)]
pub struct ActivationCache {
    acts: BTreeMap<HookPoint, Tensor>,
}

impl ActivationCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The activation recorded at `point`.
    pub fn get(&self, point: HookPoint) -> Option<&Tensor> {
        self.acts.get(&point)
    }

    /// The activation recorded at `point`, or an error naming it.
    ///
    /// # Errors
    /// [`Error::NoSuchHookPoint`] when nothing was recorded there.
    pub fn try_get(&self, point: HookPoint) -> Result<&Tensor> {
        self.acts
            .get(&point)
            .ok_or(Error::NoSuchHookPoint { point })
    }

    /// Records (or overwrites) an activation.
    pub fn insert(&mut self, point: HookPoint, act: Tensor) {
        self.acts.insert(point, act);
    }

    /// Recorded points in execution order.
    pub fn points(&self) -> impl Iterator<Item = HookPoint> + '_ {
        self.acts.keys().copied()
    }

    /// (point, activation) pairs in execution order.
    pub fn iter(&self) -> impl Iterator<Item = (HookPoint, &Tensor)> + '_ {
        self.acts.iter().map(|(p, t)| (*p, t))
    }

    /// Number of recorded points.
    pub fn len(&self) -> usize {
        self.acts.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.acts.is_empty()
    }
}

/// Records the activations at the points its filter accepts (detached from autograd unless
/// `keep_grad` is set).
pub struct CacheHook<F> {
    filter: F,
    keep_grad: bool,
    /// What has been recorded so far.
    pub cache: ActivationCache,
}

impl<F: Fn(HookPoint) -> bool> CacheHook<F> {
    /// Records every point `filter` accepts.
    pub fn new(filter: F) -> Self {
        Self {
            filter,
            keep_grad: false,
            cache: ActivationCache::new(),
        }
    }

    /// Keeps the recorded tensors attached to the autograd graph.
    pub fn keep_grad(mut self) -> Self {
        self.keep_grad = true;
        self
    }

    /// Returns the cache.
    pub fn into_cache(self) -> ActivationCache {
        self.cache
    }
}

impl<F: Fn(HookPoint) -> bool> Intervention for CacheHook<F> {
    fn wants(&self, point: HookPoint) -> bool {
        (self.filter)(point)
    }
    fn visit(&mut self, point: HookPoint, act: &Tensor) -> Result<HookAction> {
        let t = if self.keep_grad {
            act.shallow_clone()
        } else {
            act.detach()
        };
        self.cache.insert(point, t);
        Ok(HookAction::Continue)
    }
}

/// Which batch rows and positions a [`Patch`] overwrites.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatchSites {
    /// Every row and position.
    All,
    /// These positions (token indices), in every row.
    Positions(Vec<i64>),
}

/// Overwrites activations with values from a cache (activation patching).
///
/// For each cached point, positions `sites` of the current activation are replaced by the
/// same positions of the cached one: `act'[:, p] = cached[:, p]`. The cached tensor's batch
/// dimension must be 1 (broadcast to every row, e.g. a clean run patched into N corrupted
/// rows) or equal to the current batch. For `hook_z` the same rule applies along dim 1.
pub struct Patch<'a> {
    source: &'a ActivationCache,
    sites: PatchSites,
    points: Option<Vec<HookPoint>>,
}

impl<'a> Patch<'a> {
    /// Patches every point in `source` at `sites`.
    pub fn new(source: &'a ActivationCache, sites: PatchSites) -> Self {
        Self {
            source,
            sites,
            points: None,
        }
    }

    /// Restricts patching to these points.
    pub fn only(mut self, points: Vec<HookPoint>) -> Self {
        self.points = Some(points);
        self
    }
}

impl Intervention for Patch<'_> {
    fn wants(&self, point: HookPoint) -> bool {
        self.source.get(point).is_some() && self.points.as_ref().is_none_or(|p| p.contains(&point))
    }

    fn visit(&mut self, point: HookPoint, act: &Tensor) -> Result<HookAction> {
        let cached = self.source.try_get(point)?;
        let (cs, as_) = (cached.size(), act.size());
        let batch_ok = cs.first() == Some(&1) || cs.first() == as_.first();
        if cs.len() != as_.len() || !batch_ok || cs[1..] != as_[1..] {
            return Err(Error::ReplacementShape {
                point,
                expected: as_,
                got: cs,
            });
        }
        let cached = cached.f_to_device(act.device())?.f_to_kind(act.kind())?;
        let patched = match &self.sites {
            PatchSites::All => cached.f_expand_as(act)?.f_contiguous()?,
            PatchSites::Positions(positions) => {
                let n_pos = as_.get(1).copied().unwrap_or(0);
                if let Some(bad) = positions.iter().find(|&&p| p < 0 || p >= n_pos) {
                    return Err(Error::InvalidInput(format!(
                        "patch position {bad} at {point} is outside 0..{n_pos}"
                    )));
                }
                let out = crate::intervention::copy_of(act)?;
                for &p in positions {
                    let src = cached.i((.., p..p + 1));
                    out.i((.., p..p + 1))
                        .copy_(&src.f_expand_as(&act.i((.., p..p + 1)))?);
                }
                out
            }
        };
        Ok(HookAction::Replace(patched))
    }
}
