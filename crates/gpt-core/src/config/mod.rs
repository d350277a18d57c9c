//! Model configuration: the validated [`ModelConfig`] every family shares, and the reading
//! of a Hugging Face `config.json`, which probes `model_type` and hands the text to its
//! family (`crate::families`: each family's wire format and its conversion live there).
//!
//! - `rope.rs`: rotary base and rescaling ([`Rope`], [`RopeScaling`]) and the one reader of
//!   `rope_scaling` / `rope_parameters`.
//! - `validate.rs`: [`ModelConfig::validate`], by concern.
//! - `serialize.rs`: the JSON form (a cache key: kept stable).

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::families;

mod rope;
mod serialize;
mod validate;

pub(crate) use rope::{parse_rope_scaling, rope_scaling_of, RopeContext};
pub use rope::{Rope, RopeScaling};

/// The architecture family, which fixes the block layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub enum Architecture {
    /// GPT-2 family: learned positions, LayerNorm, GELU (tanh) MLP, sequential attn → MLP,
    /// biases everywhere.
    Gpt2,
    /// Llama family (Llama, SmolLM2, Qwen2, Mistral): RMSNorm, SwiGLU MLP, rotary positions,
    /// grouped-query attention.
    Llama,
    /// GPT-NeoX / Pythia: LayerNorm, exact-GELU MLP, rotary positions on part of each head
    /// (half-split pairs), fused per-head q/k/v, biases, attention and MLP in parallel or in
    /// sequence (`use_parallel_residual`).
    GptNeox,
    /// GPT-J: one LayerNorm feeding attention and MLP in parallel, tanh-GELU MLP, rotary
    /// positions on the first `rotary_dim` dimensions (interleaved pairs), no q/k/v bias, an
    /// unembedding with bias.
    GptJ,
}

impl Architecture {
    /// Every family this crate loads (and draws random weights for), in a fixed order: what
    /// tests iterate over so that a new family is tested wherever the others are.
    pub const ALL: [Architecture; 4] = [
        Architecture::Gpt2,
        Architecture::Llama,
        Architecture::GptNeox,
        Architecture::GptJ,
    ];
}

/// The MLP's nonlinearity.
///
/// A GELU MLP (GPT-2, GPT-NeoX, GPT-J) takes [`Activation::GeluTanh`] or [`Activation::Gelu`];
/// the Llama layout's gated MLP takes [`Activation::Silu`] (SwiGLU) or
/// [`Activation::GeluTanh`] (Gemma's GeGLU) for its gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Activation {
    /// The tanh approximation of GELU (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
    /// The exact (erf) GELU (GPT-NeoX's `gelu`).
    Gelu,
    /// SiLU (`silu`), the gate of SwiGLU.
    Silu,
}

/// The kind of the normalisation layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NormKind {
    /// LayerNorm with weight and bias (GPT-2, GPT-NeoX, GPT-J).
    LayerNorm,
    /// RMSNorm scaling by `w` after the cast back to the compute dtype (Llama).
    RmsNorm,
    /// RMSNorm scaling by `1 + w` in the reduction dtype, before the cast back (Gemma).
    RmsNormPlusOne,
}

/// A validated model configuration (sizes and numeric constants).
///
/// `#[non_exhaustive]`: fields will be added as architectures are; build one with
/// [`ModelConfig::from_hf_json`], the loaders, or [`crate::random::tiny_config`] and
/// change fields on the value.
///
/// Its JSON form (`serde::Serialize`) is a cache key of statistics and result files; see
/// `serialize.rs`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ModelConfig {
    /// Architecture family.
    pub arch: Architecture,
    /// Name of the model family as the checkpoint states it (`gpt2`, `llama`, `qwen2`, ...).
    pub model_type: String,
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Number of query heads.
    pub n_heads: usize,
    /// Number of key/value heads (`n_heads` unless grouped-query attention).
    pub n_kv_heads: usize,
    /// Width of one head.
    pub d_head: usize,
    /// Hidden width of the MLP (the dimension of ROME's keys).
    pub d_mlp: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Context length (maximum number of positions).
    pub n_ctx: usize,
    /// Epsilon of the normalisation layers.
    pub norm_eps: f64,
    /// Rotary base (`rope_theta`); `None` for learned positions.
    pub rope_theta: Option<f64>,
    /// How the rotary frequencies are rescaled for long contexts (`rope_scaling`); `None`:
    /// plain `θ^(−2i/d)`.
    pub rope_scaling: Option<RopeScaling>,
    /// How many dimensions of each head rotate (GPT-NeoX's `rotary_pct`, GPT-J's
    /// `rotary_dim`); `None`: all of `d_head`.
    pub rotary_dim: Option<usize>,
    /// Attention and MLP read the same block input and their outputs are added together
    /// (GPT-J; GPT-NeoX's `use_parallel_residual`).
    pub parallel_attn_mlp: bool,
    /// The MLP's nonlinearity: of the GELU MLP (GPT-2, GPT-NeoX, GPT-J), or of the gated
    /// MLP's gate (Llama's SwiGLU, Gemma's GeGLU).
    pub activation: Activation,
    /// The normalisation layers' kind.
    pub norm: NormKind,
    /// Token embeddings are multiplied by this before they enter the residual stream
    /// (Gemma: `√d_model`, rounded to f32 as transformers does); `None`: not scaled.
    pub embed_scale: Option<f64>,
    /// Gemma 2's `query_pre_attn_scalar`: attention scores are scaled by `1/√this` instead of
    /// `1/√d_head`.
    pub query_pre_attn_scalar: Option<f64>,
    /// Gemma 2's `attn_logit_softcapping` `c`: scores become `c·tanh(scores / c)` before the
    /// mask and softmax.
    pub attn_softcap: Option<f64>,
    /// Gemma 2's `final_logit_softcapping` `c`: logits become `c·tanh(logits / c)`.
    pub final_softcap: Option<f64>,
    /// Gemma 2's sandwich norms: attention's and the MLP's outputs are normalised again
    /// before they join the residual stream (`post_attention_layernorm`,
    /// `post_feedforward_layernorm`); the hook points `attn_out` / `mlp_out` stay the
    /// projections' outputs, before those norms.
    pub post_norms: bool,
    /// Gemma 3: RMSNorms (`1 + w`) over each head's queries and keys, before the rotation.
    pub qk_norm: bool,
    /// Gemma 3: the rotary base and scaling of the sliding-window layers, which differ from
    /// the full layers' (`rope_theta`, `rope_scaling`); `None`: every layer uses those.
    pub sliding_rope: Option<Rope>,
    /// Which layers use `sliding_window` (Gemma 2's `layer_types`); `None`: every layer.
    pub sliding_layers: Option<Vec<bool>>,
    /// Sliding-window attention (Mistral's `sliding_window`): a query attends only to the
    /// last `w` positions, itself included; `None`: the whole causal past.
    pub sliding_window: Option<usize>,
    /// Whether the unembedding shares the token-embedding matrix.
    pub tied_embeddings: bool,
    /// Whether the q/k/v projections have biases (GPT-2, Qwen2).
    pub qkv_bias: bool,
    /// Beginning-of-sequence token id, if the model has one.
    pub bos_token_id: Option<i64>,
    /// End-of-sequence token id, if the model has one.
    pub eos_token_id: Option<i64>,
}

/// The sizes every family's config states (the rest follows from the family).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sizes {
    pub n_layers: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub d_head: usize,
    pub d_mlp: usize,
    pub vocab_size: usize,
    pub n_ctx: usize,
    pub norm_eps: f64,
}

impl ModelConfig {
    /// The exhaustive literal behind every family's constructor (e.g. `ModelConfig::gpt2`,
    /// `ModelConfig::llama` in `crate::families`): `sizes`, the block's kinds, and every
    /// optional feature off (no rotary positions, untied, no biases, no special tokens).
    /// Families set what they have on top (`..ModelConfig::with_sizes(..)`), so a new field
    /// is added here and where a family sets it, nowhere else.
    pub(crate) fn with_sizes(
        arch: Architecture,
        model_type: &str,
        sizes: Sizes,
        norm: NormKind,
        activation: Activation,
    ) -> Self {
        let Sizes {
            n_layers,
            d_model,
            n_heads,
            n_kv_heads,
            d_head,
            d_mlp,
            vocab_size,
            n_ctx,
            norm_eps,
        } = sizes;
        ModelConfig {
            arch,
            model_type: model_type.to_string(),
            n_layers,
            d_model,
            n_heads,
            n_kv_heads,
            d_head,
            d_mlp,
            vocab_size,
            n_ctx,
            norm_eps,
            rope_theta: None,
            rope_scaling: None,
            rotary_dim: None,
            parallel_attn_mlp: false,
            activation,
            norm,
            embed_scale: None,
            query_pre_attn_scalar: None,
            attn_softcap: None,
            final_softcap: None,
            post_norms: false,
            qk_norm: false,
            sliding_rope: None,
            sliding_layers: None,
            sliding_window: None,
            tied_embeddings: false,
            qkv_bias: false,
            bos_token_id: None,
            eos_token_id: None,
        }
    }

    /// How many dimensions of each head the rotary embedding turns (`rotary_dim`, else
    /// `d_head`).
    pub fn rotary_dims(&self) -> usize {
        self.rotary_dim.unwrap_or(self.d_head)
    }

    /// Reads and validates a Hugging Face `config.json`.
    ///
    /// # Errors
    /// [`Error::Io`] if unreadable, [`Error::Config`] for unknown architectures, missing
    /// fields or inconsistent sizes.
    pub fn from_hf_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_hf_json(&text, path)
    }

    /// Parses and validates the text of a Hugging Face `config.json`; `source` names it in
    /// errors. `model_type` picks the family, whose reader parses the rest.
    ///
    /// # Errors
    /// As [`ModelConfig::from_hf_file`].
    pub fn from_hf_json(text: &str, source: &Path) -> Result<Self> {
        let cfg_err = |reason: String| Error::Config {
            path: source.to_path_buf(),
            reason,
        };
        let probe: TypeProbe = serde_json::from_str(text).map_err(|e| cfg_err(e.to_string()))?;
        let model_type = probe.model_type.unwrap_or_default();
        if model_type.is_empty() {
            return Err(cfg_err("no `model_type` field".into()));
        }
        let config = match families::config_from_hf(&model_type, text, source) {
            Some(config) => config?,
            None => {
                let supported: Vec<&str> = families::model_types().collect();
                return Err(cfg_err(format!(
                    "unknown architecture `{model_type}` (supported model_types: {})",
                    supported.join(", ")
                )));
            }
        };
        config.validate(source)?;
        Ok(config)
    }
}

#[derive(Deserialize)]
struct TypeProbe {
    model_type: Option<String>,
}
