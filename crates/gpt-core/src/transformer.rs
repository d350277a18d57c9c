//! [`Transformer`]: the decoder-only model shared by every architecture, with hook points.
//!
//! The architecture-specific parts (which norm, which MLP, learned or rotary positions) are
//! small enums chosen from the [`ModelConfig`]; the weight-loading code of each architecture
//! (`gpt2.rs`, `llama.rs`) is the only place that knows checkpoint names.

use std::sync::atomic::{AtomicU64, Ordering};

use tch::{Device, Kind, Tensor};

use crate::config::{Architecture, ModelConfig};
use crate::edit::{EditUndo, WeightDelta, WeightId};
use crate::error::{Error, Result};
use crate::hook::{BlockSite, HookPoint, Layer};
use crate::input::TokenBatch;
use crate::intervention::{HookAction, Intervention};
use crate::model::{
    BlocksInput, BlocksOutcome, EditableModel, ForwardOptions, HookableModel, KvCache, LogitsAt,
    Outcome,
};

/// `y = x Wᵀ + b` with `W: [out, in]`.
#[derive(Debug)]
pub(crate) struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.f_linear(&self.weight, self.bias.as_ref())?)
    }
}

/// LayerNorm (GPT-2) or RMSNorm (Llama) over the last dimension.
#[derive(Debug)]
pub(crate) enum Norm {
    Layer {
        weight: Tensor,
        bias: Tensor,
        eps: f64,
    },
    Rms {
        weight: Tensor,
        eps: f64,
    },
}

impl Norm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Norm::Layer { weight, bias, eps } => {
                let d = x.size().last().copied().unwrap_or(0);
                Ok(x.f_layer_norm([d], Some(weight), Some(bias), *eps, false)?)
            }
            Norm::Rms { weight, eps } => {
                // As transformers' LlamaRMSNorm: normalise in f32, cast back, then scale.
                let xf = x.f_to_kind(Kind::Float)?;
                let var = xf.f_square()?.f_mean_dim(-1, true, Kind::Float)?;
                let normed = xf.f_mul(&var.f_add_scalar(*eps)?.f_rsqrt()?)?;
                Ok(weight.f_mul(&normed.f_to_kind(x.kind())?)?)
            }
        }
    }
}

/// Multi-head (grouped-query) self-attention.
#[derive(Debug)]
pub(crate) struct Attention {
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
}

/// GELU MLP (GPT-2) or SwiGLU MLP (Llama).
#[derive(Debug)]
pub(crate) enum Mlp {
    Gelu {
        fc_in: Linear,
        fc_out: Linear,
    },
    SwiGlu {
        gate: Linear,
        up: Linear,
        down: Linear,
    },
}

#[derive(Debug)]
pub(crate) struct Block {
    pub ln1: Norm,
    pub attn: Attention,
    pub ln2: Norm,
    pub mlp: Mlp,
}

/// A decoder-only transformer (GPT-2 or Llama family) with hook points and editable weights.
///
/// Built by [`crate::load_model`] or the architecture loaders; see [`HookableModel`] and
/// [`EditableModel`] for how to run and edit it.
#[derive(Debug)]
pub struct Transformer {
    pub(crate) config: ModelConfig,
    pub(crate) device: Device,
    pub(crate) kind: Kind,
    pub(crate) embed: Tensor,
    pub(crate) pos_embed: Option<Tensor>,
    pub(crate) blocks: Vec<Block>,
    pub(crate) ln_final: Norm,
    pub(crate) unembed: Tensor,
    /// `[d_head / 2]` f32 rotary inverse frequencies (Llama family).
    pub(crate) inv_freq: Option<Tensor>,
    pub(crate) id: u64,
    pub(crate) edits: Vec<u64>,
    pub(crate) next_serial: u64,
}

static NEXT_MODEL_ID: AtomicU64 = AtomicU64::new(1);

/// Runs the intervention at one point; yields the (possibly replaced) activation or stops.
macro_rules! hook {
    ($hooks:expr, $point:expr, $act:expr) => {{
        let point = $point;
        let act = $act;
        match fire($hooks, point, act)? {
            Some(t) => t,
            None => return Ok(Outcome::Stopped(point)),
        }
    }};
}

fn fire(hooks: &mut dyn Intervention, point: HookPoint, act: Tensor) -> Result<Option<Tensor>> {
    if !hooks.wants(point) {
        return Ok(Some(act));
    }
    match hooks.visit(point, &act)? {
        HookAction::Continue => Ok(Some(act)),
        HookAction::Stop => Ok(None),
        HookAction::Replace(new) => {
            if new.size() != act.size() {
                return Err(Error::ReplacementShape {
                    point,
                    expected: act.size(),
                    got: new.size(),
                });
            }
            Ok(Some(new.f_to_device(act.device())?.f_to_kind(act.kind())?))
        }
    }
}

/// `cat(-x₂, x₁)` over the last dimension split in halves (transformers' `rotate_half`).
fn rotate_half(x: &Tensor) -> Result<Tensor> {
    let half = x.size().last().copied().unwrap_or(0) / 2;
    let x1 = x.f_narrow(-1, 0, half)?;
    let x2 = x.f_narrow(-1, half, half)?;
    Ok(Tensor::f_cat(&[x2.f_neg()?, x1], -1)?)
}

impl Transformer {
    pub(crate) fn new(
        config: ModelConfig,
        device: Device,
        kind: Kind,
        parts: TransformerParts,
    ) -> Result<Self> {
        let inv_freq = match config.rope_theta {
            Some(theta) => {
                let d = config.d_head as i64;
                let exps = Tensor::f_arange_start_step(0, d, 2, (Kind::Int64, device))?
                    .f_to_kind(Kind::Float)?
                    .f_div_scalar(d as f64)?;
                Some(Tensor::f_pow_scalar(theta, &exps)?.f_reciprocal()?)
            }
            None => None,
        };
        Ok(Self {
            config,
            device,
            kind,
            embed: parts.embed,
            pos_embed: parts.pos_embed,
            blocks: parts.blocks,
            ln_final: parts.ln_final,
            unembed: parts.unembed,
            inv_freq,
            id: NEXT_MODEL_ID.fetch_add(1, Ordering::Relaxed),
            edits: Vec::new(),
            next_serial: 0,
        })
    }

    fn check_ids(&self, ids: &Tensor) -> Result<()> {
        if ids.numel() == 0 {
            return Err(Error::EmptyPrompt);
        }
        let min = ids.f_min()?.int64_value(&[]);
        let max = ids.f_max()?.int64_value(&[]);
        let vocab = self.config.vocab_size as i64;
        if min < 0 || max >= vocab {
            let bad = if min < 0 { min } else { max };
            return Err(Error::InvalidInput(format!(
                "token id {bad} is outside the vocabulary 0..{vocab}"
            )));
        }
        Ok(())
    }

    /// Boolean mask `[batch, 1, s, past + s]`: true where a query may attend (causal and not
    /// padding).
    fn attention_allowed(attention_mask: &Tensor, s: i64, past: i64) -> Result<Tensor> {
        let total = past + s;
        let device = attention_mask.device();
        let q = Tensor::f_arange_start(past, total, (Kind::Int64, device))?.f_unsqueeze(1)?;
        let k = Tensor::f_arange(total, (Kind::Int64, device))?.f_unsqueeze(0)?;
        let causal = k.f_le_tensor(&q)?; // [s, total]
        let keys = attention_mask.f_ne(0)?.f_unsqueeze(1)?.f_unsqueeze(1)?; // [b,1,1,total]
        Ok(keys.f_logical_and(&causal.f_unsqueeze(0)?.f_unsqueeze(0)?)?)
    }

    /// `(cos, sin)` of shape `[batch, 1, pos, d_head]` for the batch's positions.
    fn rotary(&self, positions: &Tensor) -> Result<Option<(Tensor, Tensor)>> {
        let Some(inv_freq) = &self.inv_freq else {
            return Ok(None);
        };
        let freqs = positions
            .f_to_kind(Kind::Float)?
            .f_unsqueeze(-1)?
            .f_mul(inv_freq)?; // [b, t, d/2]
        let emb = Tensor::f_cat(&[&freqs, &freqs], -1)?.f_unsqueeze(1)?;
        Ok(Some((
            emb.f_cos()?.f_to_kind(self.kind)?,
            emb.f_sin()?.f_to_kind(self.kind)?,
        )))
    }

    /// Self-attention of one block. Returns `z: [b, t, h, d_head]` and this pass's `(k, v)`
    /// (with the cached past prepended) for the KV cache.
    fn attention(
        &self,
        attn: &Attention,
        x: &Tensor,
        allowed: &Tensor,
        rotary: Option<&(Tensor, Tensor)>,
        past: Option<(&Tensor, &Tensor)>,
        first_query: i64,
    ) -> Result<(Tensor, (Tensor, Tensor))> {
        let c = &self.config;
        let (b, t, _) = x.size3()?;
        let (h, kvh, dh) = (c.n_heads as i64, c.n_kv_heads as i64, c.d_head as i64);
        // Queries (and so outputs) only from `first_query` on; keys and values everywhere.
        let tq = t - first_query;
        let q = attn
            .q
            .forward(&x.f_narrow(1, first_query, tq)?)?
            .f_view([b, tq, h, dh])?
            .f_transpose(1, 2)?;
        let mut k = attn
            .k
            .forward(x)?
            .f_view([b, t, kvh, dh])?
            .f_transpose(1, 2)?;
        let v = attn
            .v
            .forward(x)?
            .f_view([b, t, kvh, dh])?
            .f_transpose(1, 2)?;
        let q = match rotary {
            Some((cos, sin)) => {
                k = k.f_mul(cos)?.f_add(&rotate_half(&k)?.f_mul(sin)?)?;
                let (qcos, qsin) = (
                    cos.f_narrow(2, first_query, tq)?,
                    sin.f_narrow(2, first_query, tq)?,
                );
                q.f_mul(&qcos)?.f_add(&rotate_half(&q)?.f_mul(&qsin)?)?
            }
            None => q,
        };
        let (k, v) = match past {
            Some((pk, pv)) => (Tensor::f_cat(&[pk, &k], 2)?, Tensor::f_cat(&[pv, &v], 2)?),
            None => (k, v),
        };
        // Grouped-query attention without copying keys/values: each key/value head serves
        // `rep = n_heads / n_kv_heads` consecutive query heads (transformers' `repeat_kv`), so
        // those heads' queries are stacked as extra rows against the shared keys.
        let rep = h / kvh;
        let q = q.f_reshape([b, kvh, rep * tq, dh])?;
        let scale = 1.0 / (dh as f64).sqrt();
        let scores = q.f_matmul(&k.f_transpose(-2, -1)?)?.f_mul_scalar(scale)?;
        // The most negative finite value of the compute dtype: f32::MIN overflows f16 and
        // bf16 (libtorch then refuses the fill), and -inf would turn fully masked rows (the
        // padding queries of a left-padded batch) into NaN.
        let masked_value = match self.kind {
            Kind::Half => -65504.0,
            Kind::BFloat16 => -3.389_531_389_251_535_5e38,
            _ => f64::from(f32::MIN),
        };
        let allowed = allowed.f_narrow(2, first_query, tq)?;
        let allowed = if rep > 1 {
            allowed.f_repeat([1, 1, rep, 1])?
        } else {
            allowed
        };
        let scores = scores.f_masked_fill(&allowed.f_logical_not()?, masked_value)?;
        let weights = scores.f_softmax(-1, Kind::Float)?.f_to_kind(self.kind)?;
        let z = weights
            .f_matmul(&v)?
            .f_reshape([b, h, tq, dh])?
            .f_transpose(1, 2)?
            .f_contiguous()?;
        Ok((z, (k, v)))
    }

    fn mlp_post(mlp: &Mlp, x: &Tensor) -> Result<Tensor> {
        Ok(match mlp {
            Mlp::Gelu { fc_in, .. } => fc_in.forward(x)?.f_gelu("tanh")?,
            Mlp::SwiGlu { gate, up, .. } => gate.forward(x)?.f_silu()?.f_mul(&up.forward(x)?)?,
        })
    }

    fn mlp_out(mlp: &Mlp, post: &Tensor) -> Result<Tensor> {
        match mlp {
            Mlp::Gelu { fc_out, .. } => fc_out.forward(post),
            Mlp::SwiGlu { down, .. } => down.forward(post),
        }
    }

    fn block(&self, layer: usize) -> Result<&Block> {
        self.blocks.get(layer).ok_or(Error::LayerOutOfRange {
            layer,
            n_layers: self.blocks.len(),
        })
    }

    fn weight_slot(&mut self, id: WeightId) -> Result<&mut Tensor> {
        let n_layers = self.blocks.len();
        let missing = |id: WeightId| Error::Edit(format!("this model has no weight {id}"));
        if let Some(Layer(layer)) = id.layer() {
            if layer >= n_layers {
                return Err(Error::LayerOutOfRange { layer, n_layers });
            }
        }
        fn block(blocks: &mut [Block], l: Layer) -> Result<&mut Block> {
            let n_layers = blocks.len();
            blocks.get_mut(l.0).ok_or(Error::LayerOutOfRange {
                layer: l.0,
                n_layers,
            })
        }
        Ok(match id {
            WeightId::Embed => &mut self.embed,
            WeightId::Unembed => &mut self.unembed,
            WeightId::AttnQ(l) => &mut block(&mut self.blocks, l)?.attn.q.weight,
            WeightId::AttnK(l) => &mut block(&mut self.blocks, l)?.attn.k.weight,
            WeightId::AttnV(l) => &mut block(&mut self.blocks, l)?.attn.v.weight,
            WeightId::AttnOut(l) => &mut block(&mut self.blocks, l)?.attn.o.weight,
            WeightId::MlpIn(l) => match &mut block(&mut self.blocks, l)?.mlp {
                Mlp::Gelu { fc_in, .. } => &mut fc_in.weight,
                Mlp::SwiGlu { up, .. } => &mut up.weight,
            },
            WeightId::MlpGate(l) => match &mut block(&mut self.blocks, l)?.mlp {
                Mlp::Gelu { .. } => return Err(missing(id)),
                Mlp::SwiGlu { gate, .. } => &mut gate.weight,
            },
            WeightId::MlpOut(l) => match &mut block(&mut self.blocks, l)?.mlp {
                Mlp::Gelu { fc_out, .. } => &mut fc_out.weight,
                Mlp::SwiGlu { down, .. } => &mut down.weight,
            },
        })
    }
}

/// The weights a loader hands to [`Transformer::new`], already `[out, in]`, in the compute
/// dtype and on the target device.
pub(crate) struct TransformerParts {
    pub embed: Tensor,
    pub pos_embed: Option<Tensor>,
    pub blocks: Vec<Block>,
    pub ln_final: Norm,
    pub unembed: Tensor,
}

impl HookableModel for Transformer {
    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn device(&self) -> Device {
        self.device
    }

    fn kind(&self) -> Kind {
        self.kind
    }

    fn hook_points(&self) -> Vec<HookPoint> {
        let mut points = vec![HookPoint::Embed];
        if self.pos_embed.is_some() {
            points.push(HookPoint::PosEmbed);
        }
        for layer in 0..self.blocks.len() {
            points.extend(
                BlockSite::ALL
                    .iter()
                    .map(|&site| HookPoint::block(layer, site)),
            );
        }
        points.push(HookPoint::LnFinal);
        points
    }

    fn embed_tokens(&self, ids: &Tensor) -> Result<Tensor> {
        self.check_ids(ids)?;
        let ids = ids.f_to_device(self.device)?;
        Ok(Tensor::f_embedding(&self.embed, &ids, -1, false, false)?)
    }

    fn forward_with(
        &self,
        batch: &TokenBatch,
        options: ForwardOptions<'_>,
        hooks: &mut dyn Intervention,
    ) -> Result<Outcome> {
        let ForwardOptions { kv_cache, logits } = options;
        let (b, t) = batch.ids.size2()?;
        if t == 0 {
            return Err(Error::EmptyPrompt);
        }
        let past = kv_cache.as_ref().map_or(0, |c| c.len);
        let total = past + t as usize;
        if total > self.config.n_ctx {
            return Err(Error::ContextOverflow {
                len: total,
                n_ctx: self.config.n_ctx,
            });
        }
        let mask_len = batch.attention_mask.size().get(1).copied().unwrap_or(0);
        if batch.attention_mask.size().first() != Some(&b) || mask_len != total as i64 {
            return Err(Error::ShapeMismatch {
                name: "attention_mask".into(),
                expected: vec![b, total as i64],
                got: batch.attention_mask.size(),
            });
        }
        let positions = batch.positions.f_to_device(self.device)?;
        self.check_positions(&positions)?;

        let embed = self.embed_tokens(&batch.ids)?;
        let mut resid = hook!(hooks, HookPoint::Embed, embed);
        if let Some(pos_embed) = &self.pos_embed {
            let pos = Tensor::f_embedding(pos_embed, &positions, -1, false, false)?;
            let pos = hook!(hooks, HookPoint::PosEmbed, pos);
            resid = resid.f_add(&pos)?;
        }
        let mask = batch.attention_mask.f_to_device(self.device)?;
        let mut new_kv = Vec::with_capacity(self.blocks.len());
        let run = BlockRun {
            layers: 0..self.blocks.len(),
            positions: &positions,
            attention_mask: &mask,
            past: kv_cache.as_deref(),
            last_position_only: false,
        };
        let resid = match self.run_blocks(run, resid, Some(&mut new_kv), hooks)? {
            BlocksOutcome::Resid(r) => r,
            BlocksOutcome::Stopped(p) => return Ok(Outcome::Stopped(p)),
        };
        let normed = self.ln_final.forward(&resid)?;
        let normed = hook!(hooks, HookPoint::LnFinal, normed);
        let normed = match logits {
            LogitsAt::All => normed,
            LogitsAt::Last => {
                let d = normed.size().last().copied().unwrap_or(0);
                let last = batch
                    .last_positions()?
                    .f_to_device(self.device)?
                    .f_view([b, 1, 1])?
                    .f_expand([b, 1, d], false)?;
                normed.f_gather(1, &last, false)?.f_squeeze_dim(1)?
            }
        };
        let out = normed.f_linear::<&Tensor>(&self.unembed, None)?;
        if let Some(cache) = kv_cache {
            cache.layers = new_kv;
            cache.len = total;
        }
        Ok(Outcome::Logits(out))
    }

    fn forward_blocks(
        &self,
        input: BlocksInput<'_>,
        hooks: &mut dyn Intervention,
    ) -> Result<BlocksOutcome> {
        let BlocksInput {
            layers,
            resid,
            positions,
            past,
            last_position_only,
        } = input;
        let n_layers = self.blocks.len();
        if layers.start > layers.end || layers.end > n_layers {
            return Err(Error::LayerOutOfRange {
                layer: layers.end.max(layers.start),
                n_layers,
            });
        }
        let (b, s, d) = resid.size3()?;
        if d != self.config.d_model as i64 || positions.size() != [b, s] {
            return Err(Error::ShapeMismatch {
                name: "forward_blocks input (resid [batch, pos, d_model], positions [batch, pos])"
                    .into(),
                expected: vec![b, s, self.config.d_model as i64],
                got: resid.size(),
            });
        }
        let p = past.map_or(0, |c| c.len) as i64;
        if let Some(past) = past {
            for l in layers.clone() {
                let ok = past.layer(l).is_some_and(|(k, _)| {
                    k.size().first() == Some(&b) && k.size().get(2) == Some(&p)
                });
                if !ok {
                    return Err(Error::InvalidInput(format!(
                        "past keys/values for layer {l} must have batch {b} and {p} positions"
                    )));
                }
            }
        }
        let positions = positions.f_to_device(self.device)?;
        self.check_positions(&positions)?;
        let mask = Tensor::f_ones([b, p + s], (Kind::Int64, self.device))?;
        let run = BlockRun {
            layers,
            positions: &positions,
            attention_mask: &mask,
            past,
            last_position_only,
        };
        self.run_blocks(
            run,
            resid.f_to_device(self.device)?.f_to_kind(self.kind)?,
            None,
            hooks,
        )
    }

    fn unembed(&self, resid: &Tensor) -> Result<Tensor> {
        let normed = self.ln_final.forward(resid)?;
        Ok(normed.f_linear::<&Tensor>(&self.unembed, None)?)
    }
}

/// The shared arguments of [`Transformer::run_blocks`].
struct BlockRun<'a> {
    layers: std::ops::Range<usize>,
    /// `[b, s]` positions of the new tokens.
    positions: &'a Tensor,
    /// `[b, past + s]` 1 = real token.
    attention_mask: &'a Tensor,
    past: Option<&'a KvCache>,
    /// The last block computes outputs for the last position only.
    last_position_only: bool,
}

impl Transformer {
    fn check_positions(&self, positions: &Tensor) -> Result<()> {
        if positions.numel() == 0 {
            return Err(Error::EmptyPrompt);
        }
        let max_pos = positions.f_max()?.int64_value(&[]);
        if max_pos >= self.config.n_ctx as i64 {
            return Err(Error::ContextOverflow {
                len: max_pos as usize + 1,
                n_ctx: self.config.n_ctx,
            });
        }
        Ok(())
    }

    /// Runs `run.layers` on `resid: [b, s, d]`, firing the block hook points; appends each
    /// layer's keys/values (past included) to `new_kv` when given.
    fn run_blocks(
        &self,
        run: BlockRun<'_>,
        mut resid: Tensor,
        mut new_kv: Option<&mut Vec<Option<(Tensor, Tensor)>>>,
        hooks: &mut dyn Intervention,
    ) -> Result<BlocksOutcome> {
        let (b, s, _) = resid.size3()?;
        let past_len = run.past.map_or(0, |c| c.len) as i64;
        let allowed = Self::attention_allowed(run.attention_mask, s, past_len)?;
        let rotary = self.rotary(run.positions)?;
        let (h, dh) = (self.config.n_heads as i64, self.config.d_head as i64);
        macro_rules! hook {
            ($point:expr, $act:expr) => {{
                let point = $point;
                match fire(hooks, point, $act)? {
                    Some(t) => t,
                    None => return Ok(BlocksOutcome::Stopped(point)),
                }
            }};
        }
        let last_layer = run.layers.end.checked_sub(1);
        for l in run.layers {
            let block = self.block(l)?;
            resid = hook!(HookPoint::block(l, BlockSite::ResidPre), resid);
            let x = block.ln1.forward(&resid)?;
            let cached = run.past.and_then(|c| c.layer(l));
            let first_query = if run.last_position_only && Some(l) == last_layer {
                s - 1
            } else {
                0
            };
            let (z, kv) = self.attention(
                &block.attn,
                &x,
                &allowed,
                rotary.as_ref(),
                cached,
                first_query,
            )?;
            if let Some(new_kv) = new_kv.as_deref_mut() {
                new_kv.push(Some(kv));
            }
            if first_query > 0 {
                resid = resid.f_narrow(1, first_query, s - first_query)?;
            }
            let z = hook!(HookPoint::block(l, BlockSite::Z), z);
            let attn_out = block
                .attn
                .o
                .forward(&z.f_reshape([b, s - first_query, h * dh])?)?;
            let attn_out = hook!(HookPoint::block(l, BlockSite::AttnOut), attn_out);
            resid = hook!(
                HookPoint::block(l, BlockSite::ResidMid),
                resid.f_add(&attn_out)?
            );
            let x = block.ln2.forward(&resid)?;
            let post = hook!(
                HookPoint::block(l, BlockSite::MlpPost),
                Self::mlp_post(&block.mlp, &x)?
            );
            let mlp_out = hook!(
                HookPoint::block(l, BlockSite::MlpOut),
                Self::mlp_out(&block.mlp, &post)?
            );
            resid = hook!(
                HookPoint::block(l, BlockSite::ResidPost),
                resid.f_add(&mlp_out)?
            );
        }
        Ok(BlocksOutcome::Resid(resid))
    }
}

impl EditableModel for Transformer {
    fn weight(&self, id: WeightId) -> Result<&Tensor> {
        Ok(match id {
            WeightId::Embed => &self.embed,
            WeightId::Unembed => &self.unembed,
            WeightId::AttnQ(l) => &self.block(l.0)?.attn.q.weight,
            WeightId::AttnK(l) => &self.block(l.0)?.attn.k.weight,
            WeightId::AttnV(l) => &self.block(l.0)?.attn.v.weight,
            WeightId::AttnOut(l) => &self.block(l.0)?.attn.o.weight,
            WeightId::MlpIn(l) => match &self.block(l.0)?.mlp {
                Mlp::Gelu { fc_in, .. } => &fc_in.weight,
                Mlp::SwiGlu { up, .. } => &up.weight,
            },
            WeightId::MlpGate(l) => match &self.block(l.0)?.mlp {
                Mlp::Gelu { .. } => {
                    return Err(Error::Edit(format!("this model has no weight {id}")))
                }
                Mlp::SwiGlu { gate, .. } => &gate.weight,
            },
            WeightId::MlpOut(l) => match &self.block(l.0)?.mlp {
                Mlp::Gelu { fc_out, .. } => &fc_out.weight,
                Mlp::SwiGlu { down, .. } => &down.weight,
            },
        })
    }

    fn apply(&mut self, delta: &WeightDelta) -> Result<EditUndo> {
        let target = delta.target();
        let id = self.id;
        let serial = self.next_serial;
        let w = self.weight_slot(target)?;
        let dense = delta
            .to_dense(&w.size())?
            .f_to_device(w.device())?
            .f_to_kind(w.kind())?;
        let original = tch::no_grad(|| -> Result<Tensor> {
            let original = crate::intervention::copy_of(w)?;
            let _ = w.f_add_(&dense)?;
            Ok(original)
        })?;
        self.next_serial += 1;
        self.edits.push(serial);
        Ok(EditUndo {
            target,
            original,
            model_id: id,
            serial,
        })
    }

    fn undo(&mut self, undo: EditUndo) -> Result<()> {
        if undo.model_id != self.id {
            return Err(Error::Edit(
                "this undo record belongs to another model".into(),
            ));
        }
        if self.edits.last() != Some(&undo.serial) {
            return Err(Error::Edit(format!(
                "undo of edit #{} out of order: undo the later edits first (open edits: {:?})",
                undo.serial, self.edits
            )));
        }
        let w = self.weight_slot(undo.target)?;
        tch::no_grad(|| w.f_copy_(&undo.original))?;
        self.edits.pop();
        Ok(())
    }
}

impl Transformer {
    /// The architecture family.
    pub fn architecture(&self) -> Architecture {
        self.config.arch
    }
}
