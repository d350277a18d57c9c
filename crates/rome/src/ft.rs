//! FT-L (ROME paper's baseline): fine-tune one MLP output matrix on the rewrite prompts under
//! an L∞ constraint `|W′ − W|ᵢⱼ ≤ ε`.
//!
//! The loss is the teacher-forced mean NLL of each target's tokens after its prompt. (The
//! reference's `ft_main.py` scores every target token from the distribution at the prompt's
//! last position, which is only right for one-token targets; EasyEdit corrects it the same
//! way.) The change is found without touching the model: `ΔW` enters as `post · ΔWᵀ` added to
//! `hook_mlp_out` of the layer, which is exactly what `W + ΔW` computes.

use gpt_core::intervention::{HookAction, Intervention, StopAt};
use gpt_core::progress::{self, Progress, ProgressFn};
use gpt_core::tch::{Device, Kind, Tensor};
use gpt_core::{
    target_tokens, BlocksInput, CacheHook, EditableModel, HookPoint, Layer, Padding,
    ResumableModel, RewriteRequest, TokenBatch, Tokenizer, WeightDelta, WeightId,
};
use serde::{Deserialize, Serialize};

use crate::adam::Adam;
use crate::error::{Error, Result};

/// FT-L's hyperparameters (ROME's `hparams/FT/*_constr.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FtHparams {
    /// The fine-tuned layer (its MLP output projection).
    pub layer: usize,
    /// Adam steps at most.
    pub num_steps: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// ε of the L∞ constraint on the change of each weight.
    pub norm_constraint: f64,
    /// Stop once the loss is below this (the reference: 1e-2).
    pub early_stop_loss: f64,
}

impl FtHparams {
    /// The reference's constrained preset (25 steps, lr 5e-4, ε 5e-4) at `layer`; its GPT-2 XL
    /// file fine-tunes layer 0.
    pub fn constrained(layer: usize) -> Self {
        Self {
            layer,
            num_steps: 25,
            lr: 5e-4,
            norm_constraint: 5e-4,
            early_stop_loss: 1e-2,
        }
    }

    /// Checks the settings against a model of `n_layers` layers.
    ///
    /// # Errors
    /// [`Error::Model`] (layer out of range) or [`Error::InvalidInput`].
    pub fn validate(&self, n_layers: usize) -> Result<()> {
        if self.layer >= n_layers {
            return Err(gpt_core::Error::LayerOutOfRange {
                layer: self.layer,
                n_layers,
            }
            .into());
        }
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if self.num_steps == 0 || !positive(self.lr) || !positive(self.norm_constraint) {
            return Err(Error::InvalidInput(format!(
                "FT-L needs num_steps ≥ 1 and positive lr and norm_constraint, got {self:?}"
            )));
        }
        Ok(())
    }
}

/// The result of FT-L: the dense change and the loss per step.
#[derive(Debug)]
pub struct FtEdit {
    /// The change of `blocks.{L}.mlp.W_out`, `[d_model, d_mlp]`.
    pub delta: WeightDelta,
    /// The loss at each step.
    pub losses: Vec<f64>,
}

/// Adds `post · ΔWᵀ` to `hook_mlp_out` of one layer: the output `W + ΔW` would give.
struct AddLinear<'a> {
    layer: usize,
    delta: &'a Tensor,
    post: Option<Tensor>,
}

impl Intervention for AddLinear<'_> {
    fn wants(&self, point: HookPoint) -> bool {
        point == HookPoint::mlp_post(self.layer) || point == HookPoint::mlp_out(self.layer)
    }

    fn visit(&mut self, point: HookPoint, act: &Tensor) -> gpt_core::Result<HookAction> {
        if point == HookPoint::mlp_post(self.layer) {
            self.post = Some(act.shallow_clone());
            return Ok(HookAction::Continue);
        }
        match self.post.take() {
            Some(post) => {
                // ΔW is f32 for half models (see `compute_ft`); the product runs in the
                // activations' dtype.
                let change = post.f_matmul(&self.delta.f_to_kind(post.kind())?.f_tr()?)?;
                Ok(HookAction::Replace(act.f_add(&change)?))
            }
            None => Ok(HookAction::Continue),
        }
    }
}

/// The progress stage of [`compute_ft`]: one unit per optimisation step.
pub const FT_STAGE: &str = "fine-tuning";

/// Fine-tunes `blocks.{hp.layer}.mlp.W_out` on all `requests` together (never changing the
/// model): Adam on `ΔW` (f32 for half models, starting at zero), clamped to
/// `[−ε, ε]` elementwise after each step. `progress` hears [`FT_STAGE`] before the first
/// step and after each.
///
/// # Errors
/// Malformed requests, targets that tokenise to nothing, a layer out of range, a loss that
/// is not finite, model errors; [`Error::Cancelled`] when `progress` stops it.
pub fn compute_ft<M: EditableModel + ResumableModel + ?Sized>(
    model: &M,
    tokenizer: &Tokenizer,
    requests: &[RewriteRequest],
    hp: &FtHparams,
    progress: &mut ProgressFn<'_>,
) -> Result<FtEdit> {
    hp.validate(model.config().n_layers)?;
    if requests.is_empty() {
        return Err(Error::InvalidInput(
            "FT-L needs at least one request".into(),
        ));
    }
    gpt_core::check_joint_requests(requests)?;
    let batch = FtBatch::new(tokenizer, requests, model.device())?;
    let resid = block_input(model, &batch.tokens, hp.layer)?;
    let run = FtRun {
        model,
        hp,
        batch,
        resid,
    };
    let w = model.weight(WeightId::MlpOut(Layer(hp.layer)))?;
    // ΔW in f32 for the half types (Adam's moments and the clamp need it); f64 models keep
    // f64, as before.
    let kind = if w.kind() == Kind::Double {
        Kind::Double
    } else {
        Kind::Float
    };
    let mut delta = Tensor::f_zeros(w.size(), (kind, w.device()))?.f_set_requires_grad(true)?;
    let mut adam = Adam::new(&delta, hp.lr)?;
    let mut losses = Vec::new();
    let at = |done: usize| Progress::new(FT_STAGE, done as u64, Some(hp.num_steps as u64), "steps");
    progress::report(progress, at(0))?;
    for step in 0..hp.num_steps {
        let loss = run.loss(&delta)?;
        let value = loss.f_double_value(&[])?;
        losses.push(value);
        if !value.is_finite() {
            return Err(gpt_core::Error::NonFinite {
                what: format!("the FT-L loss at step {step}"),
                count: 1,
            }
            .into());
        }
        if value < hp.early_stop_loss {
            break;
        }
        let grads = Tensor::f_run_backward(&[&loss], &[&delta], false, false)?;
        let grad = grads
            .into_iter()
            .next()
            .ok_or_else(|| Error::InvalidInput("no gradient reached ΔW".into()))?;
        adam.step(&mut delta, &grad)?;
        gpt_core::tch::no_grad(|| -> Result<()> {
            let eps = hp.norm_constraint;
            let _ = delta.f_clamp_(-eps, eps)?;
            Ok(())
        })?;
        progress::report(progress, at(step + 1))?;
    }
    Ok(FtEdit {
        delta: WeightDelta::Dense {
            target: WeightId::MlpOut(Layer(hp.layer)),
            delta: delta.f_detach()?,
        },
        losses,
    })
}

/// The token batch FT-L trains on and which logits it reads.
///
/// Each row is prompt + target[..T−1]; row i reads target token j at (prompt_len + j − 1).
/// Each read is weighted 1 / (tokens of its target · requests), so each request counts
/// once and the loss is the mean over requests of each target's mean NLL.
struct FtBatch {
    /// The rows, right-padded.
    tokens: TokenBatch,
    /// `[reads]`: the row of each read.
    rows: Tensor,
    /// `[reads]`: the position of each read.
    positions: Tensor,
    /// `[reads, 1]`: the token each read should predict.
    targets: Tensor,
    /// `[reads]` f32: the weight of each read.
    weights: Tensor,
}

impl FtBatch {
    fn new(tokenizer: &Tokenizer, requests: &[RewriteRequest], device: Device) -> Result<Self> {
        let (mut seqs, mut read_rows, mut read_pos, mut targets, mut weights) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, r) in requests.iter().enumerate() {
            r.validate()?;
            let prompt = tokenizer.encode(&r.filled())?.ids;
            let target = target_tokens(tokenizer, &r.target)?;
            let weight = 1.0 / (target.len() as f64 * requests.len() as f64);
            for (j, &t) in target.iter().enumerate() {
                read_rows.push(i as i64);
                read_pos.push((prompt.len() + j - 1) as i64);
                targets.push(t);
                weights.push(weight);
            }
            seqs.push([prompt, target[..target.len() - 1].to_vec()].concat());
        }
        Ok(Self {
            tokens: TokenBatch::pad(&seqs, Padding::Right, 0, device)?,
            rows: Tensor::f_from_slice(&read_rows)?.f_to_device(device)?,
            positions: Tensor::f_from_slice(&read_pos)?.f_to_device(device)?,
            targets: Tensor::f_from_slice(&targets)?
                .f_to_device(device)?
                .f_unsqueeze(1)?,
            weights: Tensor::f_from_slice(&weights)?
                .f_to_device(device)?
                .f_to_kind(Kind::Float)?,
        })
    }
}

/// The input of block `layer` for `batch`, `[batch, pos, d_model]`: nothing below the
/// fine-tuned block changes, so it is computed once.
fn block_input<M: EditableModel + ?Sized>(
    model: &M,
    batch: &TokenBatch,
    layer: usize,
) -> Result<Tensor> {
    let _guard = gpt_core::tch::no_grad_guard();
    let point = HookPoint::resid_pre(layer);
    let mut rec = (CacheHook::new(|p| p == point), StopAt(point));
    let _ = model.forward_hooked(batch, &mut rec)?;
    Ok(rec.0.into_cache().try_get(point)?.shallow_clone())
}

/// What every FT-L step reads: the model, the settings, the batch and its input to the
/// fine-tuned block.
struct FtRun<'a, M: ?Sized> {
    model: &'a M,
    hp: &'a FtHparams,
    batch: FtBatch,
    /// `[batch, pos, d_model]`: the input of block `hp.layer`.
    resid: Tensor,
}

impl<M: EditableModel + ResumableModel + ?Sized> FtRun<'_, M> {
    /// The weighted NLL (a scalar, with a graph back to `delta`) of the targets with `delta`
    /// added to the fine-tuned matrix, from the fine-tuned block up.
    fn loss(&self, delta: &Tensor) -> Result<Tensor> {
        let (hp, batch) = (self.hp, &self.batch);
        let mut hook = AddLinear {
            layer: hp.layer,
            delta,
            post: None,
        };
        let out = self
            .model
            .forward_blocks(
                BlocksInput {
                    layers: hp.layer..self.model.config().n_layers,
                    resid: self.resid.shallow_clone(),
                    positions: batch.tokens.positions.shallow_clone(),
                    past: None,
                    attention_mask: Some(batch.tokens.attention_mask.shallow_clone()),
                    last_position_only: false,
                },
                &mut hook,
            )?
            .resid()?;
        let picked = out.f_index(&[Some(&batch.rows), Some(&batch.positions)])?;
        let logp = self
            .model
            .unembed(&picked)?
            .f_log_softmax(-1, Kind::Float)?;
        let nll = logp
            .f_gather(1, &batch.targets, false)?
            .f_squeeze_dim(1)?
            .f_neg()?;
        Ok(nll.f_mul(&batch.weights)?.f_sum(Kind::Float)?)
    }
}
