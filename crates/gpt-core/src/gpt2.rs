//! GPT-2 family weights (gpt2, gpt2-medium/large/xl, distilgpt2): the only file that knows
//! GPT-2 checkpoint names.
//!
//! GPT-2 stores its projections as `Conv1D` with weights `[in, out]`; they are transposed
//! once here so every weight in the model is `[out, in]`. The fused `c_attn` is split into
//! separate q, k, v projections.

use tch::Tensor;

use crate::config::ModelConfig;
use crate::error::Result;
use crate::transformer::{Attention, Block, Linear, Mlp, Norm, TransformerParts};
use crate::weights::Loader;

/// A `Conv1D` (`y = x W + b`, `W: [in, out]`) as a [`Linear`] with `[out, in]` weight.
fn conv1d(loader: &mut Loader<'_>, prefix: &str, d_in: i64, d_out: i64) -> Result<Linear> {
    let w = loader.tensor(&format!("{prefix}.weight"), &[d_in, d_out])?;
    let bias = loader.tensor(&format!("{prefix}.bias"), &[d_out])?;
    Ok(Linear {
        weight: w.f_transpose(0, 1)?.f_contiguous()?,
        bias: Some(bias),
    })
}

fn layer_norm(loader: &mut Loader<'_>, prefix: &str, d: i64, eps: f64) -> Result<Norm> {
    Ok(Norm::Layer {
        weight: loader.tensor(&format!("{prefix}.weight"), &[d])?,
        bias: loader.tensor(&format!("{prefix}.bias"), &[d])?,
        eps,
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

/// Loads GPT-2 weights from a Hugging Face checkpoint (with or without the `transformer.`
/// prefix).
pub(crate) fn load(config: &ModelConfig, loader: &mut Loader<'_>) -> Result<TransformerParts> {
    // Detect the prefix from more than one tensor, so that a checkpoint missing `wte` is
    // reported as missing `transformer.wte.weight`, not `wte.weight`.
    let prefixed = ["wte.weight", "wpe.weight", "ln_f.weight", "h.0.ln_1.weight"]
        .iter()
        .any(|name| loader.contains(&format!("transformer.{name}")));
    let p = if prefixed { "transformer." } else { "" };
    let d = config.d_model as i64;
    let d_mlp = config.d_mlp as i64;
    let vocab = config.vocab_size as i64;
    let eps = config.norm_eps;
    let embed = loader.tensor(&format!("{p}wte.weight"), &[vocab, d])?;
    let pos_embed = loader.tensor(&format!("{p}wpe.weight"), &[config.n_ctx as i64, d])?;
    let mut blocks = Vec::with_capacity(config.n_layers);
    for i in 0..config.n_layers {
        let b = format!("{p}h.{i}");
        let fused = conv1d(loader, &format!("{b}.attn.c_attn"), d, 3 * d)?;
        let (q, k, v) = split_qkv(fused, d)?;
        blocks.push(Block {
            ln1: layer_norm(loader, &format!("{b}.ln_1"), d, eps)?,
            attn: Attention {
                q,
                k,
                v,
                o: conv1d(loader, &format!("{b}.attn.c_proj"), d, d)?,
            },
            ln2: layer_norm(loader, &format!("{b}.ln_2"), d, eps)?,
            mlp: Mlp::Gelu {
                fc_in: conv1d(loader, &format!("{b}.mlp.c_fc"), d, d_mlp)?,
                fc_out: conv1d(loader, &format!("{b}.mlp.c_proj"), d_mlp, d)?,
            },
        });
    }
    let ln_final = layer_norm(loader, &format!("{p}ln_f"), d, eps)?;
    let unembed = if config.tied_embeddings {
        embed.shallow_clone()
    } else {
        loader.tensor("lm_head.weight", &[vocab, d])?
    };
    Ok(TransformerParts {
        embed,
        pos_embed: Some(pos_embed),
        blocks,
        ln_final,
        unembed,
    })
}
