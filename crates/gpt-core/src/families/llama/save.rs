//! Writing a Llama-layout model in Hugging Face's format: its `config.json` and its tensors
//! under their checkpoint names.

use serde_json::json;
use tch::Tensor;

use super::load::permute_rows;
use super::names::{Layout, Part};
use crate::config::{Activation, ModelConfig, NormKind, RopeScaling};
use crate::error::{Error, Result};
use crate::families::hf::{scaling_json, whole_as_int};
use crate::transformer::{Linear, Mlp, Norm, Transformer};

/// `config.json` of the Llama-layout families (Llama, Qwen2, Mistral, Gemma 1–3).
pub(crate) fn hf_config(c: &ModelConfig) -> serde_json::Value {
    let gelu_gate = c.activation == Activation::GeluTanh;
    let mut config = json!({
            "architectures": [match c.model_type.as_str() {
                "qwen2" => "Qwen2ForCausalLM",
                "mistral" => "MistralForCausalLM",
                "gemma" => "GemmaForCausalLM",
                "gemma2" => "Gemma2ForCausalLM",
                "gemma3_text" => "Gemma3ForCausalLM",
                _ => "LlamaForCausalLM",
            }],
            "model_type": c.model_type,
            "num_hidden_layers": c.n_layers,
            "hidden_size": c.d_model,
            "num_attention_heads": c.n_heads,
            "num_key_value_heads": c.n_kv_heads,
            "head_dim": c.d_head,
            "intermediate_size": c.d_mlp,
            "max_position_embeddings": c.n_ctx,
            "vocab_size": c.vocab_size,
            "rms_norm_eps": c.norm_eps,
            "rope_theta": c.rope_theta,
            "rope_scaling": c.rope_scaling.map(scaling_json),
            "sliding_window": c.sliding_window,
            "tie_word_embeddings": c.tied_embeddings,
            "attention_bias": c.qkv_bias,
            "hidden_act": if gelu_gate { "gelu_pytorch_tanh" } else { "silu" },
            // Gemma 2's config class reads the activation from here.
            "hidden_activation": gelu_gate.then_some("gelu_pytorch_tanh"),
            "bos_token_id": c.bos_token_id,
            "eos_token_id": c.eos_token_id,
            "torch_dtype": "float32",
            // Gemma 2 (null elsewhere, where transformers ignores them).
            // An int in transformers' (strictly checked) Gemma2Config.
            "query_pre_attn_scalar": c.query_pre_attn_scalar.map(whole_as_int),
            "attn_logit_softcapping": c.attn_softcap,
            "final_logit_softcapping": c.final_softcap,
            "layer_types": c.sliding_layers.as_ref().map(|layers| {
                layers
                    .iter()
                    .map(|&s| if s { "sliding_attention" } else { "full_attention" })
                    .collect::<Vec<_>>()
            }),
    });
    if let Some(sliding) = c.sliding_rope {
        // Gemma 3: one rope per layer type, nested as transformers ≥ 5 writes it.
        let rope = |theta: Option<f64>, scaling: Option<RopeScaling>| {
            let mut v = scaling.map_or_else(|| json!({"rope_type": "default"}), scaling_json);
            v["rope_theta"] = json!(theta);
            v
        };
        config["rope_parameters"] = json!({
            "full_attention": rope(c.rope_theta, c.rope_scaling),
            "sliding_attention": rope(Some(sliding.theta), sliding.scaling),
        });
        if let Some(obj) = config.as_object_mut() {
            obj.remove("rope_theta");
            obj.remove("rope_scaling");
        }
    }
    config
}

/// Refuses a Gemma-like model whose details transformers would not derive from its
/// `model_type` (it reads them from nothing else).
fn check_gemma_details(c: &ModelConfig) -> Result<()> {
    // transformers derives Gemma's details from `model_type` alone.
    let gemma_details = (
        c.activation == Activation::GeluTanh,
        c.norm == NormKind::RmsNormPlusOne,
        c.embed_scale.is_some(),
        c.post_norms,
        c.qk_norm,
    );
    let expected = match c.model_type.as_str() {
        "gemma" => (true, true, true, false, false),
        "gemma2" => (true, true, true, true, false),
        "gemma3_text" => (true, true, true, true, true),
        _ => (false, false, false, false, false),
    };
    if gemma_details != expected {
        return Err(Error::InvalidInput(format!(
            "a `{}` model with (GeGLU gate, 1 + w norms, scaled embeddings, post norms, q/k norms) = {gemma_details:?} has no Hugging Face config",
            c.model_type
        )));
    }
    Ok(())
}

/// The model's tensors under Hugging Face Llama names (the inverse of [`super::load()`] with
/// [`Layout::HuggingFace`]), for writing a model folder.
///
/// # Errors
/// A Gemma whose details are not those its `model_type` implies (transformers derives them
/// from `model_type` alone, so no config could say them); a block of another layout.
pub(crate) fn hf_tensors(t: &Transformer) -> Result<Vec<(String, Tensor)>> {
    check_gemma_details(&t.config)?;
    tensors(t, Layout::HuggingFace)
}

/// The model's tensors under llama.cpp's GGUF names, q/k rows permuted as its converter
/// does (the inverse of [`super::load()`] with [`Layout::Gguf`]).
///
/// # Errors
/// As [`hf_tensors`], for any model [`super::gguf_metadata`] refuses too.
pub(crate) fn gguf_tensors(t: &Transformer) -> Result<Vec<(String, Tensor)>> {
    super::gguf::check_plain_llama(&t.config)?;
    tensors(t, Layout::Gguf)
}

/// The model's tensors under `layout`'s names.
fn tensors(t: &Transformer, layout: Layout) -> Result<Vec<(String, Tensor)>> {
    let mut out = vec![(layout.embed().to_string(), t.embed.shallow_clone())];
    let (h, kvh) = (t.config.n_heads as i64, t.config.n_kv_heads as i64);
    // llama.cpp's `llama` q/k rows interleave each head's rotary halves.
    let interleave =
        layout == Layout::Gguf && super::gguf::gguf_qk_interleaved(&t.config.model_type);
    let rows = |x: &Tensor, heads: Option<i64>| -> Result<Tensor> {
        match heads.filter(|_| interleave) {
            Some(heads) => permute_rows(x, heads),
            None => Ok(x.shallow_clone()),
        }
    };
    let linear = |out: &mut Vec<(String, Tensor)>,
                  i: usize,
                  part: Part,
                  l: &Linear,
                  heads: Option<i64>|
     -> Result<()> {
        let base = layout.block(i, part);
        out.push((format!("{base}.weight"), rows(&l.weight, heads)?));
        if let Some(b) = &l.bias {
            out.push((format!("{base}.bias"), rows(b, heads)?));
        }
        Ok(())
    };
    let norm = |out: &mut Vec<(String, Tensor)>, name: String, n: &Norm| -> Result<()> {
        match n {
            Norm::Rms { weight, .. } => {
                out.push((name, weight.shallow_clone()));
                Ok(())
            }
            Norm::Layer { .. } => Err(Error::InvalidInput(
                "a Llama-family model with a LayerNorm cannot be written".into(),
            )),
        }
    };
    for (i, b) in t.blocks.iter().enumerate() {
        norm(
            &mut out,
            format!("{}.weight", layout.block(i, Part::AttnNorm)),
            &b.ln1,
        )?;
        linear(&mut out, i, Part::Q, &b.attn.q, Some(h))?;
        linear(&mut out, i, Part::K, &b.attn.k, Some(kvh))?;
        linear(&mut out, i, Part::V, &b.attn.v, None)?;
        linear(&mut out, i, Part::O, &b.attn.o, None)?;
        if let Some((q_norm, k_norm)) = &b.attn.qk_norms {
            let name = |part| format!("{}.weight", layout.block(i, part));
            norm(&mut out, name(Part::QNorm), q_norm)?;
            norm(&mut out, name(Part::KNorm), k_norm)?;
        }
        let pre_mlp = if let Some((after_attn, after_mlp)) = &b.post_norms {
            let name = |part| format!("{}.weight", layout.block(i, part));
            norm(&mut out, name(Part::AttnOutNorm), after_attn)?;
            norm(&mut out, name(Part::MlpOutNorm), after_mlp)?;
            Part::PreMlpNorm
        } else {
            Part::MlpNorm
        };
        norm(
            &mut out,
            format!("{}.weight", layout.block(i, pre_mlp)),
            &b.ln2,
        )?;
        match &b.mlp {
            Mlp::Gated { gate, up, down, .. } => {
                linear(&mut out, i, Part::Gate, gate, None)?;
                linear(&mut out, i, Part::Up, up, None)?;
                linear(&mut out, i, Part::Down, down, None)?;
            }
            Mlp::Gelu { .. } => {
                return Err(Error::InvalidInput(
                    "a Llama-family model with a GELU MLP cannot be written".into(),
                ))
            }
        }
    }
    norm(&mut out, layout.final_norm().to_string(), &t.ln_final)?;
    if !t.config.tied_embeddings {
        out.push((layout.lm_head().to_string(), t.unembed.shallow_clone()));
    }
    Ok(out)
}
