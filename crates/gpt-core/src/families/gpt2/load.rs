//! Loading GPT-2 weights into the [`Transformer`](crate::Transformer)'s parts.
//!
//! GPT-2 stores its projections as `Conv1D` with weights `[in, out]`; they are transposed
//! once here so every weight in the model is `[out, in]`. The fused `c_attn` is split into
//! separate q, k, v projections.

use tch::Tensor;

use super::names::{Layout, Part};
use crate::config::ModelConfig;
use crate::error::Result;
use crate::families::tensors::{layer_norm, unembed};
use crate::transformer::{Attention, Block, BlockLayout, Linear, Mlp, TransformerParts};
use crate::weights::Loader;

/// Per-layer buffers a GPT-2 checkpoint may hold besides its weights (block-relative names):
/// `attn.bias`, the causal mask, and `attn.masked_bias`, the score masked positions get.
/// transformers registered these constants as buffers and older versions saved them; the
/// model builds its own mask, so they carry nothing it needs.
pub(crate) const BUFFERS: &[&str] = &["attn.bias", "attn.masked_bias"];

/// A `Conv1D` (`y = x W + b`, `W: [in, out]`) as a [`Linear`] with `[out, in]` weight.
fn conv1d(loader: &mut Loader<'_>, prefix: &str, d_in: i64, d_out: i64) -> Result<Linear> {
    let w = loader.tensor(&format!("{prefix}.weight"), &[d_in, d_out])?;
    let bias = loader.tensor(&format!("{prefix}.bias"), &[d_out])?;
    Ok(Linear {
        weight: w.f_transpose(0, 1)?.f_contiguous()?,
        bias: Some(bias),
    })
}

/// Splits a `[3d, d]` fused projection (rows q, k, v) into three linears.
fn split_qkv(fused: Linear, d: i64) -> Result<(Linear, Linear, Linear)> {
    let part =
        |t: &Tensor, i: i64| -> Result<Tensor> { Ok(t.f_narrow(0, i * d, d)?.f_contiguous()?) };
    let mk = |i: i64| -> Result<Linear> {
        Ok(Linear {
            weight: part(&fused.weight, i)?,
            bias: fused.bias.as_ref().map(|b| part(b, i)).transpose()?,
        })
    };
    Ok((mk(0)?, mk(1)?, mk(2)?))
}

/// The projection at `prefix` as a [`Linear`] with `[out, in]` weight: a `Conv1D`
/// transposed once here, or a GGUF tensor stored that way already.
fn linear(
    layout: Layout,
    loader: &mut Loader<'_>,
    prefix: &str,
    out: i64,
    inp: i64,
) -> Result<Linear> {
    match layout {
        Layout::HuggingFace { .. } => conv1d(loader, prefix, inp, out),
        Layout::Gguf => Ok(Linear {
            weight: loader.tensor(&format!("{prefix}.weight"), &[out, inp])?,
            bias: Some(loader.tensor(&format!("{prefix}.bias"), &[out])?),
        }),
    }
}

/// Loads GPT-2 weights from a Hugging Face checkpoint (with or without the `transformer.`
/// prefix).
pub(crate) fn load(config: &ModelConfig, loader: &mut Loader<'_>) -> Result<TransformerParts> {
    // Detect the prefix from more than one tensor, so that a checkpoint missing `wte` is
    // reported as missing `transformer.wte.weight`, not `wte.weight`.
    let prefixed = ["wte.weight", "wpe.weight", "ln_f.weight", "h.0.ln_1.weight"]
        .iter()
        .any(|name| loader.contains(&format!("transformer.{name}")));
    let prefix = if prefixed { "transformer." } else { "" };
    load_layout(config, loader, Layout::HuggingFace { prefix })
}

/// Loads GPT-2 weights from a GGUF file (llama.cpp names: `token_embd`, `position_embd`,
/// `blk.{l}.attn_qkv`, `attn_output`, `attn_norm`, `ffn_up`, `ffn_down`, `ffn_norm`,
/// `output_norm`, `output` when untied).
pub(crate) fn load_gguf(config: &ModelConfig, loader: &mut Loader<'_>) -> Result<TransformerParts> {
    load_layout(config, loader, Layout::Gguf)
}

/// Loads GPT-2 weights stored in `layout`.
fn load_layout(
    config: &ModelConfig,
    loader: &mut Loader<'_>,
    layout: Layout,
) -> Result<TransformerParts> {
    let d = config.d_model as i64;
    let d_mlp = config.d_mlp as i64;
    let vocab = config.vocab_size as i64;
    let eps = config.norm_eps;
    let embed = loader.tensor(&layout.embed(), &[vocab, d])?;
    let pos_embed = loader.tensor(&layout.pos_embed(), &[config.n_ctx as i64, d])?;
    let mut blocks = Vec::with_capacity(config.n_layers);
    for i in 0..config.n_layers {
        let name = |part| layout.block(i, part);
        let fused = linear(layout, loader, &name(Part::Qkv), 3 * d, d)?;
        let (q, k, v) = split_qkv(fused, d)?;
        blocks.push(Block {
            ln1: layer_norm(loader, &name(Part::Ln1), d, eps)?,
            attn: Attention {
                q,
                k,
                v,
                o: linear(layout, loader, &name(Part::AttnOut), d, d)?,
                qk_norms: None,
            },
            ln2: layer_norm(loader, &name(Part::Ln2), d, eps)?,
            mlp: Mlp::Gelu {
                fc_in: linear(layout, loader, &name(Part::FcIn), d_mlp, d)?,
                fc_out: linear(layout, loader, &name(Part::FcOut), d, d_mlp)?,
                exact: false,
            },
            layout: BlockLayout::of(config),
            post_norms: None,
        });
    }
    let ln_final = layer_norm(loader, &layout.final_norm(), d, eps)?;
    let unembed = unembed(
        loader,
        config.tied_embeddings,
        layout.lm_head(),
        &embed,
        &layout.embed(),
    )?;
    Ok(TransformerParts {
        embed,
        pos_embed: Some(pos_embed),
        blocks,
        ln_final,
        unembed,
        unembed_bias: None,
    })
}
