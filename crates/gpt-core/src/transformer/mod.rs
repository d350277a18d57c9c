//! [`Transformer`]: the decoder-only model shared by every architecture, with hook points.
//!
//! The architecture-specific parts (which norm, which MLP, learned or rotary positions) are
//! small enums chosen from the [`ModelConfig`] (`layers.rs`, `attention.rs`); each family's
//! folder under `src/families/` (its `load.rs` and `names.rs`) is the only place that knows
//! its checkpoint names. Hooks fire in one place, `blocks.rs`; weight access and edits are
//! in `editing.rs`.

mod attention;
mod blocks;
mod editing;
mod layers;

use std::sync::atomic::{AtomicU64, Ordering};

use tch::{Device, Kind, Tensor};

pub(crate) use attention::Attention;
use attention::{
    attention_allowed, inv_freq, rotary_tables, scale_inv_freq, AttentionMask, Heads, RotaryTables,
};
use blocks::{fire, BlockRun};
pub(crate) use layers::{Block, BlockLayout, Linear, Mlp, Norm};

use crate::config::{Architecture, ModelConfig, RopeScaling};
use crate::error::{Error, Result};
use crate::hook::{BlockSite, HookPoint};
use crate::input::TokenBatch;
use crate::intervention::Intervention;
use crate::model::{
    BlocksInput, BlocksOutcome, ForwardOptions, HookableModel, LogitsAt, Outcome, ResumableModel,
};

/// A decoder-only transformer (every supported family: GPT-2, Llama-like, GPT-NeoX, GPT-J) with hook points and editable weights.
///
/// Built by [`crate::load_model`] or the architecture loaders; see [`HookableModel`],
/// [`ResumableModel`] and [`crate::EditableModel`] for how to run and edit it.
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
    /// `[vocab]`: the unembedding's bias (GPT-J's `lm_head`).
    pub(crate) unembed_bias: Option<Tensor>,
    /// `[rotary_dim / 2]` rotary inverse frequencies (rotary families).
    pub(crate) inv_freq: Option<Tensor>,
    /// `[rotary_dim / 2]`: the sliding layers' own frequencies (Gemma 3).
    pub(crate) inv_freq_sliding: Option<Tensor>,
    pub(crate) id: u64,
    pub(crate) edits: Vec<u64>,
    pub(crate) next_serial: u64,
}

static NEXT_MODEL_ID: AtomicU64 = AtomicU64::new(1);

/// Runs the intervention at one point; yields the (possibly replaced) activation, or returns
/// `Ok($stopped(point))` from the enclosing function when the intervention stops the pass.
macro_rules! hook {
    ($hooks:expr, $point:expr, $act:expr, $stopped:path) => {{
        let point = $point;
        match fire($hooks, point, $act)? {
            Some(t) => t,
            None => return Ok($stopped(point)),
        }
    }};
}
pub(crate) use hook;

/// The weights a loader hands to [`Transformer::new`], already `[out, in]`, in the compute
/// dtype and on the target device.
pub(crate) struct TransformerParts {
    pub embed: Tensor,
    pub pos_embed: Option<Tensor>,
    pub blocks: Vec<Block>,
    pub ln_final: Norm,
    pub unembed: Tensor,
    pub unembed_bias: Option<Tensor>,
}

impl Transformer {
    pub(crate) fn new(
        config: ModelConfig,
        device: Device,
        kind: Kind,
        parts: TransformerParts,
    ) -> Result<Self> {
        let frequencies = |theta: f64, scaling| {
            scale_inv_freq(
                inv_freq(theta, config.rotary_dims(), kind, device)?,
                theta,
                config.rotary_dims(),
                scaling,
            )
        };
        let inv_freq = config
            .rope_theta
            .map(|theta| frequencies(theta, config.rope_scaling))
            .transpose()?;
        let inv_freq_sliding = config
            .sliding_rope
            .map(|rope| frequencies(rope.theta, rope.scaling))
            .transpose()?;
        Ok(Self {
            config,
            device,
            kind,
            embed: parts.embed,
            pos_embed: parts.pos_embed,
            blocks: parts.blocks,
            ln_final: parts.ln_final,
            unembed: parts.unembed,
            unembed_bias: parts.unembed_bias,
            inv_freq,
            inv_freq_sliding,
            id: NEXT_MODEL_ID.fetch_add(1, Ordering::Relaxed),
            edits: Vec::new(),
            next_serial: 0,
        })
    }

    /// The architecture family.
    pub fn architecture(&self) -> Architecture {
        self.config.arch
    }

    fn heads(&self) -> Heads {
        Heads {
            n_heads: self.config.n_heads as i64,
            n_kv_heads: self.config.n_kv_heads as i64,
            d_head: self.config.d_head as i64,
            scale: 1.0
                / self
                    .config
                    .query_pre_attn_scalar
                    .unwrap_or(self.config.d_head as f64)
                    .sqrt(),
            softcap: self.config.attn_softcap,
        }
    }

    fn check_ids(&self, ids: &Tensor) -> Result<()> {
        if ids.numel() == 0 {
            return Err(Error::EmptyPrompt);
        }
        let min = ids.f_min()?.f_int64_value(&[])?;
        let max = ids.f_max()?.f_int64_value(&[])?;
        let vocab_size = self.config.vocab_size;
        if min < 0 || max >= vocab_size as i64 {
            let id = if min < 0 { min } else { max };
            return Err(Error::TokenOutOfVocabulary { id, vocab_size });
        }
        Ok(())
    }

    fn check_positions(&self, positions: &Tensor) -> Result<()> {
        if positions.numel() == 0 {
            return Err(Error::EmptyPrompt);
        }
        let max_pos = positions.f_max()?.f_int64_value(&[])?;
        if max_pos >= self.config.n_ctx as i64 {
            return Err(Error::ContextOverflow {
                len: max_pos as usize + 1,
                n_ctx: self.config.n_ctx,
            });
        }
        Ok(())
    }

    /// `(cos, sin)` tables `[batch, 1, pos, rotary_dim]` for rotary models.
    fn rotary(&self, positions: &Tensor) -> Result<Option<RotaryTables>> {
        self.tables(self.inv_freq.as_ref(), self.config.rope_scaling, positions)
    }

    /// The sliding layers' own tables, when they have their own rope (Gemma 3).
    fn rotary_sliding(&self, positions: &Tensor) -> Result<Option<RotaryTables>> {
        let scaling = self.config.sliding_rope.and_then(|r| r.scaling);
        self.tables(self.inv_freq_sliding.as_ref(), scaling, positions)
    }

    fn tables(
        &self,
        inv_freq: Option<&Tensor>,
        scaling: Option<RopeScaling>,
        positions: &Tensor,
    ) -> Result<Option<RotaryTables>> {
        let interleaved = self.config.arch == Architecture::GptJ;
        let scale = scaling.map_or(1.0, |s| s.attention_factor());
        inv_freq
            .map(|f| rotary_tables(f, positions, self.kind, interleaved, scale))
            .transpose()
    }

    /// `resid: [.., d_model]` → logits `[.., vocab]`: `normed · W_Uᵀ (+ b_U)` (soft-capped
    /// for Gemma 2).
    fn logits(&self, normed: &Tensor) -> Result<Tensor> {
        let logits = normed.f_linear(&self.unembed, self.unembed_bias.as_ref())?;
        Ok(match self.config.final_softcap {
            // Gemma 2: `c·tanh(logits / c)`.
            Some(cap) => logits.f_div_scalar(cap)?.f_tanh()?.f_mul_scalar(cap)?,
            None => logits,
        })
    }

    fn block(&self, layer: usize) -> Result<&Block> {
        self.blocks.get(layer).ok_or(Error::LayerOutOfRange {
            layer,
            n_layers: self.blocks.len(),
        })
    }
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
        for (layer, block) in self.blocks.iter().enumerate() {
            // Parallel blocks have no residual between attention and MLP (TransformerLens
            // leaves out `hook_resid_mid` for them too).
            let parallel = block.layout != BlockLayout::Sequential;
            points.extend(
                BlockSite::ALL
                    .iter()
                    .filter(|&&site| !(parallel && site == BlockSite::ResidMid))
                    .map(|&site| HookPoint::block(layer, site)),
            );
        }
        points.push(HookPoint::LnFinal);
        points
    }

    fn embed_tokens(&self, ids: &Tensor) -> Result<Tensor> {
        self.check_ids(ids)?;
        let ids = ids.f_to_device(self.device)?;
        let embedded = Tensor::f_embedding(&self.embed, &ids, -1, false, false)?;
        Ok(match self.config.embed_scale {
            // As transformers: the scale cast to the weights' dtype, then multiplied.
            Some(scale) => {
                let scale = Tensor::f_scalar_tensor(scale, (self.kind, self.device))?;
                embedded.f_mul(&scale)?
            }
            None => embedded,
        })
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
        let mut resid = hook!(hooks, HookPoint::Embed, embed, Outcome::Stopped);
        if let Some(pos_embed) = &self.pos_embed {
            let pos = Tensor::f_embedding(pos_embed, &positions, -1, false, false)?;
            let pos = hook!(hooks, HookPoint::PosEmbed, pos, Outcome::Stopped);
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
        let normed = hook!(hooks, HookPoint::LnFinal, normed, Outcome::Stopped);
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
        let out = self.logits(&normed)?;
        if let Some(cache) = kv_cache {
            cache.layers = new_kv;
            cache.len = total;
        }
        Ok(Outcome::Logits(out))
    }
}

impl ResumableModel for Transformer {
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
            attention_mask,
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
        let mask = match attention_mask {
            Some(mask) if mask.size() == [b, p + s] => mask.f_to_device(self.device)?,
            Some(mask) => {
                return Err(Error::ShapeMismatch {
                    name: "forward_blocks attention_mask [batch, past + pos]".into(),
                    expected: vec![b, p + s],
                    got: mask.size(),
                })
            }
            None => Tensor::f_ones([b, p + s], (Kind::Int64, self.device))?,
        };
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
        self.logits(&self.ln_final.forward(resid)?)
    }
}
