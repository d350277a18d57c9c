//! The Llama layout's config from GGUF metadata.

use std::path::Path;

use crate::config::{ModelConfig, Sizes};
use crate::error::{Error, Result};

/// The model config from GGUF metadata (`general.architecture` = llama, qwen2 or mistral).
pub(crate) fn config_from_gguf(file: &gguf::GgufFile, path: &Path) -> Result<ModelConfig> {
    let bad = |reason: String| Error::Config {
        path: path.to_path_buf(),
        reason,
    };
    let arch = file
        .get("general.architecture")
        .and_then(|v| v.as_str())
        .ok_or_else(|| bad("no `general.architecture` metadata".into()))?
        .to_string();
    if !matches!(arch.as_str(), "llama" | "qwen2" | "mistral") {
        return Err(bad(format!(
            "GGUF architecture `{arch}` is not supported (supported: llama, qwen2, mistral, gpt2)"
        )));
    }
    let uint = |key: &str| -> Result<usize> {
        let full = format!("{arch}.{key}");
        file.get(&full)
            .and_then(|v| v.as_u64())
            .map(|v| v as usize)
            .ok_or_else(|| bad(format!("missing or non-integer metadata `{full}`")))
    };
    let float = |key: &str| file.get(&format!("{arch}.{key}")).and_then(|v| v.as_f64());
    let n_heads = uint("attention.head_count")?;
    let d_model = uint("embedding_length")?;
    let vocab_size = match file.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()) {
        Some(tokens) => tokens.len(),
        None => uint("vocab_size")?,
    };
    if n_heads == 0 {
        return Err(bad(format!(
            "metadata `{arch}.attention.head_count` is 0: a model needs at least one attention head"
        )));
    }
    let d_head = match uint("attention.key_length") {
        Ok(k) => k,
        Err(_) => d_model / n_heads,
    };
    if file
        .get(&format!("{arch}.rope.scaling.type"))
        .and_then(|v| v.as_str())
        .is_some_and(|s| s != "none")
    {
        return Err(bad("rope scaling is not supported".into()));
    }
    let token_id = |key: &str| file.get(key).and_then(|v| v.as_u64()).map(|v| v as i64);
    let config = ModelConfig {
        rope_theta: Some(float("rope.freq_base").unwrap_or(10000.0)),
        sliding_window: uint("attention.sliding_window").ok(),
        tied_embeddings: file.tensor("output.weight").is_none(),
        qkv_bias: file.tensor("blk.0.attn_q.bias").is_some(),
        bos_token_id: token_id("tokenizer.ggml.bos_token_id"),
        eos_token_id: token_id("tokenizer.ggml.eos_token_id"),
        ..ModelConfig::llama(
            &arch,
            Sizes {
                n_layers: uint("block_count")?,
                d_model,
                n_heads,
                n_kv_heads: uint("attention.head_count_kv").unwrap_or(n_heads),
                d_head,
                d_mlp: uint("feed_forward_length")?,
                vocab_size,
                n_ctx: uint("context_length")?,
                norm_eps: float("attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
            },
        )
    };
    config.validate(path)?;
    Ok(config)
}
