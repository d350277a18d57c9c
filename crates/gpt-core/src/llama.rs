//! Llama family weights (Llama, SmolLM2, Qwen2, Mistral) from Hugging Face safetensors or
//! GGUF: the only file that knows their checkpoint names.

use std::path::Path;

use tch::Tensor;

use crate::config::{Architecture, ModelConfig};
use crate::error::{Error, Result};
use crate::transformer::{Attention, Block, Linear, Mlp, Norm, TransformerParts};
use crate::weights::Loader;

/// Checkpoint names of one layout (Hugging Face or GGUF).
struct Names {
    embed: &'static str,
    norm: &'static str,
    lm_head: &'static str,
    block: fn(usize, &str) -> String,
}

const HF: Names = Names {
    embed: "model.embed_tokens.weight",
    norm: "model.norm.weight",
    lm_head: "lm_head.weight",
    block: |i, part| {
        let name = match part {
            "ln1" => "input_layernorm",
            "ln2" => "post_attention_layernorm",
            "q" => "self_attn.q_proj",
            "k" => "self_attn.k_proj",
            "v" => "self_attn.v_proj",
            "o" => "self_attn.o_proj",
            "gate" => "mlp.gate_proj",
            "up" => "mlp.up_proj",
            _ => "mlp.down_proj",
        };
        format!("model.layers.{i}.{name}")
    },
};

const GGUF: Names = Names {
    embed: "token_embd.weight",
    norm: "output_norm.weight",
    lm_head: "output.weight",
    block: |i, part| {
        let name = match part {
            "ln1" => "attn_norm",
            "ln2" => "ffn_norm",
            "q" => "attn_q",
            "k" => "attn_k",
            "v" => "attn_v",
            "o" => "attn_output",
            "gate" => "ffn_gate",
            "up" => "ffn_up",
            _ => "ffn_down",
        };
        format!("blk.{i}.{name}")
    },
};

/// Undoes llama.cpp's interleaving of the rotary halves in q/k rows (as transformers'
/// `_reverse_permute_weights`): rows `[heads, d_head/2, 2]` → `[heads, 2, d_head/2]`.
fn unpermute_rows(t: &Tensor, heads: i64) -> Result<Tensor> {
    let size = t.size();
    let rows = size.first().copied().unwrap_or(0);
    let rest: Vec<i64> = size.iter().skip(1).copied().collect();
    let mut shape = vec![heads, rows / heads / 2, 2];
    shape.extend(&rest);
    Ok(t.f_reshape(&shape)?
        .f_transpose(1, 2)?
        .f_reshape(&size)?
        .f_contiguous()?)
}

struct Ctx<'l, 'a> {
    loader: &'l mut Loader<'a>,
    names: &'static Names,
    gguf: bool,
}

impl Ctx<'_, '_> {
    fn linear(
        &mut self,
        layer: usize,
        part: &str,
        out: i64,
        inp: i64,
        bias: bool,
        permute_heads: Option<i64>,
    ) -> Result<Linear> {
        let base = (self.names.block)(layer, part);
        let w_name = format!("{base}.weight");
        let b_name = format!("{base}.bias");
        let (mut weight, mut b) = if let Some(heads) = permute_heads.filter(|_| self.gguf) {
            let raw = self.loader.raw(&w_name)?;
            check_shape(&w_name, &raw, &[out, inp])?;
            let w = self.loader.convert(unpermute_rows(&raw, heads)?)?;
            let b = if bias {
                let raw_b = self.loader.raw(&b_name)?;
                check_shape(&b_name, &raw_b, &[out])?;
                Some(self.loader.convert(unpermute_rows(&raw_b, heads)?)?)
            } else {
                None
            };
            (w, b)
        } else {
            let w = self.loader.tensor(&w_name, &[out, inp])?;
            let b = if bias {
                Some(self.loader.tensor(&b_name, &[out])?)
            } else {
                None
            };
            (w, b)
        };
        // Some Llama checkpoints (attention_bias = true) also bias the output projection.
        if !bias && part == "o" {
            b = self.loader.optional(&b_name, &[out])?;
        }
        weight = weight.f_contiguous()?;
        Ok(Linear { weight, bias: b })
    }

    fn rms(&mut self, name: &str, d: i64, eps: f64) -> Result<Norm> {
        Ok(Norm::Rms {
            weight: self.loader.tensor(name, &[d])?,
            eps,
        })
    }
}

fn check_shape(name: &str, t: &Tensor, shape: &[i64]) -> Result<()> {
    if t.size() != shape {
        return Err(Error::ShapeMismatch {
            name: name.to_string(),
            expected: shape.to_vec(),
            got: t.size(),
        });
    }
    Ok(())
}

/// Loads Llama-family weights; `gguf` selects llama.cpp tensor names and q/k un-permutation.
pub(crate) fn load(
    config: &ModelConfig,
    loader: &mut Loader<'_>,
    gguf: bool,
) -> Result<TransformerParts> {
    let names = if gguf { &GGUF } else { &HF };
    let mut cx = Ctx {
        loader,
        names,
        gguf,
    };
    let d = config.d_model as i64;
    let (h, kvh, dh) = (
        config.n_heads as i64,
        config.n_kv_heads as i64,
        config.d_head as i64,
    );
    let d_mlp = config.d_mlp as i64;
    let vocab = config.vocab_size as i64;
    let eps = config.norm_eps;
    let bias = config.qkv_bias;
    let embed = cx.loader.tensor(names.embed, &[vocab, d])?;
    let mut blocks = Vec::with_capacity(config.n_layers);
    for i in 0..config.n_layers {
        blocks.push(Block {
            ln1: cx.rms(&format!("{}.weight", (names.block)(i, "ln1")), d, eps)?,
            attn: Attention {
                q: cx.linear(i, "q", h * dh, d, bias, Some(h))?,
                k: cx.linear(i, "k", kvh * dh, d, bias, Some(kvh))?,
                v: cx.linear(i, "v", kvh * dh, d, bias, None)?,
                o: cx.linear(i, "o", d, h * dh, false, None)?,
            },
            ln2: cx.rms(&format!("{}.weight", (names.block)(i, "ln2")), d, eps)?,
            mlp: Mlp::SwiGlu {
                gate: cx.linear(i, "gate", d_mlp, d, false, None)?,
                up: cx.linear(i, "up", d_mlp, d, false, None)?,
                down: cx.linear(i, "down", d, d_mlp, false, None)?,
            },
        });
    }
    let ln_final = cx.rms(names.norm, d, eps)?;
    let unembed = if config.tied_embeddings {
        embed.shallow_clone()
    } else {
        cx.loader.tensor(names.lm_head, &[vocab, d])?
    };
    Ok(TransformerParts {
        embed,
        pos_embed: None,
        blocks,
        ln_final,
        unembed,
    })
}

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
            "GGUF architecture `{arch}` is not supported (supported: llama, qwen2, mistral)"
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
    let d_head = match uint("attention.key_length") {
        Ok(k) => k,
        Err(_) if n_heads > 0 => d_model / n_heads,
        Err(e) => return Err(e),
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
        arch: Architecture::Llama,
        model_type: arch.clone(),
        n_layers: uint("block_count")?,
        d_model,
        n_heads,
        n_kv_heads: uint("attention.head_count_kv").unwrap_or(n_heads),
        d_head,
        d_mlp: uint("feed_forward_length")?,
        vocab_size,
        n_ctx: uint("context_length")?,
        norm_eps: float("attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
        rope_theta: Some(float("rope.freq_base").unwrap_or(10000.0)),
        tied_embeddings: file.tensor("output.weight").is_none(),
        qkv_bias: file.tensor("blk.0.attn_q.bias").is_some(),
        bos_token_id: token_id("tokenizer.ggml.bos_token_id"),
        eos_token_id: token_id("tokenizer.ggml.eos_token_id"),
    };
    config.validate(path)?;
    Ok(config)
}
