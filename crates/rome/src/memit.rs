//! MEMIT (Meng et al. 2023): many facts at once over several layers (reference §3). The
//! target residual `z` of each fact is optimised at the last edited layer's output; then,
//! layer by layer, the keys of all facts are written with the batched least-squares update
//! `R Kᵀ (λC + KKᵀ)⁻¹`, spreading the remaining residual over the remaining layers.

use gpt_core::progress::{self, Progress, ProgressFn};
use gpt_core::tch::{Device, Kind, Tensor};
use gpt_core::{EditableModel, HookPoint, Layer, ResumableModel, Tokenizer, WeightDelta, WeightId};
use serde::{Deserialize, Serialize};

use crate::delta::{optimize_delta, DeltaSpec};
use crate::error::{Error, Result};
use crate::hparams::RomeHparams;
use crate::request::RewriteRequest;
use crate::rome::{at_subjects, keys_and_values, locate, Located, VSchedule};
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

    fn with(layers: Vec<usize>, lambda: f64, steps: usize) -> Self {
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
#[derive(Debug)]
pub struct MemitEdit {
    /// The changes of `blocks.{l}.mlp.W_out`, in layer order.
    pub deltas: Vec<WeightDelta>,
    /// `[n, d_model]`: the target residuals.
    pub z: Tensor,
    /// The z losses of each request.
    pub losses: Vec<Vec<f64>>,
}

/// The residual leaving block `layer` at each prompt's subject token, `[n, d_model]`.
fn residuals_at<M: ResumableModel + ?Sized>(
    model: &M,
    layer: usize,
    prompts: &[Located],
) -> Result<Tensor> {
    let point = HookPoint::resid_post(layer);
    at_subjects(model, prompts, &[point])?
        .pop()
        .ok_or_else(|| gpt_core::Error::NoSuchHookPoint { point }.into())
}

/// Computes MEMIT's changes for all `requests` together (never leaving the model changed:
/// the per-layer updates are applied while later layers are computed, then undone). `cs`
/// holds `C = E[k kᵀ]` of each edited layer, in `hp.layers` order; `templates` are the
/// context templates (the bare `"{}"` first). `progress` hears of [`TARGETS_STAGE`] (one
/// `z` optimised per request, the long part) and then [`LAYERS_STAGE`] (one update per
/// layer), each before its first unit and after each.
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
    let n_layers = model.config().n_layers;
    if requests.is_empty() {
        return Err(Error::InvalidInput(
            "MEMIT needs at least one request".into(),
        ));
    }
    gpt_core::check_joint_requests(requests)?;
    if hp.layers.is_empty() || hp.layers.windows(2).any(|w| w[0] >= w[1]) {
        return Err(Error::InvalidInput(format!(
            "MEMIT layers {:?} must be non-empty and strictly ascending",
            hp.layers
        )));
    }
    let last = *hp.layers.last().unwrap_or(&0);
    let mut z_hp = hp.z.clone();
    z_hp.layer = last;
    z_hp.validate(n_layers)?;
    if cs.len() != hp.layers.len() {
        return Err(Error::InvalidInput(format!(
            "{} statistics for {} layers",
            cs.len(),
            hp.layers.len()
        )));
    }
    for r in requests {
        r.validate()?;
    }
    // Each request's prompts: the templates filled in (the bare prompt first).
    let prompts = requests
        .iter()
        .map(|r| {
            templates
                .iter()
                .map(|t| locate(tokenizer, t, r))
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    // Target residuals z at the last layer's output.
    let targets = |done: usize| {
        Progress::new(
            TARGETS_STAGE,
            done as u64,
            Some(requests.len() as u64),
            "requests",
        )
    };
    progress::report(progress, targets(0))?;
    let (mut zs, mut losses) = (Vec::new(), Vec::new());
    for (r, p) in requests.iter().zip(&prompts) {
        let fit = optimize_delta(
            &*model,
            &DeltaSpec {
                tokenizer,
                request: r,
                hp: &z_hp,
                key_prompts: p,
                point: HookPoint::resid_post(last),
                layer: last,
                schedule: VSchedule::Fast,
            },
        )?;
        zs.push(fit.target_init.f_add(&fit.delta)?.f_to_kind(Kind::Double)?);
        losses.push(fit.losses);
        progress::report(progress, targets(zs.len()))?;
    }
    let z = Tensor::f_stack(&zs, 0)?.f_to_device(Device::Cpu)?; // [n, d_model]
    let bare: Vec<Located> = prompts.iter().map(|p| p[0].clone()).collect();

    let mut deltas = Vec::new();
    let mut undos = Vec::new();
    let layers = |done: usize| {
        Progress::new(
            LAYERS_STAGE,
            done as u64,
            Some(hp.layers.len() as u64),
            "layers",
        )
    };
    let result = (|| -> Result<()> {
        progress::report(progress, layers(0))?;
        for (i, (&layer, c)) in hp.layers.iter().zip(cs).enumerate() {
            // Keys of every request with the model as edited so far: ½ bare + ½ templates.
            let mut keys = Vec::new();
            for p in &prompts {
                let (k, _) = keys_and_values(&*model, layer, p)?;
                let k = k.f_to_kind(Kind::Double)?.f_to_device(Device::Cpu)?;
                let bare_k = k.f_select(0, 0)?;
                let key = if k.size()[0] > 1 {
                    let rest =
                        k.f_narrow(0, 1, k.size()[0] - 1)?
                            .f_mean_dim(0, false, Kind::Double)?;
                    bare_k.f_add(&rest)?.f_div_scalar(2.0)?
                } else {
                    bare_k
                };
                keys.push(key);
            }
            let keys = Tensor::f_stack(&keys, 1)?; // [d_mlp, n]
            let current = residuals_at(&*model, last, &bare)?
                .f_to_kind(Kind::Double)?
                .f_to_device(Device::Cpu)?;
            let remaining = (hp.layers.len() - i) as f64;
            let resid = z
                .f_sub(&current)?
                .f_transpose(0, 1)?
                .f_div_scalar(remaining)?; // [d, n]
            let dw = memit_update(c, hp.mom2_update_weight, &keys, &resid)?;
            let delta = WeightDelta::Dense {
                target: WeightId::MlpOut(Layer(layer)),
                delta: dw,
            };
            undos.push(model.apply(&delta)?);
            deltas.push(delta);
            progress::report(progress, layers(i + 1))?;
        }
        Ok(())
    })();
    // Leave the model as it was, whatever happened.
    for undo in undos.iter().rev() {
        model.undo(undo)?;
    }
    result?;
    Ok(MemitEdit { deltas, z, losses })
}
