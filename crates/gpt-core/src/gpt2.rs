//! GPT-2 family weights (gpt2, gpt2-medium/large/xl, distilgpt2): the only file that knows
//! GPT-2 checkpoint names.
//!
//! GPT-2 stores its projections as `Conv1D` with weights `[in, out]`; they are transposed
//! once here so every weight in the model is `[out, in]`. The fused `c_attn` is split into
//! separate q, k, v projections.

use tch::Tensor;

use crate::config::{ModelConfig, Sizes};
use crate::error::Result;
use crate::transformer::{Attention, Block, BlockLayout, Linear, Mlp, Norm, TransformerParts};
use crate::weights::Loader;

/// A `Conv1D` (`y = x W + b`, `W: [in, out]`) as a [`Linear`] with `[out, in]` weight.
pub(crate) fn conv1d(
    loader: &mut Loader<'_>,
    prefix: &str,
    d_in: i64,
    d_out: i64,
) -> Result<Linear> {
    let w = loader.tensor(&format!("{prefix}.weight"), &[d_in, d_out])?;
    let bias = loader.tensor(&format!("{prefix}.bias"), &[d_out])?;
    Ok(Linear {
        weight: w.f_transpose(0, 1)?.f_contiguous()?,
        bias: Some(bias),
    })
}

pub(crate) fn layer_norm(loader: &mut Loader<'_>, prefix: &str, d: i64, eps: f64) -> Result<Norm> {
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

/// Where a GPT-2 checkpoint keeps its tensors: Hugging Face names (with or without the
/// `transformer.` prefix; `Conv1D` weights stored `[in, out]`), or llama.cpp's GGUF names
/// (the same weights stored `[out, in]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    HuggingFace { prefix: &'static str },
    Gguf,
}

/// The tensors of one GPT-2 block, by role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Ln1,
    Qkv,
    AttnOut,
    Ln2,
    FcIn,
    FcOut,
}

impl Layout {
    fn embed(self) -> String {
        match self {
            Layout::HuggingFace { prefix } => format!("{prefix}wte.weight"),
            Layout::Gguf => "token_embd.weight".into(),
        }
    }

    fn pos_embed(self) -> String {
        match self {
            Layout::HuggingFace { prefix } => format!("{prefix}wpe.weight"),
            Layout::Gguf => "position_embd.weight".into(),
        }
    }

    fn final_norm(self) -> String {
        match self {
            Layout::HuggingFace { prefix } => format!("{prefix}ln_f"),
            Layout::Gguf => "output_norm".into(),
        }
    }

    fn lm_head(self) -> &'static str {
        match self {
            Layout::HuggingFace { .. } => "lm_head.weight",
            Layout::Gguf => "output.weight",
        }
    }

    /// The name of `part` of block `i`, without `.weight` / `.bias`.
    fn block(self, i: usize, part: Part) -> String {
        match self {
            Layout::HuggingFace { prefix } => {
                let name = match part {
                    Part::Ln1 => "ln_1",
                    Part::Qkv => "attn.c_attn",
                    Part::AttnOut => "attn.c_proj",
                    Part::Ln2 => "ln_2",
                    Part::FcIn => "mlp.c_fc",
                    Part::FcOut => "mlp.c_proj",
                };
                format!("{prefix}h.{i}.{name}")
            }
            Layout::Gguf => {
                let name = match part {
                    Part::Ln1 => "attn_norm",
                    Part::Qkv => "attn_qkv",
                    Part::AttnOut => "attn_output",
                    Part::Ln2 => "ffn_norm",
                    Part::FcIn => "ffn_up",
                    Part::FcOut => "ffn_down",
                };
                format!("blk.{i}.{name}")
            }
        }
    }

    /// The projection at `prefix` as a [`Linear`] with `[out, in]` weight: a `Conv1D`
    /// transposed once here, or a GGUF tensor stored that way already.
    fn linear(self, loader: &mut Loader<'_>, prefix: &str, out: i64, inp: i64) -> Result<Linear> {
        match self {
            Layout::HuggingFace { .. } => conv1d(loader, prefix, inp, out),
            Layout::Gguf => Ok(Linear {
                weight: loader.tensor(&format!("{prefix}.weight"), &[out, inp])?,
                bias: Some(loader.tensor(&format!("{prefix}.bias"), &[out])?),
            }),
        }
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
        let fused = layout.linear(loader, &name(Part::Qkv), 3 * d, d)?;
        let (q, k, v) = split_qkv(fused, d)?;
        blocks.push(Block {
            ln1: layer_norm(loader, &name(Part::Ln1), d, eps)?,
            attn: Attention {
                q,
                k,
                v,
                o: layout.linear(loader, &name(Part::AttnOut), d, d)?,
                qk_norms: None,
            },
            ln2: layer_norm(loader, &name(Part::Ln2), d, eps)?,
            mlp: Mlp::Gelu {
                fc_in: layout.linear(loader, &name(Part::FcIn), d_mlp, d)?,
                fc_out: layout.linear(loader, &name(Part::FcOut), d, d_mlp)?,
                exact: false,
            },
            layout: BlockLayout::Sequential,
            post_norms: None,
        });
    }
    let ln_final = layer_norm(loader, &layout.final_norm(), d, eps)?;
    let unembed = if config.tied_embeddings {
        embed.shallow_clone()
    } else {
        loader.tensor(layout.lm_head(), &[vocab, d])?
    };
    Ok(TransformerParts {
        embed,
        pos_embed: Some(pos_embed),
        blocks,
        ln_final,
        unembed,
        unembed_bias: None,
    })
}

/// The model config from GGUF metadata (`general.architecture` = `gpt2`; llama.cpp's keys
/// `gpt2.block_count`, `gpt2.embedding_length`, …).
pub(crate) fn config_from_gguf(
    file: &gguf::GgufFile,
    path: &std::path::Path,
) -> Result<ModelConfig> {
    let bad = |reason: String| crate::error::Error::Config {
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

/// The model's tensors under Hugging Face GPT-2 names (the inverse of [`load`]: `Conv1D`
/// weights transposed back to `[in, out]`, q/k/v fused into `c_attn`), for writing a folder.
pub(crate) fn hf_tensors(t: &crate::transformer::Transformer) -> Result<Vec<(String, Tensor)>> {
    let unsupported = |what: &str| {
        crate::error::Error::InvalidInput(format!("a GPT-2 model with {what} cannot be written"))
    };
    let conv = |out: &mut Vec<(String, Tensor)>, prefix: String, l: &Linear| -> Result<()> {
        out.push((
            format!("{prefix}.weight"),
            l.weight.f_transpose(0, 1)?.f_contiguous()?,
        ));
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
    let layout = Layout::HuggingFace {
        prefix: "transformer.",
    };
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
