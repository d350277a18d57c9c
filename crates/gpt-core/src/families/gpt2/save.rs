//! Writing a GPT-2 model in Hugging Face's format: its `config.json` and its tensors under
//! their checkpoint names.

use serde_json::json;
use tch::Tensor;

use super::names::{Layout, Part};
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::transformer::{Linear, Mlp, Norm, Transformer};

/// The `config.json` of a GPT-2 model (`GPT2LMHeadModel`).
pub(crate) fn hf_config(c: &ModelConfig) -> serde_json::Value {
    json!({
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "n_layer": c.n_layers,
        "n_embd": c.d_model,
        "n_head": c.n_heads,
        "n_inner": c.d_mlp,
        "n_positions": c.n_ctx,
        "vocab_size": c.vocab_size,
        "layer_norm_epsilon": c.norm_eps,
        "activation_function": "gelu_new",
        "tie_word_embeddings": c.tied_embeddings,
        "bos_token_id": c.bos_token_id,
        "eos_token_id": c.eos_token_id,
        "torch_dtype": "float32",
    })
}

/// The model's tensors under Hugging Face GPT-2 names (the inverse of [`super::load()`]: `Conv1D`
/// weights transposed back to `[in, out]`, q/k/v fused into `c_attn`), for writing a folder.
pub(crate) fn hf_tensors(t: &Transformer) -> Result<Vec<(String, Tensor)>> {
    tensors(
        t,
        Layout::HuggingFace {
            prefix: "transformer.",
        },
    )
}

/// The model's tensors under llama.cpp's GGUF names (weights `[out, in]`, q/k/v fused into
/// `attn_qkv`; the inverse of [`super::load_gguf()`]).
pub(crate) fn gguf_tensors(t: &Transformer) -> Result<Vec<(String, Tensor)>> {
    tensors(t, Layout::Gguf)
}

/// The model's tensors under `layout`'s names.
fn tensors(t: &Transformer, layout: Layout) -> Result<Vec<(String, Tensor)>> {
    let unsupported =
        |what: &str| Error::InvalidInput(format!("a GPT-2 model with {what} cannot be written"));
    let conv = |out: &mut Vec<(String, Tensor)>, prefix: String, l: &Linear| -> Result<()> {
        let weight = match layout {
            Layout::HuggingFace { .. } => l.weight.f_transpose(0, 1)?.f_contiguous()?,
            Layout::Gguf => l.weight.shallow_clone(),
        };
        out.push((format!("{prefix}.weight"), weight));
        let bias = l
            .bias
            .as_ref()
            .ok_or_else(|| unsupported("a projection without bias"))?;
        out.push((format!("{prefix}.bias"), bias.shallow_clone()));
        Ok(())
    };
    let norm = |out: &mut Vec<(String, Tensor)>, prefix: String, n: &Norm| -> Result<()> {
        match n {
            Norm::Layer { weight, bias, .. } => {
                out.push((format!("{prefix}.weight"), weight.shallow_clone()));
                out.push((format!("{prefix}.bias"), bias.shallow_clone()));
                Ok(())
            }
            Norm::Rms { .. } => Err(unsupported("an RMSNorm")),
        }
    };
    let pos = t
        .pos_embed
        .as_ref()
        .ok_or_else(|| unsupported("no position embeddings"))?;
    let mut out = vec![
        (layout.embed(), t.embed.shallow_clone()),
        (layout.pos_embed(), pos.shallow_clone()),
    ];
    for (i, b) in t.blocks.iter().enumerate() {
        let name = |part| layout.block(i, part);
        norm(&mut out, name(Part::Ln1), &b.ln1)?;
        let (q, k, v) = (&b.attn.q, &b.attn.k, &b.attn.v);
        let (Some(qb), Some(kb), Some(vb)) = (&q.bias, &k.bias, &v.bias) else {
            return Err(unsupported("q/k/v without bias"));
        };
        let fused = Linear {
            weight: Tensor::f_cat(&[&q.weight, &k.weight, &v.weight], 0)?,
            bias: Some(Tensor::f_cat(&[qb, kb, vb], 0)?),
        };
        conv(&mut out, name(Part::Qkv), &fused)?;
        conv(&mut out, name(Part::AttnOut), &b.attn.o)?;
        norm(&mut out, name(Part::Ln2), &b.ln2)?;
        match &b.mlp {
            Mlp::Gelu { fc_in, fc_out, .. } => {
                conv(&mut out, name(Part::FcIn), fc_in)?;
                conv(&mut out, name(Part::FcOut), fc_out)?;
            }
            Mlp::Gated { .. } => return Err(unsupported("a gated MLP")),
        }
    }
    norm(&mut out, layout.final_norm(), &t.ln_final)?;
    if !t.config.tied_embeddings {
        out.push((layout.lm_head().to_string(), t.unembed.shallow_clone()));
    }
    Ok(out)
}
