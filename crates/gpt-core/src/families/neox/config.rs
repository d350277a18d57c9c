//! GPT-NeoX's Hugging Face `config.json` format.

use std::path::Path;

use serde::Deserialize;

use crate::config::{
    rope_scaling_of, Activation, Architecture, ModelConfig, NormKind, RopeContext, Sizes,
};
use crate::error::{Error, Result};
use crate::families::hf::{self, TokenIds};

/// Reads a GPT-NeoX `config.json` (not yet validated).
pub(crate) fn config_from_hf(text: &str, source: &Path) -> Result<ModelConfig> {
    hf::parse::<NeoxHfConfig>(text, source)?.into_config(source)
}

/// The fields of a GPT-NeoX / Pythia `config.json` (Hugging Face names; transformers ≥ 5
/// moves `rotary_pct` / `rotary_emb_base` into `rope_parameters`).
#[derive(Deserialize, Debug)]
struct NeoxHfConfig {
    hidden_size: usize,
    intermediate_size: Option<usize>,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    vocab_size: usize,
    #[serde(default = "hf::default_ctx")]
    max_position_embeddings: usize,
    #[serde(default = "hf::default_ln_eps")]
    layer_norm_eps: f64,
    rotary_pct: Option<f64>,
    rotary_emb_base: Option<f64>,
    rope_scaling: Option<serde_json::Value>,
    rope_parameters: Option<serde_json::Value>,
    #[serde(default = "hf::default_true")]
    use_parallel_residual: bool,
    #[serde(default = "default_gelu")]
    hidden_act: String,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default = "hf::default_true")]
    attention_bias: bool,
    bos_token_id: Option<TokenIds>,
    eos_token_id: Option<TokenIds>,
}

fn default_gelu() -> String {
    "gelu".into()
}

impl NeoxHfConfig {
    fn into_config(self, source: &Path) -> Result<ModelConfig> {
        let bad = |reason: String| Error::Config {
            path: source.to_path_buf(),
            reason,
        };
        let activation = match self.hidden_act.as_str() {
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
            other => {
                return Err(bad(format!(
                    "hidden_act `{other}` is not supported (gelu, gelu_new)"
                )))
            }
        };
        if self.num_attention_heads == 0 || self.hidden_size % self.num_attention_heads != 0 {
            return Err(bad(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            )));
        }
        let params = self.rope_parameters.as_ref();
        let param = |key: &str| params.and_then(|p| p.get(key)).and_then(|v| v.as_f64());
        // transformers' default `rotary_pct` is 0.25.
        let pct = param("partial_rotary_factor")
            .or(self.rotary_pct)
            .unwrap_or(0.25);
        let d_head = self.hidden_size / self.num_attention_heads;
        let rotary_dim = (d_head as f64 * pct) as usize;
        Ok(ModelConfig {
            rope_theta: Some(
                param("rope_theta")
                    .or(self.rotary_emb_base)
                    .unwrap_or(10000.0),
            ),
            rope_scaling: rope_scaling_of(
                self.rope_scaling.as_ref(),
                params,
                RopeContext {
                    max_positions: self.max_position_embeddings,
                    original_max_positions: None,
                },
            )
            .map_err(bad)?,
            parallel_attn_mlp: self.use_parallel_residual,
            tied_embeddings: self.tie_word_embeddings,
            qkv_bias: self.attention_bias,
            bos_token_id: self.bos_token_id.and_then(|t| t.first()),
            eos_token_id: self.eos_token_id.and_then(|t| t.first()),
            ..ModelConfig::neox(
                Sizes {
                    n_layers: self.num_hidden_layers,
                    d_model: self.hidden_size,
                    n_heads: self.num_attention_heads,
                    n_kv_heads: self.num_attention_heads,
                    d_head,
                    d_mlp: self.intermediate_size.unwrap_or(4 * self.hidden_size),
                    vocab_size: self.vocab_size,
                    n_ctx: self.max_position_embeddings,
                    norm_eps: self.layer_norm_eps,
                },
                rotary_dim,
                activation,
            )
        })
    }
}

impl ModelConfig {
    /// GPT-NeoX of `sizes`: LayerNorm, an MLP of `activation` (exact GELU in Pythia), rotary
    /// positions (base 10000) on the first `rotary_dim` dimensions of each head, biases on
    /// q/k/v and the output, attention and MLP in parallel (transformers' default
    /// `use_parallel_residual`), untied. The one place that states the family's fixed facts;
    /// the reader sets what its file says on top.
    pub(crate) fn neox(sizes: Sizes, rotary_dim: usize, activation: Activation) -> Self {
        ModelConfig {
            rope_theta: Some(10000.0),
            rotary_dim: Some(rotary_dim),
            parallel_attn_mlp: true,
            qkv_bias: true,
            ..Self::with_sizes(
                Architecture::GptNeox,
                "gpt_neox",
                sizes,
                NormKind::LayerNorm,
                activation,
            )
        }
    }
}
