//! Model configuration: Hugging Face `config.json` wire formats and the validated config.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

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
}

/// A validated model configuration (sizes and numeric constants).
///
/// `#[non_exhaustive]`: fields will be added as architectures are; build one with
/// [`ModelConfig::from_hf_json`], the loaders, or [`crate::random::tiny_config`] and
/// change fields on the value.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
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
    /// Whether the unembedding shares the token-embedding matrix.
    pub tied_embeddings: bool,
    /// Whether the q/k/v projections have biases (GPT-2, Qwen2).
    pub qkv_bias: bool,
    /// Beginning-of-sequence token id, if the model has one.
    pub bos_token_id: Option<i64>,
    /// End-of-sequence token id, if the model has one.
    pub eos_token_id: Option<i64>,
}

impl ModelConfig {
    /// Checks the sizes for consistency.
    ///
    /// # Errors
    /// [`Error::Config`] naming `source` and the inconsistent field.
    pub fn validate(&self, source: &Path) -> Result<()> {
        let bad = |reason: String| {
            Err(Error::Config {
                path: source.to_path_buf(),
                reason,
            })
        };
        for (name, v) in [
            ("n_layers", self.n_layers),
            ("d_model", self.d_model),
            ("n_heads", self.n_heads),
            ("n_kv_heads", self.n_kv_heads),
            ("d_head", self.d_head),
            ("d_mlp", self.d_mlp),
            ("vocab_size", self.vocab_size),
            ("n_ctx", self.n_ctx),
        ] {
            if v == 0 {
                return bad(format!("{name} must be positive"));
            }
        }
        if self.arch == Architecture::Gpt2 && self.n_heads * self.d_head != self.d_model {
            return bad(format!(
                "d_model {} is not n_heads {} x d_head {}",
                self.d_model, self.n_heads, self.d_head
            ));
        }
        if self.n_heads % self.n_kv_heads != 0 {
            return bad(format!(
                "n_heads {} is not a multiple of n_kv_heads {}",
                self.n_heads, self.n_kv_heads
            ));
        }
        if self.rope_theta.is_some() && self.d_head % 2 != 0 {
            return bad(format!(
                "rotary embeddings need an even d_head, got {}",
                self.d_head
            ));
        }
        if !(self.norm_eps.is_finite() && self.norm_eps >= 0.0) {
            return bad(format!(
                "norm epsilon {} is not a finite non-negative number",
                self.norm_eps
            ));
        }
        if let Some(theta) = self.rope_theta {
            if !(theta.is_finite() && theta > 0.0) {
                return bad(format!("rope_theta {theta} must be positive"));
            }
        }
        for (name, id) in [
            ("bos_token_id", self.bos_token_id),
            ("eos_token_id", self.eos_token_id),
        ] {
            if let Some(id) = id {
                if id < 0 || id as usize >= self.vocab_size {
                    return bad(format!(
                        "{name} {id} is outside the vocabulary of {}",
                        self.vocab_size
                    ));
                }
            }
        }
        Ok(())
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
    /// errors.
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
        let config = match model_type.as_str() {
            "gpt2" => serde_json::from_str::<Gpt2HfConfig>(text)
                .map_err(|e| cfg_err(e.to_string()))?
                .into_config(source)?,
            "llama" | "qwen2" | "mistral" => serde_json::from_str::<LlamaHfConfig>(text)
                .map_err(|e| cfg_err(e.to_string()))?
                .into_config(&model_type, source)?,
            "" => return Err(cfg_err("no `model_type` field".into())),
            other => {
                return Err(cfg_err(format!(
                    "unknown architecture `{other}` (supported: gpt2, llama, qwen2, mistral)"
                )))
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

/// One token id or a list of them (HF allows both for `eos_token_id`).
#[derive(Deserialize, Clone, Debug)]
#[serde(untagged)]
enum TokenIds {
    One(i64),
    Many(Vec<i64>),
}

impl TokenIds {
    fn first(&self) -> Option<i64> {
        match self {
            TokenIds::One(id) => Some(*id),
            TokenIds::Many(ids) => ids.first().copied(),
        }
    }
}

/// The fields of a GPT-2 `config.json` (Hugging Face names).
#[derive(Deserialize, Debug)]
struct Gpt2HfConfig {
    n_layer: usize,
    n_embd: usize,
    n_head: usize,
    n_positions: usize,
    vocab_size: usize,
    n_inner: Option<usize>,
    #[serde(default = "default_ln_eps")]
    layer_norm_epsilon: f64,
    #[serde(default = "default_gelu_new")]
    activation_function: String,
    #[serde(default = "default_true")]
    tie_word_embeddings: bool,
    #[serde(default)]
    scale_attn_by_inverse_layer_idx: bool,
    #[serde(default)]
    reorder_and_upcast_attn: bool,
    bos_token_id: Option<TokenIds>,
    eos_token_id: Option<TokenIds>,
}

fn default_ln_eps() -> f64 {
    1e-5
}
fn default_gelu_new() -> String {
    "gelu_new".into()
}
fn default_true() -> bool {
    true
}

impl Gpt2HfConfig {
    fn into_config(self, source: &Path) -> Result<ModelConfig> {
        let bad = |reason: String| Error::Config {
            path: source.to_path_buf(),
            reason,
        };
        if !matches!(
            self.activation_function.as_str(),
            "gelu_new" | "gelu_pytorch_tanh"
        ) {
            return Err(bad(format!(
                "activation_function `{}` is not supported (gelu_new only)",
                self.activation_function
            )));
        }
        if self.scale_attn_by_inverse_layer_idx || self.reorder_and_upcast_attn {
            return Err(bad(
                "scale_attn_by_inverse_layer_idx / reorder_and_upcast_attn are not supported"
                    .into(),
            ));
        }
        if self.n_head == 0 || self.n_embd % self.n_head != 0 {
            return Err(bad(format!(
                "n_embd {} is not divisible by n_head {}",
                self.n_embd, self.n_head
            )));
        }
        Ok(ModelConfig {
            arch: Architecture::Gpt2,
            model_type: "gpt2".into(),
            n_layers: self.n_layer,
            d_model: self.n_embd,
            n_heads: self.n_head,
            n_kv_heads: self.n_head,
            d_head: self.n_embd / self.n_head,
            d_mlp: self.n_inner.unwrap_or(4 * self.n_embd),
            vocab_size: self.vocab_size,
            n_ctx: self.n_positions,
            norm_eps: self.layer_norm_epsilon,
            rope_theta: None,
            tied_embeddings: self.tie_word_embeddings,
            qkv_bias: true,
            bos_token_id: self.bos_token_id.and_then(|t| t.first()),
            eos_token_id: self.eos_token_id.and_then(|t| t.first()),
        })
    }
}

/// The fields of a Llama / Qwen2 / Mistral `config.json` (Hugging Face names).
#[derive(Deserialize, Debug)]
struct LlamaHfConfig {
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    vocab_size: usize,
    #[serde(default = "default_ctx")]
    max_position_embeddings: usize,
    #[serde(default = "default_rms_eps")]
    rms_norm_eps: f64,
    rope_theta: Option<f64>,
    rope_scaling: Option<serde_json::Value>,
    /// transformers ≥ 5 writes `{"rope_theta": .., "rope_type": ..}` here instead.
    rope_parameters: Option<RopeParameters>,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    #[serde(default = "default_silu")]
    hidden_act: String,
    bos_token_id: Option<TokenIds>,
    eos_token_id: Option<TokenIds>,
}

fn default_ctx() -> usize {
    2048
}
fn default_rms_eps() -> f64 {
    1e-6
}
/// `rope_parameters` of transformers ≥ 5.
#[derive(Deserialize, Debug)]
struct RopeParameters {
    rope_theta: Option<f64>,
    rope_type: Option<String>,
}
fn default_silu() -> String {
    "silu".into()
}

impl LlamaHfConfig {
    fn into_config(self, model_type: &str, source: &Path) -> Result<ModelConfig> {
        let bad = |reason: String| Error::Config {
            path: source.to_path_buf(),
            reason,
        };
        if self.hidden_act != "silu" {
            return Err(bad(format!(
                "hidden_act `{}` is not supported (silu only)",
                self.hidden_act
            )));
        }
        if let Some(scaling) = self.rope_scaling.as_ref().filter(|v| !v.is_null()) {
            let default = scaling.get("rope_type").and_then(|t| t.as_str()) == Some("default");
            if !default {
                return Err(bad(format!("rope_scaling {scaling} is not supported")));
            }
        }
        let params = self.rope_parameters.as_ref();
        if let Some(kind) = params
            .and_then(|p| p.rope_type.as_deref())
            .filter(|t| *t != "default")
        {
            return Err(bad(format!(
                "rope_type `{kind}` is not supported (default only)"
            )));
        }
        let rope_theta = self
            .rope_theta
            .or(params.and_then(|p| p.rope_theta))
            .unwrap_or(10000.0);
        if self.mlp_bias {
            return Err(bad("mlp_bias = true is not supported".into()));
        }
        if self.num_attention_heads == 0 {
            return Err(bad("num_attention_heads must be positive".into()));
        }
        let d_head = self
            .head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads);
        Ok(ModelConfig {
            arch: Architecture::Llama,
            model_type: model_type.to_string(),
            n_layers: self.num_hidden_layers,
            d_model: self.hidden_size,
            n_heads: self.num_attention_heads,
            n_kv_heads: self.num_key_value_heads.unwrap_or(self.num_attention_heads),
            d_head,
            d_mlp: self.intermediate_size,
            vocab_size: self.vocab_size,
            n_ctx: self.max_position_embeddings,
            norm_eps: self.rms_norm_eps,
            rope_theta: Some(rope_theta),
            tied_embeddings: self.tie_word_embeddings,
            // Qwen2 always has q/k/v biases; Llama and Mistral only with `attention_bias`.
            qkv_bias: model_type == "qwen2" || self.attention_bias,
            bos_token_id: self.bos_token_id.and_then(|t| t.first()),
            eos_token_id: self.eos_token_id.and_then(|t| t.first()),
        })
    }
}
