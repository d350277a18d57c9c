//! Interventions: callbacks that read or replace activations during one forward pass.
//!
//! An [`Intervention`] is passed to each call of
//! [`HookableModel::forward_hooked`](crate::HookableModel::forward_hooked); it is never stored
//! on a model, so no hook outlives the call that used it. At every hook point (in execution
//! order) the model asks [`Intervention::wants`] and, if so, calls [`Intervention::visit`],
//! which continues, replaces the activation, or stops the pass.
//!
//! - Position-wise writes — set, add or patch values at `(row, position[, head])` sites, with
//!   per-row positions, from a tensor, a recorded run or a closure — are one type,
//!   [`SiteWrite`], over [`Sites`]. Causal tracing, activation patching and ROME's v* step
//!   are all built from it.
//! - [`CacheHook`](crate::CacheHook) records activations; [`Patch`](crate::Patch) patches a
//!   whole recorded run back; [`Zero`] ablates; [`StopAt`] ends a pass early.
//! - Interventions compose: a pair `(A, B)` or a `Vec` runs each in turn, each seeing the
//!   previous one's replacement; [`from_fn`] turns two closures into one.
//!
//! # Writing your own
//!
//! A steering vector added at one position is a dozen lines (the stock equivalent is
//! `SiteWrite::add(point, Sites::position(pos), vector)`):
//!
//! ```
//! use gpt_core::intervention::{HookAction, Intervention};
//! use gpt_core::{tch::Tensor, HookPoint, Result};
//!
//! /// Adds `vector` (`[d_model]`) to the residual stream entering `layer`, at `pos` only.
//! struct Steer { layer: usize, pos: i64, vector: Tensor }
//!
//! impl Intervention for Steer {
//!     fn wants(&self, point: HookPoint) -> bool {
//!         point == HookPoint::resid_pre(self.layer)
//!     }
//!     fn visit(&mut self, _point: HookPoint, act: &Tensor) -> Result<HookAction> {
//!         // act: [batch, pos, d_model]. Build a replacement; never modify `act` in place.
//!         let bump = act.f_zeros_like()?;
//!         bump.f_select(1, self.pos)?.f_copy_(&self.vector.f_expand_as(&act.f_select(1, self.pos)?)?)?;
//!         Ok(HookAction::Replace(act.f_add(&bump)?))
//!     }
//! }
//! # fn main() -> gpt_core::Result<()> {
//! # use gpt_core::{random::tiny_config, Architecture, HookableModel, RandomInit, TokenBatch, Transformer};
//! # use gpt_core::tch::{Device, Kind};
//! let model = Transformer::random(&tiny_config(Architecture::Llama), RandomInit::default(), Device::Cpu, Kind::Float)?;
//! let batch = TokenBatch::single(&[1, 2, 3], Device::Cpu)?;
//! let vector = Tensor::f_ones([16], (Kind::Float, Device::Cpu))?;
//! let steered = model.forward_hooked(&batch, &mut Steer { layer: 1, pos: 2, vector })?.logits()?;
//! assert_eq!(steered.size(), [1, 3, 64]);
//! # Ok(()) }
//! ```

mod sites;
mod write;

pub use sites::{Positions, ResolvedSites, Rows, Sites};
pub use write::{read_sites, write_sites, SiteWrite, Values, ValuesFn, WriteOp};

use tch::Tensor;

use crate::error::Result;
use crate::hook::HookPoint;

/// What the model does after visiting a hook point.
#[derive(Debug)]
pub enum HookAction {
    /// Go on with the activation unchanged.
    Continue,
    /// Go on with this tensor instead; it must have the activation's shape.
    Replace(Tensor),
    /// Stop the forward pass here; it returns [`Outcome::Stopped`](crate::Outcome::Stopped).
    Stop,
}

/// A per-call callback over the hook points of a forward pass.
pub trait Intervention {
    /// Cheap filter: the model only calls [`visit`](Intervention::visit) where this is true.
    fn wants(&self, point: HookPoint) -> bool {
        let _ = point;
        true
    }

    /// Called at each wanted hook point, in execution order, with the activation (its shape
    /// is documented on the [`HookPoint`] / [`BlockSite`](crate::BlockSite) variant).
    ///
    /// # Errors
    /// Whatever the intervention reports; the forward pass stops with it.
    fn visit(&mut self, point: HookPoint, act: &Tensor) -> Result<HookAction>;
}

impl<I: Intervention + ?Sized> Intervention for &mut I {
    fn wants(&self, point: HookPoint) -> bool {
        (**self).wants(point)
    }
    fn visit(&mut self, point: HookPoint, act: &Tensor) -> Result<HookAction> {
        (**self).visit(point, act)
    }
}

impl<I: Intervention + ?Sized> Intervention for Box<I> {
    fn wants(&self, point: HookPoint) -> bool {
        (**self).wants(point)
    }
    fn visit(&mut self, point: HookPoint, act: &Tensor) -> Result<HookAction> {
        (**self).visit(point, act)
    }
}

/// A new tensor holding a copy of `act`'s values (same shape, dtype and device).
///
/// Interventions build replacements from such copies rather than mutating the activation
/// they were shown, which other hooks (e.g. a cache) may share.
///
/// # Errors
/// libtorch errors only (e.g. out of memory).
pub fn copy_of(act: &Tensor) -> Result<Tensor> {
    let mut out = act.f_zeros_like()?;
    out.f_copy_(act)?;
    Ok(out)
}

/// The intervention that wants nothing: a plain forward pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHooks;

impl Intervention for NoHooks {
    fn wants(&self, _point: HookPoint) -> bool {
        false
    }
    fn visit(&mut self, _point: HookPoint, _act: &Tensor) -> Result<HookAction> {
        Ok(HookAction::Continue)
    }
}

/// Runs two interventions at each point: `B` sees the activation after `A`'s replacement.
/// A `Stop` from either stops the pass.
impl<A: Intervention, B: Intervention> Intervention for (A, B) {
    fn wants(&self, point: HookPoint) -> bool {
        self.0.wants(point) || self.1.wants(point)
    }
    fn visit(&mut self, point: HookPoint, act: &Tensor) -> Result<HookAction> {
        let first = if self.0.wants(point) {
            self.0.visit(point, act)?
        } else {
            HookAction::Continue
        };
        let current = match &first {
            HookAction::Stop => return Ok(HookAction::Stop),
            HookAction::Replace(t) => t,
            HookAction::Continue => act,
        };
        if !self.1.wants(point) {
            return Ok(first);
        }
        match self.1.visit(point, current)? {
            HookAction::Continue => Ok(first),
            other => Ok(other),
        }
    }
}

/// Runs a list of interventions in order, each seeing the previous one's replacement.
impl<I: Intervention> Intervention for Vec<I> {
    fn wants(&self, point: HookPoint) -> bool {
        self.iter().any(|i| i.wants(point))
    }
    fn visit(&mut self, point: HookPoint, act: &Tensor) -> Result<HookAction> {
        let mut replaced: Option<Tensor> = None;
        for hook in self.iter_mut() {
            if !hook.wants(point) {
                continue;
            }
            let current = replaced.as_ref().unwrap_or(act);
            match hook.visit(point, current)? {
                HookAction::Continue => {}
                HookAction::Replace(t) => replaced = Some(t),
                HookAction::Stop => return Ok(HookAction::Stop),
            }
        }
        Ok(replaced.map_or(HookAction::Continue, HookAction::Replace))
    }
}

/// An intervention from a closure; see [`from_fn`].
pub struct FromFn<W, F> {
    wants: W,
    visit: F,
}

/// Builds an intervention from a filter and a closure.
///
/// ```no_run
/// # use gpt_core::{intervention::{from_fn, HookAction}, HookPoint};
/// let mut zero_mlp_3 = from_fn(
///     |p| p == HookPoint::mlp_out(3),
///     |_p, act| Ok(HookAction::Replace(act.zeros_like())),
/// );
/// ```
pub fn from_fn<W, F>(wants: W, visit: F) -> FromFn<W, F>
where
    W: Fn(HookPoint) -> bool,
    F: FnMut(HookPoint, &Tensor) -> Result<HookAction>,
{
    FromFn { wants, visit }
}

impl<W, F> Intervention for FromFn<W, F>
where
    W: Fn(HookPoint) -> bool,
    F: FnMut(HookPoint, &Tensor) -> Result<HookAction>,
{
    fn wants(&self, point: HookPoint) -> bool {
        (self.wants)(point)
    }
    fn visit(&mut self, point: HookPoint, act: &Tensor) -> Result<HookAction> {
        (self.visit)(point, act)
    }
}

/// Replaces the activation at one point with zeros (ablation).
#[derive(Clone, Copy, Debug)]
pub struct Zero(pub HookPoint);

impl Intervention for Zero {
    fn wants(&self, point: HookPoint) -> bool {
        point == self.0
    }
    fn visit(&mut self, _point: HookPoint, act: &Tensor) -> Result<HookAction> {
        Ok(HookAction::Replace(act.f_zeros_like()?))
    }
}

/// Stops the forward pass at a point (e.g. after the last cached layer, to save work).
#[derive(Clone, Copy, Debug)]
pub struct StopAt(pub HookPoint);

impl Intervention for StopAt {
    fn wants(&self, point: HookPoint) -> bool {
        point == self.0
    }
    fn visit(&mut self, _point: HookPoint, _act: &Tensor) -> Result<HookAction> {
        Ok(HookAction::Stop)
    }
}
