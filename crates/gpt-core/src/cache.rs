//! Activation caches: record activations during a forward pass and patch them back.

use std::collections::BTreeMap;

use tch::Tensor;

use crate::error::{Error, Result};
use crate::hook::HookPoint;
use crate::intervention::{HookAction, Intervention, SiteWrite, Sites};

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
            act.f_detach()?
        };
        self.cache.insert(point, t);
        Ok(HookAction::Continue)
    }
}

/// Overwrites activations with values from a recorded run (activation patching), at every
/// recorded point (or those of [`Patch::only`]).
///
/// At each point, the entries at `sites` are replaced by the same sites of the recorded
/// activation: `act'[sites] = cached[sites]`. A recorded batch of 1 is read once and used for
/// every row (e.g. a clean run patched into N corrupted rows); otherwise the batches must
/// match. Built on [`SiteWrite`].
pub struct Patch<'a> {
    source: &'a ActivationCache,
    sites: Sites,
    points: Option<Vec<HookPoint>>,
}

impl<'a> Patch<'a> {
    /// Patches every point recorded in `source` at `sites`.
    pub fn new(source: &'a ActivationCache, sites: Sites) -> Self {
        Self {
            source,
            sites,
            points: None,
        }
    }

    /// Restricts patching to these points.
    #[must_use]
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
        let source_sites = if cached.size().first() == Some(&1) {
            self.sites.with_all_rows()
        } else {
            self.sites.clone()
        };
        SiteWrite::patch(point, self.sites.clone(), self.source, source_sites).visit(point, act)
    }
}
