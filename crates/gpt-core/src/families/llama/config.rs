//! The Llama layout's Hugging Face `config.json` format (Llama, SmolLM2, Qwen2, Mistral,
//! Gemma 1–3) and the family's fixed facts ([`ModelConfig::llama`]). Gemma's details are
//! read in `config/gemma.rs`.

use std::path::Path;

use serde::Deserialize;

use crate::config::{
    rope_scaling_of, Activation, Architecture, ModelConfig, NormKind, Rope, RopeContext,
    RopeScaling, Sizes,
};
use crate::error::{Error, Result};
use crate::families::hf::{self, TokenIds};

mod gemma;

use gemma::Gemma;

/// The `model_type`s read by this family.
pub(crate) const MODEL_TYPES: &[&str] = &[
    "llama",
    "qwen2",
    "mistral",
    "gemma",
    "gemma2",
    "gemma3_text",
];

impl ModelConfig {
    /// The Llama layout of `sizes` with Llama's details: rotary positions (θ = 10000, no
    /// rescaling), RMSNorm, SwiGLU MLP, no biases, untied unembedding, no window, no special
    /// tokens. Qwen2, Mistral and the Gemmas are set on top by their readers.
    pub(crate) fn llama(model_type: &str, sizes: Sizes) -> Self {
        ModelConfig {
            rope_theta: Some(10000.0),
            ..Self::with_sizes(
                Architecture::Llama,
                model_type,
                sizes,
                NormKind::RmsNorm,
                Activation::Silu,
            )
        }
    }
}

/// Reads the `config.json` of a Llama-layout `model_type` (one of [`MODEL_TYPES`]; not yet
/// validated).
pub(crate) fn config_from_hf(model_type: &str, text: &str, source: &Path) -> Result<ModelConfig> {
    hf::parse::<LlamaHfConfig>(text, source)?.into_config(model_type, source)
}

/// The fields of a Llama / Qwen2 / Mistral / Gemma `config.json` (Hugging Face names).
#[derive(Deserialize, Debug)]
struct LlamaHfConfig {
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    vocab_size: usize,
    #[serde(default = "hf::default_ctx")]
    max_position_embeddings: usize,
    #[serde(default = "default_rms_eps")]
    rms_norm_eps: f64,
    rope_theta: Option<f64>,
    rope_scaling: Option<serde_json::Value>,
    /// transformers ≥ 5 writes `{"rope_theta": .., "rope_type": .., <scaling fields>}` here
    /// instead.
    rope_parameters: Option<serde_json::Value>,
    /// Gemma 2: scores scaled by `1/√query_pre_attn_scalar` (default 256).
    query_pre_attn_scalar: Option<f64>,
    /// Gemma 2: missing = 50, null = none.
    #[serde(default, deserialize_with = "present")]
    attn_logit_softcapping: Option<Option<f64>>,
    /// Gemma 2: missing = 30, null = none.
    #[serde(default, deserialize_with = "present")]
    final_logit_softcapping: Option<Option<f64>>,
    /// Gemma 2: `sliding_attention` / `full_attention` per layer (default: alternating,
    /// sliding first).
    layer_types: Option<Vec<String>>,
    /// Gemma 3 before transformers 5: the sliding layers' rotary base (default 10000).
    rope_local_base_freq: Option<f64>,
    /// Gemma 2: must not be true (bidirectional attention is not a language model).
    use_bidirectional_attention: Option<bool>,
    /// Phi-3 style: the pretraining context length outside the scaling object.
    original_max_position_embeddings: Option<f64>,
    /// Mistral (and Qwen2 when `use_sliding_window`): the attention window.
    sliding_window: Option<usize>,
    /// Qwen2: whether `sliding_window` applies at all.
    use_sliding_window: Option<bool>,
    /// Default: tied for Gemma, untied otherwise (as transformers' config classes).
    tie_word_embeddings: Option<bool>,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    /// Default: silu (Gemma: gelu_pytorch_tanh).
    hidden_act: Option<String>,
    /// Gemma configs of transformers 4.38–4.x: the activation, when set, is here.
    hidden_activation: Option<String>,
    bos_token_id: Option<TokenIds>,
    eos_token_id: Option<TokenIds>,
}

fn default_rms_eps() -> f64 {
    1e-6
}

/// A field that may be missing (outer `None`) or explicitly null (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<f64>>, D::Error> {
    Option::<f64>::deserialize(d).map(Some)
}

impl LlamaHfConfig {
    fn into_config(self, model_type: &str, source: &Path) -> Result<ModelConfig> {
        let bad = |reason: String| Error::Config {
            path: source.to_path_buf(),
            reason,
        };
        let gemma = Gemma::of(model_type);
        let activation = self.activation(model_type, gemma).map_err(&bad)?;
        let (rope_theta, rope_scaling, sliding_rope) = self.ropes(gemma).map_err(&bad)?;
        let (sliding_window, sliding_layers) = self.windows(model_type, gemma).map_err(&bad)?;
        if self.mlp_bias {
            return Err(bad("mlp_bias = true is not supported".into()));
        }
        if self.num_attention_heads == 0 {
            return Err(bad("num_attention_heads must be positive".into()));
        }
        // GemmaConfig's default head_dim is 256, not hidden_size / heads.
        let d_head = self.head_dim.unwrap_or(if gemma.is_some() {
            256
        } else {
            self.hidden_size / self.num_attention_heads
        });
        let config = ModelConfig {
            rope_theta: Some(rope_theta),
            rope_scaling,
            activation,
            sliding_rope,
            sliding_layers,
            sliding_window,
            tied_embeddings: self.tie_word_embeddings.unwrap_or(gemma.is_some()),
            // Qwen2 always has q/k/v biases; Llama and Mistral only with `attention_bias`.
            qkv_bias: model_type == "qwen2" || self.attention_bias,
            bos_token_id: self.bos_token_id.as_ref().and_then(TokenIds::first),
            eos_token_id: self.eos_token_id.as_ref().and_then(TokenIds::first),
            ..ModelConfig::llama(
                model_type,
                Sizes {
                    n_layers: self.num_hidden_layers,
                    d_model: self.hidden_size,
                    n_heads: self.num_attention_heads,
                    n_kv_heads: self.num_key_value_heads.unwrap_or(self.num_attention_heads),
                    d_head,
                    d_mlp: self.intermediate_size,
                    vocab_size: self.vocab_size,
                    n_ctx: self.max_position_embeddings,
                    norm_eps: self.rms_norm_eps,
                },
            )
        };
        Ok(match gemma {
            Some(gemma) => self.gemma_details(gemma, config),
            None => config,
        })
    }

    /// The gate's activation: `hidden_act` (Gemma: transformers 4.x's `hidden_activation`
    /// first), SiLU by default (Gemma: tanh-GELU).
    fn activation(
        &self,
        model_type: &str,
        gemma: Option<Gemma>,
    ) -> std::result::Result<Activation, String> {
        let gemma = gemma.is_some();
        let act = self
            .hidden_activation
            .as_deref()
            .filter(|_| gemma)
            .or(self.hidden_act.as_deref())
            .unwrap_or(if gemma { "gelu_pytorch_tanh" } else { "silu" });
        // Gemma's legacy `gelu` means the tanh approximation (transformers rewrites it).
        match (gemma, act) {
            (false, "silu") => Ok(Activation::Silu),
            (true, "gelu_pytorch_tanh" | "gelu") => Ok(Activation::GeluTanh),
            (_, other) => Err(format!(
                "hidden_act `{other}` is not supported for {model_type} ({})",
                if gemma { "gelu_pytorch_tanh" } else { "silu" }
            )),
        }
    }

    /// `(rotary base, its scaling, the sliding layers' own rope)`: from `rope_theta` /
    /// `rope_scaling` or transformers 5's `rope_parameters` (Gemma 3: one per layer type).
    fn ropes(
        &self,
        gemma: Option<Gemma>,
    ) -> std::result::Result<(f64, Option<RopeScaling>, Option<Rope>), String> {
        let ctx = RopeContext {
            max_positions: self.max_position_embeddings,
            original_max_positions: self.original_max_position_embeddings,
        };
        if gemma == Some(Gemma::V3) {
            return self.gemma3_ropes(ctx);
        }
        let scaling = rope_scaling_of(
            self.rope_scaling.as_ref(),
            self.rope_parameters.as_ref(),
            ctx,
        )?;
        let theta = self
            .rope_theta
            .or(self
                .rope_parameters
                .as_ref()
                .and_then(|p| p.get("rope_theta"))
                .and_then(|t| t.as_f64()))
            .unwrap_or(10000.0);
        Ok((theta, scaling, None))
    }

    /// `(sliding window, which layers use it)`.
    fn windows(
        &self,
        model_type: &str,
        gemma: Option<Gemma>,
    ) -> std::result::Result<(Option<usize>, Option<Vec<bool>>), String> {
        // Mistral applies its window to every layer; Qwen2 only with `use_sliding_window`,
        // and then from layer `max_window_layers` on, which is not implemented.
        let sliding_window = match (model_type, self.use_sliding_window) {
            ("qwen2", Some(true)) => {
                return Err(
                    "use_sliding_window = true (Qwen2's per-layer windows) is not supported".into(),
                )
            }
            ("qwen2", _) => None,
            _ => self.sliding_window,
        };
        match gemma {
            Some(gemma) if gemma >= Gemma::V2 => {
                let layers = self.gemma_sliding_layers(gemma)?;
                Ok((Some(sliding_window.unwrap_or(4096)), Some(layers)))
            }
            _ => Ok((sliding_window, None)),
        }
    }
}
