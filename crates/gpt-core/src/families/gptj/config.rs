//! GPT-J's Hugging Face `config.json` format.

use std::path::Path;

use serde::Deserialize;

use crate::config::{Activation, Architecture, ModelConfig, NormKind, Sizes};
use crate::error::{Error, Result};
use crate::families::hf::{self, TokenIds};

/// Reads a GPT-J `config.json` (not yet validated).
pub(crate) fn config_from_hf(text: &str, source: &Path) -> Result<ModelConfig> {
    hf::parse::<GptjHfConfig>(text, source)?.into_config(source)
}

/// The fields of a GPT-J `config.json` (Hugging Face names).
#[derive(Deserialize, Debug)]
struct GptjHfConfig {
    n_embd: usize,
    n_layer: usize,
    n_head: usize,
    n_positions: usize,
    vocab_size: usize,
    rotary_dim: Option<usize>,
    n_inner: Option<usize>,
    #[serde(default = "hf::default_gelu_new")]
    activation_function: String,
    #[serde(default = "hf::default_ln_eps")]
    layer_norm_epsilon: f64,
    #[serde(default)]
    tie_word_embeddings: bool,
    bos_token_id: Option<TokenIds>,
    eos_token_id: Option<TokenIds>,
}

impl GptjHfConfig {
    fn into_config(self, source: &Path) -> Result<ModelConfig> {
        let bad = |reason: String| Error::Config {
            path: source.to_path_buf(),
            reason,
        };
        hf::check_tanh_gelu(&self.activation_function).map_err(bad)?;
        if self.n_head == 0 || self.n_embd % self.n_head != 0 {
            return Err(bad(format!(
                "n_embd {} is not divisible by n_head {}",
                self.n_embd, self.n_head
            )));
        }
        // Without `rotary_dim`, transformers' GPT-J builds tables of the whole width and
        // applies them per head; no released GPT-J does that, so it is refused.
        let rotary_dim = self
            .rotary_dim
            .ok_or_else(|| bad("GPT-J without rotary_dim is not supported".into()))?;
        Ok(ModelConfig {
            tied_embeddings: self.tie_word_embeddings,
            bos_token_id: self.bos_token_id.and_then(|t| t.first()),
            eos_token_id: self.eos_token_id.and_then(|t| t.first()),
            ..ModelConfig::gptj(
                Sizes {
                    n_layers: self.n_layer,
                    d_model: self.n_embd,
                    n_heads: self.n_head,
                    n_kv_heads: self.n_head,
                    d_head: self.n_embd / self.n_head,
                    d_mlp: self.n_inner.unwrap_or(4 * self.n_embd),
                    vocab_size: self.vocab_size,
                    n_ctx: self.n_positions,
                    norm_eps: self.layer_norm_epsilon,
                },
                rotary_dim,
            )
        })
    }
}

impl ModelConfig {
    /// GPT-J of `sizes`: one LayerNorm feeding attention and MLP in parallel, tanh-GELU MLP,
    /// rotary positions (base 10000, fixed in transformers' `create_sinusoidal_positions`) on
    /// the first `rotary_dim` dimensions of each head, no q/k/v bias, untied. The one place
    /// that states the family's fixed facts.
    pub(crate) fn gptj(sizes: Sizes, rotary_dim: usize) -> Self {
        ModelConfig {
            rope_theta: Some(10000.0),
            rotary_dim: Some(rotary_dim),
            parallel_attn_mlp: true,
            ..Self::with_sizes(
                Architecture::GptJ,
                "gptj",
                sizes,
                NormKind::LayerNorm,
                Activation::GeluTanh,
            )
        }
    }
}
