//! AlphaEdit (Fang et al. 2025, reference §8) on a model: MEMIT's targets, keys and
//! residuals, solved per layer with [`alphaedit_update`] — the change confined to the null
//! space of the layer's key statistics ([`NullSpaceProjector`]) and kept off the keys of
//! earlier batches ([`KeyHistory`]).

use gpt_core::progress::ProgressFn;
use gpt_core::tch::Tensor;
use gpt_core::{EditableModel, ResumableModel, Tokenizer, WeightDelta};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::hparams::RomeHparams;
use crate::layered::{compute_layered, LayeredSpec};
use crate::memit::{check_per_layer, MemitHparams};
use crate::nullspace::REFERENCE_NULLSPACE_THRESHOLD;
use crate::nullspace::{alphaedit_update, KeyHistory, NullSpaceProjector};
use crate::request::RewriteRequest;
use crate::target_cache::TargetCache;

/// The first stage [`compute_alphaedit`] reports: the target residual `z` of each request.
pub const TARGETS_STAGE: &str = "AlphaEdit targets";
/// The second stage [`compute_alphaedit`] reports: the update of each edited layer.
pub const LAYERS_STAGE: &str = "AlphaEdit layers";

/// AlphaEdit's hyperparameters (`hparams/AlphaEdit/*.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlphaEditHparams {
    /// The edited layers (their MLP output projections), ascending.
    pub layers: Vec<usize>,
    /// The z optimisation, as MEMIT's (`layer` is ignored: z sits at the last layer).
    pub z: RomeHparams,
    /// `L2`, the ridge of the projected solve.
    pub l2: f64,
    /// The eigenvalue threshold of the null space of each layer's `C`
    /// ([`REFERENCE_NULLSPACE_THRESHOLD`] in every reference file).
    pub nullspace_threshold: f64,
}

impl AlphaEditHparams {
    /// MEMIT's layers and z settings with `L2` and the reference threshold.
    pub fn from_memit(memit: MemitHparams, l2: f64) -> Self {
        Self {
            layers: memit.layers,
            z: memit.z,
            l2,
            nullspace_threshold: REFERENCE_NULLSPACE_THRESHOLD,
        }
    }

    /// GPT-2 XL: layers 13–17, L2 10, MEMIT's z settings (clamp 0.75, 20 steps), threshold
    /// 2e-2.
    pub fn gpt2_xl() -> Self {
        Self::from_memit(MemitHparams::gpt2_xl(), 10.0)
    }

    /// GPT-J: layers 3–8, L2 10, MEMIT's z settings (25 steps), threshold 2e-2.
    pub fn gpt_j() -> Self {
        Self::from_memit(MemitHparams::gpt_j(), 10.0)
    }

    /// SmolLM2-135M (this project's choice; no reference file): MEMIT's layers 2–6 and
    /// GPT-2 XL's other values.
    pub fn smollm2() -> Self {
        Self::from_memit(MemitHparams::smollm2(), 10.0)
    }
}

/// The result of an AlphaEdit run.
#[derive(Debug)]
pub struct AlphaEditEdit {
    /// The changes of `blocks.{l}.mlp.W_out`, in layer order.
    pub deltas: Vec<WeightDelta>,
    /// `[n, d_model]`: the target residuals.
    pub z: Tensor,
    /// The z losses of each request.
    pub losses: Vec<Vec<f64>>,
    /// Per edited layer, the keys `[d_mlp, n]` (f64, CPU) of the requests with all the
    /// changes applied: what [`KeyHistory::add`] takes once the batch is kept.
    pub keys_after: Vec<Tensor>,
}

/// Computes AlphaEdit's changes for all `requests` together (never leaving the model
/// changed). `projectors` and `histories` hold each edited layer's [`NullSpaceProjector`] and
/// [`KeyHistory`], in `hp.layers` order (`hp.nullspace_threshold` is the projectors'
/// business: it is not read here); `templates` are the context templates (the bare `"{}"`
/// first). `progress` hears of [`TARGETS_STAGE`] and then [`LAYERS_STAGE`], as
/// [`compute_memit`](crate::compute_memit)'s. The histories are not changed: add
/// [`AlphaEditEdit::keys_after`] to them when the edit is kept.
///
/// # Errors
/// Malformed requests, layers out of range or not ascending, projectors or histories of the
/// wrong count or dimension, a singular projected system, model errors;
/// [`Error::Cancelled`] when `progress` stops it (the model is left as it was).
#[allow(clippy::too_many_arguments)]
pub fn compute_alphaedit<M: EditableModel + ResumableModel + ?Sized>(
    model: &mut M,
    tokenizer: &Tokenizer,
    requests: &[RewriteRequest],
    hp: &AlphaEditHparams,
    projectors: &[NullSpaceProjector],
    histories: &[KeyHistory],
    templates: &[String],
    progress: &mut ProgressFn<'_>,
) -> Result<AlphaEditEdit> {
    compute_alphaedit_cached(
        model, tokenizer, requests, hp, projectors, histories, templates, progress, None,
    )
}

/// [`compute_alphaedit`] with target residuals looked up in and stored to `cache`.
#[allow(clippy::too_many_arguments)]
pub fn compute_alphaedit_cached<M: EditableModel + ResumableModel + ?Sized>(
    model: &mut M,
    tokenizer: &Tokenizer,
    requests: &[RewriteRequest],
    hp: &AlphaEditHparams,
    projectors: &[NullSpaceProjector],
    histories: &[KeyHistory],
    templates: &[String],
    progress: &mut ProgressFn<'_>,
    cache: Option<&TargetCache>,
) -> Result<AlphaEditEdit> {
    let check = || {
        check_per_layer("projectors", projectors.len(), &hp.layers)?;
        check_per_layer("key histories", histories.len(), &hp.layers)
    };
    let spec = LayeredSpec {
        method: "AlphaEdit",
        targets_stage: TARGETS_STAGE,
        layers_stage: LAYERS_STAGE,
        layers: &hp.layers,
        z: &hp.z,
        cache,
        keys_after: true,
        check: &check,
    };
    let mut solve = |i: usize, keys: &Tensor, resid: &Tensor| -> Result<Tensor> {
        let missing =
            || Error::InvalidInput(format!("no projector or history for edited layer {i}"));
        let p = projectors.get(i).ok_or_else(missing)?;
        let h = histories.get(i).ok_or_else(missing)?;
        alphaedit_update(p, keys, resid, h.sum(), hp.l2)
    };
    let run = compute_layered(
        model, tokenizer, requests, &spec, templates, &mut solve, progress,
    )?;
    Ok(AlphaEditEdit {
        deltas: run.deltas,
        z: run.z,
        losses: run.losses,
        keys_after: run.keys_after,
    })
}
