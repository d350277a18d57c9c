//! [`BaseRun`]: the one recorded pass that resumed runs start from.

use tch::Tensor;

use crate::cache::{ActivationCache, CacheHook};
use crate::error::{Error, Result};
use crate::hook::HookPoint;
use crate::input::TokenBatch;
use crate::intervention::Intervention;
use crate::model::{ForwardOptions, HookableModel, KvCache};

/// One forward pass recorded for resumption: the residual entering every block, the keys
/// and values of every position, and each row's last logits.
///
/// A resumed run starting at block `j` from position `t` needs exactly the residual
/// entering block `j` at positions `t..` ([`BaseRun::entering`]) and the keys/values of
/// positions `< t` ([`BaseRun::past`]); everything else it recomputes. Recorded tensors share
/// storage with the pass (no copies).
#[derive(Debug)]
pub struct BaseRun {
    logits: Tensor,
    acts: ActivationCache,
    kv: KvCache,
    n_layers: usize,
}

impl BaseRun {
    /// Runs `batch` once without gradients under `hooks` (e.g. a corruption of the
    /// embeddings; pass [`NoHooks`](crate::NoHooks) for none), recording what resumption
    /// needs plus the points `record` accepts, as the hooks leave them. One ordinary pass:
    /// any [`HookableModel`] records a base run; resuming lanes from it needs a
    /// [`ResumableModel`](crate::ResumableModel).
    ///
    /// # Errors
    /// Model and intervention errors; a pass stopped by `hooks`.
    pub fn new<M: HookableModel + ?Sized>(
        model: &M,
        batch: &TokenBatch,
        hooks: &mut dyn Intervention,
        record: &dyn Fn(HookPoint) -> bool,
    ) -> Result<Self> {
        let _guard = tch::no_grad_guard();
        let n_layers = model.config().n_layers;
        let entering = |p: HookPoint| match p {
            HookPoint::Block(l, crate::BlockSite::ResidPre) => l.0 < n_layers,
            HookPoint::Block(l, crate::BlockSite::ResidPost) => l.0 + 1 == n_layers,
            _ => false,
        };
        let mut kv = KvCache::new();
        let mut recorder = CacheHook::new(|p| entering(p) || record(p));
        let logits = model
            .forward_with(
                batch,
                ForwardOptions::last().with_cache(&mut kv),
                &mut (hooks, &mut recorder),
            )?
            .logits()?;
        Ok(Self {
            logits,
            acts: recorder.into_cache(),
            kv,
            n_layers,
        })
    }

    /// The model's number of blocks.
    pub fn n_layers(&self) -> usize {
        self.n_layers
    }

    /// Each row's logits at its last real token, `[batch, vocab]`.
    pub fn logits(&self) -> &Tensor {
        &self.logits
    }

    /// The residual entering block `j`, `[batch, pos, d_model]`; `j = n_layers` gives the
    /// last block's output (before the final norm).
    ///
    /// # Errors
    /// [`Error::LayerOutOfRange`] for `j > n_layers`.
    pub fn entering(&self, j: usize) -> Result<&Tensor> {
        let point = match j {
            j if j < self.n_layers => HookPoint::resid_pre(j),
            j if j == self.n_layers && j > 0 => HookPoint::resid_post(j - 1),
            _ => {
                return Err(Error::LayerOutOfRange {
                    layer: j,
                    n_layers: self.n_layers,
                })
            }
        };
        self.acts.try_get(point)
    }

    /// Everything recorded: `hook_resid_pre` of every block, the last `hook_resid_post`,
    /// and the points `record` accepted, each `[batch, pos, ...]`.
    pub fn acts(&self) -> &ActivationCache {
        &self.acts
    }

    /// Keys and values of every position, `[batch, n_kv_heads, pos, d_head]` per layer.
    pub fn kv(&self) -> &KvCache {
        &self.kv
    }

    /// Keys and values of the first `t` positions (shared storage), `None` for `t = 0`:
    /// the `past` of runs resumed from position `t`.
    ///
    /// # Errors
    /// `t` beyond the pass.
    pub fn past(&self, t: usize) -> Result<Option<KvCache>> {
        if t == 0 {
            Ok(None)
        } else {
            self.kv.prefix(t).map(Some)
        }
    }
}
