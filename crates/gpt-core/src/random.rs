//! Random-weight models at any configured size: hermetic tests, property tests and
//! benchmarks at paper scale (e.g. GPT-2 XL shapes) without downloading weights.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use tch::{Device, Kind, Tensor};

use crate::config::{Activation, Architecture, ModelConfig, NormKind, Sizes};
use crate::error::Result;
use crate::transformer::{
    Attention, Block, BlockLayout, Linear, Mlp, Norm, Transformer, TransformerParts,
};

/// How to draw random weights.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RandomInit {
    /// Seed of the model's own generator (the same seed gives the same weights, on every
    /// thread and device; libtorch's global generator is never touched).
    pub seed: i64,
    /// Standard deviation of matrix entries; norm weights are `1 + N(0, std)`.
    pub std: f64,
}

impl Default for RandomInit {
    fn default() -> Self {
        Self { seed: 0, std: 0.02 }
    }
}

/// A small config of any architecture for tests: 2 layers, `d_model` 16, 4 heads
/// (2 KV heads for Llama), `d_mlp` 32, vocabulary 64, context 32; GPT-NeoX and GPT-J rotate
/// half of each head, NeoX with its parallel residual.
pub fn tiny_config(arch: Architecture) -> ModelConfig {
    let llama = arch == Architecture::Llama;
    let sizes = Sizes {
        n_layers: 2,
        d_model: 16,
        n_heads: 4,
        n_kv_heads: if llama { 2 } else { 4 },
        d_head: 4,
        d_mlp: 32,
        vocab_size: 64,
        n_ctx: 32,
        norm_eps: 1e-5,
    };
    let family = match arch {
        Architecture::Llama => ModelConfig::llama("llama", sizes),
        Architecture::Gpt2 => ModelConfig::gpt2(sizes),
        Architecture::GptNeox => {
            ModelConfig::neox(sizes, rotary_dim_for(sizes.d_head), Activation::Gelu)
        }
        Architecture::GptJ => ModelConfig::gptj(sizes, rotary_dim_for(sizes.d_head)),
    };
    ModelConfig {
        arch,
        eos_token_id: Some(0),
        ..family
    }
}

/// The rotary width of GPT-NeoX and GPT-J test configs: half of `d_head`, even (rotary
/// dimensions come in pairs) and at least one pair.
pub(crate) fn rotary_dim_for(d_head: usize) -> usize {
    (d_head / 2 / 2 * 2).max(2).min(d_head - d_head % 2)
}

/// The config of GPT-2 XL (48 layers, `d_model` 1600, 25 heads, `d_mlp` 6400, vocabulary
/// 50257, context 1024), the model of the ROME paper.
pub fn gpt2_xl_config() -> ModelConfig {
    ModelConfig {
        bos_token_id: Some(50256),
        eos_token_id: Some(50256),
        ..ModelConfig::gpt2(Sizes {
            n_layers: 48,
            d_model: 1600,
            n_heads: 25,
            n_kv_heads: 25,
            d_head: 64,
            d_mlp: 6400,
            vocab_size: 50257,
            n_ctx: 1024,
            norm_eps: 1e-5,
        })
    }
}

impl Transformer {
    /// A model with random weights for `config`.
    ///
    /// # Errors
    /// An invalid config ([`crate::Error::Config`]) or libtorch errors (e.g. out of memory).
    pub fn random(
        config: &ModelConfig,
        init: RandomInit,
        device: Device,
        kind: Kind,
    ) -> Result<Self> {
        config.validate(std::path::Path::new("<random>"))?;
        let _guard = tch::no_grad_guard();
        // A generator local to this call (ChaCha8, as the noise of causal tracing): no global
        // state, so concurrent calls and other users of libtorch's generator cannot change
        // the weights a seed gives.
        let rng = std::cell::RefCell::new(ChaCha8Rng::seed_from_u64(init.seed as u64));
        let normal = |n: usize, std: f64, mean: f64| -> Result<Tensor> {
            let mut rng = rng.borrow_mut();
            let values: Vec<f32> = (0..n)
                .map(|_| {
                    let z: f64 = rng.sample(StandardNormal);
                    (mean + std * z) as f32
                })
                .collect();
            Ok(Tensor::f_from_slice(&values)?
                .f_to_kind(kind)?
                .f_to_device(device)?)
        };
        let mat = |rows: usize, cols: usize| -> Result<Tensor> {
            Ok(normal(rows * cols, init.std, 0.0)?.f_reshape([rows as i64, cols as i64])?)
        };
        let vec = |n: usize, mean: f64| -> Result<Tensor> { normal(n, init.std, mean) };
        let linear = |out: usize, inp: usize, bias: bool| -> Result<Linear> {
            Ok(Linear {
                weight: mat(out, inp)?,
                bias: if bias { Some(vec(out, 0.0)?) } else { None },
            })
        };
        let arch = config.arch;
        let gpt2 = arch == Architecture::Gpt2;
        // Which parts each family has (what its loader in `crate::families` reads). The draw
        // order of GPT-2 and Llama is that of the first version, so their seeds keep giving
        // the same weights.
        let gelu_mlp = arch != Architecture::Llama;
        let out_bias = match arch {
            Architecture::Gpt2 => true,
            Architecture::GptNeox => config.qkv_bias,
            Architecture::Llama | Architecture::GptJ => false,
        };
        let layout = match arch {
            Architecture::GptJ => BlockLayout::ParallelSharedNorm,
            Architecture::GptNeox if config.parallel_attn_mlp => BlockLayout::Parallel,
            _ => BlockLayout::Sequential,
        };
        let norm = |d: usize| -> Result<Norm> {
            let plus_one = config.norm == NormKind::RmsNormPlusOne;
            Ok(if config.norm == NormKind::LayerNorm {
                Norm::Layer {
                    weight: vec(d, 1.0)?,
                    bias: vec(d, 0.0)?,
                    eps: config.norm_eps,
                }
            } else {
                Norm::Rms {
                    // Gemma's norms scale by `1 + w`: the identity is w = 0.
                    weight: vec(d, if plus_one { 0.0 } else { 1.0 })?,
                    eps: config.norm_eps,
                    plus_one,
                }
            })
        };
        let (d, dh, dm) = (config.d_model, config.d_head, config.d_mlp);
        let (q_out, kv_out) = (config.n_heads * dh, config.n_kv_heads * dh);
        let embed = mat(config.vocab_size, d)?;
        let pos_embed = if gpt2 {
            Some(mat(config.n_ctx, d)?)
        } else {
            None
        };
        let mut blocks = Vec::with_capacity(config.n_layers);
        for _ in 0..config.n_layers {
            let mlp = if gelu_mlp {
                Mlp::Gelu {
                    fc_in: linear(dm, d, true)?,
                    fc_out: linear(d, dm, true)?,
                    exact: config.activation == Activation::Gelu,
                }
            } else {
                Mlp::Gated {
                    gate: linear(dm, d, false)?,
                    up: linear(dm, d, false)?,
                    down: linear(d, dm, false)?,
                    gelu: config.activation == Activation::GeluTanh,
                }
            };
            let ln1 = norm(d)?;
            let attn = Attention {
                q: linear(q_out, d, config.qkv_bias)?,
                k: linear(kv_out, d, config.qkv_bias)?,
                v: linear(kv_out, d, config.qkv_bias)?,
                o: linear(d, q_out, out_bias)?,
                qk_norms: if config.qk_norm {
                    Some((norm(dh)?, norm(dh)?))
                } else {
                    None
                },
            };
            let ln2 = if layout == BlockLayout::ParallelSharedNorm {
                ln1.shared()
            } else {
                norm(d)?
            };
            blocks.push(Block {
                ln1,
                attn,
                ln2,
                mlp,
                layout,
                post_norms: if config.post_norms {
                    Some((norm(d)?, norm(d)?))
                } else {
                    None
                },
            });
        }
        let unembed = if config.tied_embeddings {
            embed.shallow_clone()
        } else {
            mat(config.vocab_size, d)?
        };
        let parts = TransformerParts {
            embed,
            pos_embed,
            blocks,
            ln_final: norm(d)?,
            unembed_bias: if arch == Architecture::GptJ {
                Some(vec(config.vocab_size, 0.0)?)
            } else {
                None
            },
            unembed,
        };
        Transformer::new(config.clone(), device, kind, parts)
    }
}
