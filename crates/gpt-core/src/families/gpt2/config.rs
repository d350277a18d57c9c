//! GPT-2's configs: the Hugging Face `config.json` format, GGUF metadata, and the family's
//! fixed facts ([`ModelConfig::gpt2`]).

use std::path::Path;

use serde::Deserialize;

use crate::config::{Activation, Architecture, ModelConfig, NormKind, Sizes};
use crate::error::{Error, Result};
use crate::families::hf::{self, TokenIds};

impl ModelConfig {
    /// GPT-2 of `sizes`: learned positions, LayerNorm, tanh-GELU MLP, q/k/v biases, tied
    /// unembedding, no special tokens. The one place that states the family's fixed facts;
    /// each GPT-2 reader sets what its file says on top (`..ModelConfig::gpt2(sizes)`).
    pub(crate) fn gpt2(sizes: Sizes) -> Self {
        ModelConfig {
            tied_embeddings: true,
            qkv_bias: true,
            ..Self::with_sizes(
                Architecture::Gpt2,
                "gpt2",
                sizes,
                NormKind::LayerNorm,
                Activation::GeluTanh,
            )
        }
    }
}

/// Reads a GPT-2 `config.json` (not yet validated).
pub(crate) fn config_from_hf(text: &str, source: &Path) -> Result<ModelConfig> {
    hf::parse::<Gpt2HfConfig>(text, source)?.into_config(source)
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
    #[serde(default = "hf::default_ln_eps")]
    layer_norm_epsilon: f64,
    #[serde(default = "hf::default_gelu_new")]
    activation_function: String,
    #[serde(default = "hf::default_true")]
    tie_word_embeddings: bool,
    #[serde(default)]
    scale_attn_by_inverse_layer_idx: bool,
    #[serde(default)]
    reorder_and_upcast_attn: bool,
    bos_token_id: Option<TokenIds>,
    eos_token_id: Option<TokenIds>,
}

impl Gpt2HfConfig {
    fn into_config(self, source: &Path) -> Result<ModelConfig> {
        let bad = |reason: String| Error::Config {
            path: source.to_path_buf(),
            reason,
        };
        hf::check_tanh_gelu(&self.activation_function).map_err(bad)?;
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
            tied_embeddings: self.tie_word_embeddings,
            bos_token_id: self.bos_token_id.and_then(|t| t.first()),
            eos_token_id: self.eos_token_id.and_then(|t| t.first()),
            ..ModelConfig::gpt2(Sizes {
                n_layers: self.n_layer,
                d_model: self.n_embd,
                n_heads: self.n_head,
                n_kv_heads: self.n_head,
                d_head: self.n_embd / self.n_head,
                d_mlp: self.n_inner.unwrap_or(4 * self.n_embd),
                vocab_size: self.vocab_size,
                n_ctx: self.n_positions,
                norm_eps: self.layer_norm_epsilon,
            })
        })
    }
}

/// The model config from GGUF metadata (`general.architecture` = `gpt2`; llama.cpp's keys
/// `gpt2.block_count`, `gpt2.embedding_length`, …).
pub(crate) fn config_from_gguf(file: &gguf::GgufFile, path: &Path) -> Result<ModelConfig> {
    let bad = |reason: String| Error::Config {
        path: path.to_path_buf(),
        reason,
    };
    let uint = |key: &str| -> Result<usize> {
        let full = format!("gpt2.{key}");
        file.get(&full)
            .and_then(|v| v.as_u64())
            .map(|v| v as usize)
            .ok_or_else(|| bad(format!("missing or non-integer metadata `{full}`")))
    };
    let n_heads = uint("attention.head_count")?;
    let d_model = uint("embedding_length")?;
    if n_heads == 0 || d_model % n_heads != 0 {
        return Err(bad(format!(
            "gpt2.embedding_length {d_model} is not divisible by gpt2.attention.head_count {n_heads}"
        )));
    }
    let vocab_size = file
        .get("tokenizer.ggml.tokens")
        .and_then(|v| v.as_array())
        .map(<[_]>::len)
        .ok_or_else(|| bad("missing `tokenizer.ggml.tokens`".into()))?;
    let token_id = |key: &str| file.get(key).and_then(|v| v.as_u64()).map(|v| v as i64);
    let config = ModelConfig {
        tied_embeddings: file.tensor("output.weight").is_none(),
        bos_token_id: token_id("tokenizer.ggml.bos_token_id"),
        eos_token_id: token_id("tokenizer.ggml.eos_token_id"),
        ..ModelConfig::gpt2(Sizes {
            n_layers: uint("block_count")?,
            d_model,
            n_heads,
            n_kv_heads: n_heads,
            d_head: d_model / n_heads,
            d_mlp: uint("feed_forward_length")?,
            vocab_size,
            n_ctx: uint("context_length")?,
            norm_eps: file
                .get("gpt2.attention.layer_norm_epsilon")
                .and_then(|v| v.as_f64())
                .unwrap_or(1e-5),
        })
    };
    config.validate(path)?;
    Ok(config)
}

/// The GGUF metadata of a GPT-2 config (llama.cpp's `gpt2.*` keys — the inverse of
/// [`config_from_gguf`]).
pub(crate) fn gguf_metadata(c: &ModelConfig) -> Result<Vec<(String, gguf::MetadataValue)>> {
    use gguf::MetadataValue::{String as Str, F32, U32};
    if c.norm != NormKind::LayerNorm || c.activation != Activation::GeluTanh {
        return Err(Error::InvalidInput(
            "writing a GPT-2 model with another norm or activation as GGUF is not supported".into(),
        ));
    }
    let n = |v: usize| U32(v as u32);
    Ok(vec![
        ("general.architecture".into(), Str("gpt2".into())),
        ("gpt2.block_count".into(), n(c.n_layers)),
        ("gpt2.context_length".into(), n(c.n_ctx)),
        ("gpt2.embedding_length".into(), n(c.d_model)),
        ("gpt2.feed_forward_length".into(), n(c.d_mlp)),
        ("gpt2.attention.head_count".into(), n(c.n_heads)),
        (
            "gpt2.attention.layer_norm_epsilon".into(),
            F32(c.norm_eps as f32),
        ),
    ])
}
