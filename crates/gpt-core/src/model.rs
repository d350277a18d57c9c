//! The model traits: [`HookableModel`] (forward passes with interventions) and
//! [`EditableModel`] (reading and editing weights).

use tch::{Device, Kind, Tensor};

use crate::cache::{ActivationCache, CacheHook};
use crate::config::ModelConfig;
use crate::edit::{EditUndo, WeightDelta, WeightId};
use crate::error::{Error, Result};
use crate::hook::HookPoint;
use crate::input::TokenBatch;
use crate::intervention::{Intervention, NoHooks};

/// Which positions get logits (the unembedding is the largest matrix product of a small
/// model, so skipping it where it is not needed matters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogitsAt {
    /// Every position: logits `[batch, pos, vocab]`.
    #[default]
    All,
    /// Each row's last real token (per the attention mask): logits `[batch, vocab]`.
    Last,
}

/// Options of one forward pass.
#[derive(Debug, Default)]
pub struct ForwardOptions<'a> {
    /// Key/value cache for incremental decoding: read for earlier positions and extended
    /// with this batch's keys and values when the pass completes.
    pub kv_cache: Option<&'a mut KvCache>,
    /// Which positions get logits.
    pub logits: LogitsAt,
}

/// How a forward pass ended.
#[derive(Debug)]
pub enum Outcome {
    /// It ran to the end; see [`LogitsAt`] for the shape.
    Logits(Tensor),
    /// An intervention stopped it at this point.
    Stopped(HookPoint),
}

impl Outcome {
    /// The logits, or an error if the pass was stopped.
    ///
    /// # Errors
    /// [`Error::Stopped`] if an intervention stopped the pass.
    pub fn logits(self) -> Result<Tensor> {
        match self {
            Outcome::Logits(t) => Ok(t),
            Outcome::Stopped(point) => Err(Error::Stopped { point }),
        }
    }
}

/// Input of [`ResumableModel::forward_blocks`]: a residual stream entering some blocks.
#[derive(Debug)]
pub struct BlocksInput<'a> {
    /// The blocks to run, in order (e.g. `l + 1..n_layers`).
    pub layers: std::ops::Range<usize>,
    /// `[batch, pos, d_model]`: the residual entering `layers.start`.
    pub resid: Tensor,
    /// `[batch, pos]` i64 absolute positions of these tokens (rotary / learned positions are
    /// not re-added: learned position embeddings are already part of `resid`).
    pub positions: Tensor,
    /// Keys/values of earlier positions, covering at least `layers`, with the same batch
    /// size. `None`: these are the first positions.
    pub past: Option<&'a KvCache>,
    /// `[batch, past + pos]`, nonzero where a key may be attended (padding is zero); the
    /// causal order is added on top. `None`: every past and present position is attended
    /// (no padding). With it, rows of one batch can carry pasts of different lengths
    /// (right-padded) and inputs of different lengths.
    pub attention_mask: Option<Tensor>,
    /// Compute the last block's output only at the last position (its keys and values are
    /// still computed everywhere, since the last position attends to them): the result is
    /// `[batch, 1, d_model]`, and that block's hook points after `hook_resid_pre` see one
    /// position. Saves most of a block when only the final prediction matters.
    pub last_position_only: bool,
}

/// How [`ResumableModel::forward_blocks`] ended.
#[derive(Debug)]
pub enum BlocksOutcome {
    /// The residual after the last block, `[batch, pos, d_model]`.
    Resid(Tensor),
    /// An intervention stopped the pass here.
    Stopped(HookPoint),
}

impl BlocksOutcome {
    /// The residual, or an error if the pass was stopped.
    ///
    /// # Errors
    /// [`Error::Stopped`] if an intervention stopped the pass.
    pub fn resid(self) -> Result<Tensor> {
        match self {
            BlocksOutcome::Resid(t) => Ok(t),
            BlocksOutcome::Stopped(point) => Err(Error::Stopped { point }),
        }
    }
}

/// Keys and values of earlier positions, per layer, for incremental decoding.
///
/// Keys are stored after rotary embedding: `[batch, n_kv_heads, past, d_head]`.
#[derive(Debug, Default)]
pub struct KvCache {
    pub(crate) layers: Vec<Option<(Tensor, Tensor)>>,
    pub(crate) len: usize,
}

impl KvCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A cache from per-layer `(keys, values)`, each `[batch, n_kv_heads, len, d_head]`;
    /// `None` for layers a pass will not run (see [`ResumableModel::forward_blocks`]).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if a layer's tensors do not hold `len` positions.
    pub fn from_layers(len: usize, layers: Vec<Option<(Tensor, Tensor)>>) -> Result<Self> {
        for (l, kv) in layers.iter().enumerate() {
            if let Some((k, v)) = kv {
                if k.size().get(2) != Some(&(len as i64)) || k.size() != v.size() {
                    return Err(Error::InvalidInput(format!(
                        "cached keys/values of layer {l} have shapes {:?} / {:?}, expected {len} positions",
                        k.size(),
                        v.size()
                    )));
                }
            }
        }
        Ok(Self { layers, len })
    }

    /// Number of layer slots (some may be empty).
    pub fn n_layers(&self) -> usize {
        self.layers.len()
    }

    /// `(keys, values)` of one layer, each `[batch, n_kv_heads, len, d_head]`.
    pub fn layer(&self, layer: usize) -> Option<(&Tensor, &Tensor)> {
        self.layers
            .get(layer)
            .and_then(|kv| kv.as_ref())
            .map(|(k, v)| (k, v))
    }

    /// The first `len` positions (shared storage).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if `len` exceeds the cached length.
    pub fn prefix(&self, len: usize) -> Result<KvCache> {
        if len > self.len {
            return Err(Error::InvalidInput(format!(
                "prefix of {len} positions from a cache of {}",
                self.len
            )));
        }
        let layers = self
            .layers
            .iter()
            .map(|kv| {
                kv.as_ref()
                    .map(|(k, v)| {
                        Ok((k.f_narrow(2, 0, len as i64)?, v.f_narrow(2, 0, len as i64)?))
                    })
                    .transpose()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(KvCache { layers, len })
    }

    /// The cache with its batch repeated `times` (`[b, ..]` → `[times·b, ..]`, row `i·b + j`
    /// is row `j`): the shared past of several interventions batched together.
    ///
    /// # Errors
    /// libtorch errors only.
    pub fn repeat_batch(&self, times: usize) -> Result<KvCache> {
        let rep = |t: &Tensor| -> Result<Tensor> { Ok(t.f_repeat([times as i64, 1, 1, 1])?) };
        let layers = self
            .layers
            .iter()
            .map(|kv| kv.as_ref().map(|(k, v)| Ok((rep(k)?, rep(v)?))).transpose())
            .collect::<Result<Vec<_>>>()?;
        Ok(KvCache {
            layers,
            len: self.len,
        })
    }
}

/// A language model whose forward pass exposes named activations to an [`Intervention`].
///
/// Forward passes take `&self`: interventions and the KV cache are per-call arguments, never
/// model state. Passes work under autograd (no `no_grad` inside).
pub trait HookableModel {
    /// The validated configuration.
    fn config(&self) -> &ModelConfig;

    /// Where the weights live.
    fn device(&self) -> Device;

    /// Compute dtype of activations.
    fn kind(&self) -> Kind;

    /// Every hook point this model fires, in execution order.
    fn hook_points(&self) -> Vec<HookPoint>;

    /// The forward pass.
    ///
    /// `batch.ids` is `[batch, pos]`; the result is described by [`LogitsAt`]. The
    /// intervention is visited at each hook point in execution order.
    ///
    /// # Errors
    /// Token ids outside the vocabulary, sequences longer than the context, replacements of
    /// the wrong shape, intervention errors, libtorch errors.
    fn forward_with(
        &self,
        batch: &TokenBatch,
        options: ForwardOptions<'_>,
        hooks: &mut dyn Intervention,
    ) -> Result<Outcome>;

    /// The token embedding of `ids` (`[..]` → `[.., d_model]`), the value seen at
    /// [`HookPoint::Embed`].
    ///
    /// # Errors
    /// Token ids outside the vocabulary.
    fn embed_tokens(&self, ids: &Tensor) -> Result<Tensor>;

    /// Forward pass with an intervention and logits at every position.
    ///
    /// # Errors
    /// As [`HookableModel::forward_with`].
    fn forward_hooked(&self, batch: &TokenBatch, hooks: &mut dyn Intervention) -> Result<Outcome> {
        self.forward_with(batch, ForwardOptions::default(), hooks)
    }

    /// Plain forward pass: logits `[batch, pos, vocab]`.
    ///
    /// # Errors
    /// As [`HookableModel::forward_with`].
    fn forward(&self, batch: &TokenBatch) -> Result<Tensor> {
        self.forward_with(batch, ForwardOptions::default(), &mut NoHooks)?
            .logits()
    }

    /// Forward pass recording the activations at the points `filter` accepts (detached).
    ///
    /// # Errors
    /// As [`HookableModel::forward_with`].
    fn run_with_cache(
        &self,
        batch: &TokenBatch,
        filter: &dyn Fn(HookPoint) -> bool,
    ) -> Result<(Tensor, ActivationCache)> {
        let mut hook = CacheHook::new(filter);
        let logits = self
            .forward_with(batch, ForwardOptions::default(), &mut hook)?
            .logits()?;
        Ok((logits, hook.into_cache()))
    }
}

/// A [`HookableModel`] that can resume a pass from a given residual stream: what the fast
/// schedules (causal tracing, head scans, ROME's v* optimisation) need beyond a forward pass.
///
/// Kept apart from [`HookableModel`] so that a model which can only run whole passes (a
/// remote model, a wrapper) still works with everything that needs no more than that.
pub trait ResumableModel: HookableModel + AsHookable {
    /// Runs some blocks on a given residual stream (e.g. to resume a pass from a cached or
    /// patched state), firing the block hook points of those layers; positions in hook
    /// activations are those of `input.resid` (0 = its first token).
    ///
    /// # Errors
    /// Layers out of range, shapes that disagree, a past cache that does not cover the layers.
    fn forward_blocks(
        &self,
        input: BlocksInput<'_>,
        hooks: &mut dyn Intervention,
    ) -> Result<BlocksOutcome>;

    /// The final norm and unembedding: `[.., d_model]` → logits `[.., vocab]` (no hooks).
    ///
    /// # Errors
    /// A residual of the wrong width.
    fn unembed(&self, resid: &Tensor) -> Result<Tensor>;
}

/// Upcasts to `&dyn HookableModel` (trait-object upcasting is stable only from Rust 1.86,
/// and this workspace supports 1.85). Implemented for every sized model.
pub trait AsHookable {
    /// `self` as a [`HookableModel`] trait object.
    fn as_hookable(&self) -> &dyn HookableModel;
}

impl<M: HookableModel> AsHookable for M {
    fn as_hookable(&self) -> &dyn HookableModel {
        self
    }
}

/// A model whose weights can be read and edited, with exact undo.
pub trait EditableModel: HookableModel + AsHookable {
    /// The weight matrix `id`, always `[out, in]` (GPT-2's `Conv1D` is transposed at load).
    ///
    /// # Errors
    /// [`Error::LayerOutOfRange`] or [`Error::NoSuchWeight`] for weights this architecture
    /// lacks.
    fn weight(&self, id: WeightId) -> Result<&Tensor>;

    /// Adds `delta` to its target weight (without gradient tracking) and returns the record
    /// that undoes it.
    ///
    /// # Errors
    /// A delta of the wrong shape, or a target the model lacks.
    fn apply(&mut self, delta: &WeightDelta) -> Result<EditUndo>;

    /// Restores the weight an [`EditUndo`] came from, bit-exactly. Undos must be applied in
    /// reverse order of their edits.
    ///
    /// # Errors
    /// [`Error::UndoFromAnotherModel`]; [`Error::AlreadyUndone`]; [`Error::UndoOutOfOrder`]
    /// (nothing is changed and the record stays valid: undo the later edits, then this one).
    fn undo(&mut self, undo: &EditUndo) -> Result<()>;
}
