//! MEMIT (Meng et al. 2023): many facts at once over several layers (reference §3). The
//! target residual `z` of each fact is optimised at the last edited layer's output; then,
//! layer by layer, the keys of all facts are written with the batched least-squares update
//! `R Kᵀ (λC + KKᵀ)⁻¹`, spreading the remaining residual over the remaining layers.

use gpt_core::progress::ProgressFn;
use gpt_core::tch::Tensor;
use gpt_core::{EditableModel, ResumableModel, Tokenizer};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::hparams::RomeHparams;
use crate::layered::{compute_layered, LayeredEdit, LayeredSpec};
use crate::request::RewriteRequest;
use crate::target_cache::TargetCache;
use crate::update::memit_update;

/// The first stage [`compute_memit`] reports: the target residual `z` of each request.
pub const TARGETS_STAGE: &str = "MEMIT targets";
/// The second stage [`compute_memit`] reports: the update of each edited layer.
pub const LAYERS_STAGE: &str = "MEMIT layers";

/// MEMIT's hyperparameters (`hparams/MEMIT/*.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemitHparams {
    /// The edited layers (their MLP output projections), ascending.
    pub layers: Vec<usize>,
    /// The z optimisation (ROME's v* settings; `layer` is ignored: z sits at the last layer).
    pub z: RomeHparams,
    /// λ, the weight of the key covariance (`mom2_update_weight`).
    pub mom2_update_weight: f64,
}

impl MemitHparams {
    /// GPT-2 XL: layers 13–17, λ 20000, clamp 0.75, 20 steps, templates (10, 5).
    pub fn gpt2_xl() -> Self {
        Self::with(vec![13, 14, 15, 16, 17], 20_000.0, 20)
    }

    /// GPT-J: layers 3–8, λ 15000, clamp 0.75, 25 steps.
    pub fn gpt_j() -> Self {
        Self::with(vec![3, 4, 5, 6, 7, 8], 15_000.0, 25)
    }

    /// Llama(-2)-7B as EasyEdit's `hparams/MEMIT/llama-7b.yaml`: layers 4–8, λ 15000, clamp 4,
    /// 25 steps, weight decay 1e-3.
    pub fn llama_7b() -> Self {
        let mut hp = Self::with(vec![4, 5, 6, 7, 8], 15_000.0, 25);
        hp.z.clamp_norm_factor = 4.0;
        hp.z.v_weight_decay = 1e-3;
        hp
    }

    /// SmolLM2-135M: layers 2–6 around ROME's layer 4 (the first MLP peak of the traces);
    /// GPT-2 XL's other values.
    pub fn smollm2() -> Self {
        Self::with(vec![2, 3, 4, 5, 6], 20_000.0, 20)
    }

    pub(crate) fn with(layers: Vec<usize>, lambda: f64, steps: usize) -> Self {
        let last = layers.last().copied().unwrap_or(0);
        Self {
            layers,
            z: RomeHparams {
                layer: last,
                v_num_grad_steps: steps,
                clamp_norm_factor: 0.75,
                context_template_length_params: vec![(10, 5)],
                ..RomeHparams::gpt2_xl()
            },
            mom2_update_weight: lambda,
        }
    }
}

/// The result of a MEMIT run: one dense change per layer and how they were found.
pub type MemitEdit = LayeredEdit;

/// Checks that there is one statistics tensor per edited layer.
pub(crate) fn check_per_layer(what: &str, count: usize, layers: &[usize]) -> Result<()> {
    if count != layers.len() {
        return Err(Error::InvalidInput(format!(
            "{count} {what} for {} layers",
            layers.len()
        )));
    }
    Ok(())
}

/// Computes MEMIT's changes for all `requests` together (never leaving the model changed:
/// the per-layer updates are applied while later layers are computed, then undone). `cs`
/// holds `C = E[k kᵀ]` of each edited layer, in `hp.layers` order; `templates` are the
/// context templates (the bare `"{}"` first). `progress` hears of [`TARGETS_STAGE`] (one
/// `z` optimised per request, the long part) and then [`LAYERS_STAGE`] (one update per
/// layer), each before its first unit and after each (the targets also after every
/// optimisation step, with its `steps` count: where a caller can stop).
///
/// # Errors
/// Malformed requests, layers out of range or not ascending, statistics of the wrong
/// count or shape, a singular `λC + KKᵀ`, model errors; [`Error::Cancelled`] when
/// `progress` stops it (the model is left as it was).
pub fn compute_memit<M: EditableModel + ResumableModel + ?Sized>(
    model: &mut M,
    tokenizer: &Tokenizer,
    requests: &[RewriteRequest],
    hp: &MemitHparams,
    cs: &[Tensor],
    templates: &[String],
    progress: &mut ProgressFn<'_>,
) -> Result<MemitEdit> {
    compute_memit_cached(
        model, tokenizer, requests, hp, cs, templates, progress, None,
    )
}

/// [`compute_memit`] with target residuals looked up in and stored to `cache`.
#[allow(clippy::too_many_arguments)]
pub fn compute_memit_cached<M: EditableModel + ResumableModel + ?Sized>(
    model: &mut M,
    tokenizer: &Tokenizer,
    requests: &[RewriteRequest],
    hp: &MemitHparams,
    cs: &[Tensor],
    templates: &[String],
    progress: &mut ProgressFn<'_>,
    cache: Option<&TargetCache>,
) -> Result<MemitEdit> {
    let spec = LayeredSpec {
        method: "MEMIT",
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
        memit_update(c, hp.mom2_update_weight, keys, resid)
    };
    let run = compute_layered(
        model, tokenizer, requests, &spec, templates, &mut solve, progress,
    )?;
    Ok(run.into())
}
