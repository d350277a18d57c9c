//! The Llama layout's config in GGUF metadata: read from a file, and written for a new one.

use std::path::Path;

use crate::config::{Activation, ModelConfig, NormKind, Sizes};
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

/// Whether llama.cpp stores this Llama-layout model's q/k rows with each head's rotary
/// halves interleaved: its `llama` graph rotates pairs of adjacent values, so its converter
/// permutes Hugging Face's rows; its `qwen2` graph rotates the two halves as transformers
/// does, and the rows are stored as they are.
pub(crate) fn gguf_qk_interleaved(model_type: &str) -> bool {
    model_type != "qwen2"
}

/// llama.cpp's architecture name (`general.architecture`) for a Llama-layout `model_type`
/// (Mistral is converted as `llama`), or `None` for one it has no name for here.
pub(crate) fn llama_cpp_arch(model_type: &str) -> Option<&'static str> {
    match model_type {
        "llama" | "mistral" => Some("llama"),
        "qwen2" => Some("qwen2"),
        "gemma" => Some("gemma"),
        "gemma2" => Some("gemma2"),
        "gemma3_text" => Some("gemma3"),
        _ => None,
    }
}

/// llama.cpp's architecture name for a Llama-layout model its `llama` / `qwen2` graph
/// computes as this crate does; refuses Gemma's details, rope scaling, a sliding window
/// shorter than the context, partial rotary.
pub(crate) fn check_plain_llama(c: &ModelConfig) -> Result<&'static str> {
    let refuse = |what: &str| {
        Err(Error::InvalidInput(format!(
            "writing a `{}` model with {what} as GGUF is not supported (plain Llama, Mistral and Qwen2 models are)",
            c.model_type
        )))
    };
    // Only these run as the plain Llama graph (`llama`, `qwen2`) that this crate computes.
    let Some(arch) = llama_cpp_arch(&c.model_type).filter(|a| matches!(*a, "llama" | "qwen2"))
    else {
        return Err(Error::InvalidInput(format!(
            "writing a `{}` model as GGUF is not supported: llama.cpp runs it as another graph (plain Llama, Mistral and Qwen2 models are written)",
            c.model_type
        )));
    };
    if c.norm != NormKind::RmsNorm || c.activation != Activation::Silu {
        return refuse("a norm or activation other than RMSNorm and SwiGLU");
    }
    if c.embed_scale.is_some()
        || c.post_norms
        || c.qk_norm
        || c.query_pre_attn_scalar.is_some()
        || c.attn_softcap.is_some()
        || c.final_softcap.is_some()
    {
        return refuse("Gemma-style details");
    }
    if c.rope_scaling.is_some() || c.sliding_rope.is_some() {
        return refuse("rope scaling");
    }
    if c.rotary_dim.is_some_and(|r| r != c.d_head) {
        return refuse("partial rotary embeddings");
    }
    if c.sliding_layers.is_some() || c.sliding_window.is_some_and(|w| w < c.n_ctx) {
        return refuse("a sliding attention window");
    }
    Ok(arch)
}

/// The GGUF metadata of a Llama-layout model's config (llama.cpp's keys, under its
/// architecture name — the inverse of [`config_from_gguf`]).
///
/// # Errors
/// What [`check_plain_llama`] refuses.
pub(crate) fn gguf_metadata(c: &ModelConfig) -> Result<Vec<(String, gguf::MetadataValue)>> {
    use gguf::MetadataValue::{String as Str, F32, U32};
    let arch = check_plain_llama(c)?;
    let n = |v: usize| U32(v as u32);
    let mut kvs = vec![
        ("general.architecture".to_string(), Str(arch.to_string())),
        (format!("{arch}.block_count"), n(c.n_layers)),
        (format!("{arch}.context_length"), n(c.n_ctx)),
        (format!("{arch}.embedding_length"), n(c.d_model)),
        (format!("{arch}.feed_forward_length"), n(c.d_mlp)),
        (format!("{arch}.attention.head_count"), n(c.n_heads)),
        (format!("{arch}.attention.head_count_kv"), n(c.n_kv_heads)),
        (
            format!("{arch}.rope.freq_base"),
            F32(c.rope_theta.unwrap_or(10000.0) as f32),
        ),
        (
            format!("{arch}.attention.layer_norm_rms_epsilon"),
            F32(c.norm_eps as f32),
        ),
        (format!("{arch}.vocab_size"), n(c.vocab_size)),
        (format!("{arch}.rope.dimension_count"), n(c.d_head)),
    ];
    if c.d_head * c.n_heads != c.d_model {
        kvs.push((format!("{arch}.attention.key_length"), n(c.d_head)));
        kvs.push((format!("{arch}.attention.value_length"), n(c.d_head)));
    }
    Ok(kvs)
}
