//! Llama family weights (Llama, SmolLM2, Qwen2, Mistral, Gemma 1–3) from Hugging Face safetensors or
//! GGUF: the only file that knows their checkpoint names.

use std::path::Path;

use tch::Tensor;

use crate::config::{ModelConfig, Sizes};
use crate::error::{Error, Result};
use crate::transformer::{Attention, Block, BlockLayout, Linear, Mlp, Norm, TransformerParts};
use crate::weights::Loader;

/// The tensors of one Llama block, by role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    AttnNorm,
    /// The norm before the MLP (Llama's `post_attention_layernorm`).
    MlpNorm,
    /// Gemma 2's norm before the MLP (its `post_attention_layernorm` is [`Part::AttnOutNorm`]).
    PreMlpNorm,
    /// Gemma 2's norm of the attention output.
    AttnOutNorm,
    /// Gemma 2's norm of the MLP output.
    MlpOutNorm,
    /// Gemma 3's norm over each head's queries.
    QNorm,
    /// Gemma 3's norm over each head's keys.
    KNorm,
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

/// The two checkpoint layouts of Llama-family weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Hugging Face names (`model.layers.{i}.self_attn.q_proj`).
    HuggingFace,
    /// llama.cpp GGUF names (`blk.{i}.attn_q`); q/k rows permuted for its rotary layout.
    Gguf,
}

impl Layout {
    fn embed(self) -> &'static str {
        match self {
            Layout::HuggingFace => "model.embed_tokens.weight",
            Layout::Gguf => "token_embd.weight",
        }
    }

    fn final_norm(self) -> &'static str {
        match self {
            Layout::HuggingFace => "model.norm.weight",
            Layout::Gguf => "output_norm.weight",
        }
    }

    fn lm_head(self) -> &'static str {
        match self {
            Layout::HuggingFace => "lm_head.weight",
            Layout::Gguf => "output.weight",
        }
    }

    /// The name of `part` of block `i`, without `.weight` / `.bias`.
    fn block(self, i: usize, part: Part) -> String {
        match self {
            Layout::HuggingFace => {
                let name = match part {
                    Part::AttnNorm => "input_layernorm",
                    Part::MlpNorm | Part::AttnOutNorm => "post_attention_layernorm",
                    Part::PreMlpNorm => "pre_feedforward_layernorm",
                    Part::MlpOutNorm => "post_feedforward_layernorm",
                    Part::QNorm => "self_attn.q_norm",
                    Part::KNorm => "self_attn.k_norm",
                    Part::Q => "self_attn.q_proj",
                    Part::K => "self_attn.k_proj",
                    Part::V => "self_attn.v_proj",
                    Part::O => "self_attn.o_proj",
                    Part::Gate => "mlp.gate_proj",
                    Part::Up => "mlp.up_proj",
                    Part::Down => "mlp.down_proj",
                };
                format!("model.layers.{i}.{name}")
            }
            Layout::Gguf => {
                let name = match part {
                    Part::AttnNorm => "attn_norm",
                    Part::MlpNorm | Part::PreMlpNorm => "ffn_norm",
                    Part::AttnOutNorm => "post_attention_norm",
                    Part::MlpOutNorm => "post_ffw_norm",
                    Part::QNorm => "attn_q_norm",
                    Part::KNorm => "attn_k_norm",
                    Part::Q => "attn_q",
                    Part::K => "attn_k",
                    Part::V => "attn_v",
                    Part::O => "attn_output",
                    Part::Gate => "ffn_gate",
                    Part::Up => "ffn_up",
                    Part::Down => "ffn_down",
                };
                format!("blk.{i}.{name}")
            }
        }
    }
}

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
    layout: Layout,
}

impl Ctx<'_, '_> {
    fn linear(&mut self, layer: usize, p: Projection) -> Result<Linear> {
        let base = self.layout.block(layer, p.part);
        let w_name = format!("{base}.weight");
        let b_name = format!("{base}.bias");
        let unpermute = p.rotary_heads.filter(|_| self.layout == Layout::Gguf);
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

/// Loads Llama-family weights stored in `layout` (GGUF: llama.cpp names, q/k un-permuted).
pub(crate) fn load(
    config: &ModelConfig,
    loader: &mut Loader<'_>,
    layout: Layout,
) -> Result<TransformerParts> {
    let mut cx = Ctx { loader, layout };
    let d = config.d_model as i64;
    let (h, kvh, dh) = (
        config.n_heads as i64,
        config.n_kv_heads as i64,
        config.d_head as i64,
    );
    let d_mlp = config.d_mlp as i64;
    let vocab = config.vocab_size as i64;
    let eps = config.norm_eps;
    let plus_one = config.norm_plus_one;
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
                gelu: config.gelu_gate,
            },
            layout: BlockLayout::Sequential,
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
    let unembed = if config.tied_embeddings {
        embed.shallow_clone()
    } else {
        cx.loader.tensor(layout.lm_head(), &[vocab, d])?
    };
    Ok(TransformerParts {
        embed,
        pos_embed: None,
        blocks,
        ln_final,
        unembed,
        unembed_bias: None,
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

/// The model's tensors under Hugging Face Llama names (the inverse of [`load`] with
/// [`Layout::HuggingFace`]), for writing a model folder.
pub(crate) fn hf_tensors(t: &crate::transformer::Transformer) -> Result<Vec<(String, Tensor)>> {
    let layout = Layout::HuggingFace;
    let mut out = vec![(layout.embed().to_string(), t.embed.shallow_clone())];
    let linear = |out: &mut Vec<(String, Tensor)>, i: usize, part: Part, l: &Linear| {
        let base = layout.block(i, part);
        out.push((format!("{base}.weight"), l.weight.shallow_clone()));
        if let Some(b) = &l.bias {
            out.push((format!("{base}.bias"), b.shallow_clone()));
        }
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
        linear(&mut out, i, Part::Q, &b.attn.q);
        linear(&mut out, i, Part::K, &b.attn.k);
        linear(&mut out, i, Part::V, &b.attn.v);
        linear(&mut out, i, Part::O, &b.attn.o);
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
                linear(&mut out, i, Part::Gate, gate);
                linear(&mut out, i, Part::Up, up);
                linear(&mut out, i, Part::Down, down);
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
