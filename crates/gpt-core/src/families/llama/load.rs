//! Loading Llama-layout weights (Hugging Face safetensors or GGUF) into the
//! [`Transformer`](crate::Transformer)'s parts.

use tch::Tensor;

use super::names::{Layout, Part};
use crate::config::{Activation, ModelConfig, NormKind};
use crate::error::{Error, Result};
use crate::families::tensors::unembed;
use crate::transformer::{Attention, Block, BlockLayout, Linear, Mlp, Norm, TransformerParts};
use crate::weights::Loader;

/// Per-layer buffers a Llama-layout checkpoint may hold besides its weights (block-relative
/// names): `self_attn.rotary_emb.inv_freq`, the rotary frequencies, which transformers
/// before 4.31 saved; they follow from the config (`rope_theta`), which the model uses, as
/// transformers does.
pub(crate) const BUFFERS: &[&str] = &["self_attn.rotary_emb.inv_freq"];

/// Whether a projection has a bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bias {
    /// The checkpoint must have one.
    Required,
    /// Use one if the checkpoint has it (Llama's `attention_bias` also biases `o_proj`).
    IfPresent,
    /// None.
    Absent,
}

/// One projection to load: its role, shape `[out, in]`, bias, and — for q/k in GGUF files —
/// the head count whose rotary rows must be un-permuted.
struct Projection {
    part: Part,
    out: i64,
    inp: i64,
    bias: Bias,
    rotary_heads: Option<i64>,
}

/// Undoes llama.cpp's interleaving of the rotary halves in q/k rows (as transformers'
/// `_reverse_permute_weights`): rows `[heads, d_head/2, 2]` → `[heads, 2, d_head/2]`.
fn unpermute_rows(t: &Tensor, heads: i64) -> Result<Tensor> {
    swap_rotary_rows(t, heads, 2)
}

/// llama.cpp's interleaving of the rotary halves in q/k rows, the inverse of
/// [`unpermute_rows`] (what its converter does to a Hugging Face checkpoint): rows
/// `[heads, 2, d_head/2]` → `[heads, d_head/2, 2]`.
pub(super) fn permute_rows(t: &Tensor, heads: i64) -> Result<Tensor> {
    let rows = t.size().first().copied().unwrap_or(0);
    swap_rotary_rows(t, heads, rows / heads.max(1) / 2)
}

/// Rows (dim 0, `heads · d_head`) viewed as `[heads, rows / heads / inner, inner]` with the
/// last two axes swapped; `inner` = 2 un-permutes, `inner` = `d_head / 2` permutes.
fn swap_rotary_rows(t: &Tensor, heads: i64, inner: i64) -> Result<Tensor> {
    let size = t.size();
    let rows = size.first().copied().unwrap_or(0);
    if heads <= 0 || inner <= 0 || rows % (heads * inner) != 0 {
        return Err(Error::InvalidInput(format!(
            "q/k rows {rows} do not split into {heads} heads of rotary pairs"
        )));
    }
    let rest: Vec<i64> = size.iter().skip(1).copied().collect();
    let mut shape = vec![heads, rows / heads / inner, inner];
    shape.extend(&rest);
    Ok(t.f_reshape(&shape)?
        .f_transpose(1, 2)?
        .f_reshape(&size)?
        .f_contiguous()?)
}

struct Ctx<'l, 'a> {
    loader: &'l mut Loader<'a>,
    layout: Layout,
    /// Whether q/k rows are stored interleaved (llama.cpp's `llama` GGUF files).
    interleaved: bool,
}

impl Ctx<'_, '_> {
    fn linear(&mut self, layer: usize, p: Projection) -> Result<Linear> {
        let base = self.layout.block(layer, p.part);
        let w_name = format!("{base}.weight");
        let b_name = format!("{base}.bias");
        let unpermute = p.rotary_heads.filter(|_| self.interleaved);
        let weight = match unpermute {
            Some(heads) => {
                let raw = self.loader.raw(&w_name)?;
                check_shape(&w_name, &raw, &[p.out, p.inp])?;
                self.loader.convert(unpermute_rows(&raw, heads)?)?
            }
            None => self.loader.tensor(&w_name, &[p.out, p.inp])?,
        };
        let bias = match (p.bias, unpermute) {
            (Bias::Absent, _) => None,
            (Bias::IfPresent, _) => self.loader.optional(&b_name, &[p.out])?,
            (Bias::Required, Some(heads)) => {
                let raw = self.loader.raw(&b_name)?;
                check_shape(&b_name, &raw, &[p.out])?;
                Some(self.loader.convert(unpermute_rows(&raw, heads)?)?)
            }
            (Bias::Required, None) => Some(self.loader.tensor(&b_name, &[p.out])?),
        };
        Ok(Linear {
            weight: weight.f_contiguous()?,
            bias,
        })
    }

    fn rms(&mut self, name: &str, d: i64, eps: f64, plus_one: bool) -> Result<Norm> {
        Ok(Norm::Rms {
            weight: self.loader.tensor(name, &[d])?,
            eps,
            plus_one,
        })
    }
}

/// llama.cpp's per-frequency divisors of the rotary frequencies (written for Llama 3.1's
/// rope scaling, which the GGUF metadata then does not name).
const ROPE_FREQS: &str = "rope_freqs.weight";

/// Accepts a GGUF file's [`ROPE_FREQS`] only if every factor is 1 (the rotary embedding
/// unchanged): other factors are not applied here, and ignoring them would turn every
/// low frequency wrongly and answer wrongly without a word.
fn check_rope_freqs(loader: &mut Loader<'_>) -> Result<()> {
    if !loader.contains(ROPE_FREQS) {
        return Ok(());
    }
    let factors = loader.raw(ROPE_FREQS)?;
    if factors.f_ne(1.0)?.f_any()?.f_int64_value(&[])? != 0 {
        return Err(Error::Checkpoint {
            path: loader.file_of(ROPE_FREQS),
            reason: format!(
                "`{ROPE_FREQS}` scales the rotary frequencies (Llama 3 rope scaling), which is not supported for GGUF files; load the model's Hugging Face folder instead"
            ),
        });
    }
    Ok(())
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

/// Loads Llama-family weights stored in `layout` (GGUF: llama.cpp names, q/k rows
/// un-permuted where llama.cpp interleaves them).
pub(crate) fn load(
    config: &ModelConfig,
    loader: &mut Loader<'_>,
    layout: Layout,
) -> Result<TransformerParts> {
    let interleaved =
        layout == Layout::Gguf && super::gguf::gguf_qk_interleaved(&config.model_type);
    let mut cx = Ctx {
        loader,
        layout,
        interleaved,
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
    let plus_one = config.norm == NormKind::RmsNormPlusOne;
    let qkv_bias = if config.qkv_bias {
        Bias::Required
    } else {
        Bias::Absent
    };
    let proj = |part, out, inp, bias, rotary_heads| Projection {
        part,
        out,
        inp,
        bias,
        rotary_heads,
    };
    let embed = cx.loader.tensor(layout.embed(), &[vocab, d])?;
    let pre_mlp_norm = if config.post_norms {
        Part::PreMlpNorm
    } else {
        Part::MlpNorm
    };
    let mut blocks = Vec::with_capacity(config.n_layers);
    for i in 0..config.n_layers {
        let norm_name = |part| format!("{}.weight", layout.block(i, part));
        blocks.push(Block {
            ln1: cx.rms(&norm_name(Part::AttnNorm), d, eps, plus_one)?,
            attn: Attention {
                q: cx.linear(i, proj(Part::Q, h * dh, d, qkv_bias, Some(h)))?,
                k: cx.linear(i, proj(Part::K, kvh * dh, d, qkv_bias, Some(kvh)))?,
                v: cx.linear(i, proj(Part::V, kvh * dh, d, qkv_bias, None))?,
                o: cx.linear(i, proj(Part::O, d, h * dh, Bias::IfPresent, None))?,
                qk_norms: if config.qk_norm {
                    Some((
                        cx.rms(&norm_name(Part::QNorm), dh, eps, plus_one)?,
                        cx.rms(&norm_name(Part::KNorm), dh, eps, plus_one)?,
                    ))
                } else {
                    None
                },
            },
            ln2: cx.rms(&norm_name(pre_mlp_norm), d, eps, plus_one)?,
            mlp: Mlp::Gated {
                gate: cx.linear(i, proj(Part::Gate, d_mlp, d, Bias::Absent, None))?,
                up: cx.linear(i, proj(Part::Up, d_mlp, d, Bias::Absent, None))?,
                down: cx.linear(i, proj(Part::Down, d, d_mlp, Bias::Absent, None))?,
                gelu: config.activation == Activation::GeluTanh,
            },
            layout: BlockLayout::of(config),
            post_norms: if config.post_norms {
                Some((
                    cx.rms(&norm_name(Part::AttnOutNorm), d, eps, plus_one)?,
                    cx.rms(&norm_name(Part::MlpOutNorm), d, eps, plus_one)?,
                ))
            } else {
                None
            },
        });
    }
    let ln_final = cx.rms(layout.final_norm(), d, eps, plus_one)?;
    if layout == Layout::Gguf {
        check_rope_freqs(cx.loader)?;
    }
    let unembed = unembed(
        cx.loader,
        config.tied_embeddings,
        layout.lm_head(),
        &embed,
        layout.embed(),
    )?;
    Ok(TransformerParts {
        embed,
        pos_embed: None,
        blocks,
        ln_final,
        unembed,
        unembed_bias: None,
    })
}
