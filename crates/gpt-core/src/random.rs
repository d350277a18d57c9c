//! Random-weight models at any configured size: hermetic tests, property tests and
//! benchmarks at paper scale (e.g. GPT-2 XL shapes) without downloading weights.

use std::cell::RefCell;

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
        let draw = Draw {
            rng: RefCell::new(ChaCha8Rng::seed_from_u64(init.seed as u64)),
            std: init.std,
            device,
            kind,
            config,
        };
        // The draw order (embeddings, blocks, unembedding, final norm, unembedding bias) is
        // that of the first version, so GPT-2 and Llama seeds keep giving the same weights.
        let d = config.d_model;
        let embed = draw.mat(config.vocab_size, d)?;
        let pos_embed = if config.arch == Architecture::Gpt2 {
            Some(draw.mat(config.n_ctx, d)?)
        } else {
            None
        };
        let blocks = (0..config.n_layers)
            .map(|_| draw.block())
            .collect::<Result<Vec<_>>>()?;
        let unembed = if config.tied_embeddings {
            embed.shallow_clone()
        } else {
            draw.mat(config.vocab_size, d)?
        };
        let parts = TransformerParts {
            embed,
            pos_embed,
            blocks,
            ln_final: draw.norm(d)?,
            unembed_bias: if config.arch == Architecture::GptJ {
                Some(draw.vec(config.vocab_size, 0.0)?)
            } else {
                None
            },
            unembed,
        };
        Transformer::new(config.clone(), device, kind, parts)
    }
}

/// Draws a model's weights in a fixed order from a generator local to one
/// [`Transformer::random`] call (ChaCha8, as the noise of causal tracing): no global state,
/// so concurrent calls and other users of libtorch's generator cannot change the weights a
/// seed gives.
struct Draw<'c> {
    rng: RefCell<ChaCha8Rng>,
    /// Standard deviation of matrix entries (and of norm weights around their identity).
    std: f64,
    device: Device,
    kind: Kind,
    config: &'c ModelConfig,
}

impl Draw<'_> {
    /// `n` values `mean + std·N(0, 1)`, `[n]`.
    fn vec(&self, n: usize, mean: f64) -> Result<Tensor> {
        let mut rng = self.rng.borrow_mut();
        let values: Vec<f32> = (0..n)
            .map(|_| {
                let z: f64 = rng.sample(StandardNormal);
                (mean + self.std * z) as f32
            })
            .collect();
        Ok(Tensor::f_from_slice(&values)?
            .f_to_kind(self.kind)?
            .f_to_device(self.device)?)
    }

    /// `[rows, cols]` of `std·N(0, 1)`.
    fn mat(&self, rows: usize, cols: usize) -> Result<Tensor> {
        Ok(self
            .vec(rows * cols, 0.0)?
            .f_reshape([rows as i64, cols as i64])?)
    }

    /// A `[out, inp]` linear layer, with a bias of `[out]` when `bias`.
    fn linear(&self, out: usize, inp: usize, bias: bool) -> Result<Linear> {
        Ok(Linear {
            weight: self.mat(out, inp)?,
            bias: if bias {
                Some(self.vec(out, 0.0)?)
            } else {
                None
            },
        })
    }

    /// The config's norm over `d` features, near the identity.
    fn norm(&self, d: usize) -> Result<Norm> {
        let c = self.config;
        let plus_one = c.norm == NormKind::RmsNormPlusOne;
        Ok(if c.norm == NormKind::LayerNorm {
            Norm::Layer {
                weight: self.vec(d, 1.0)?,
                bias: self.vec(d, 0.0)?,
                eps: c.norm_eps,
            }
        } else {
            Norm::Rms {
                // Gemma's norms scale by `1 + w`: the identity is w = 0.
                weight: self.vec(d, if plus_one { 0.0 } else { 1.0 })?,
                eps: c.norm_eps,
                plus_one,
            }
        })
    }

    /// The MLP of the config's family: GELU (GPT-2, NeoX, GPT-J) or gated (Llama).
    fn mlp(&self) -> Result<Mlp> {
        let c = self.config;
        let (d, dm) = (c.d_model, c.d_mlp);
        Ok(if c.arch == Architecture::Llama {
            Mlp::Gated {
                gate: self.linear(dm, d, false)?,
                up: self.linear(dm, d, false)?,
                down: self.linear(d, dm, false)?,
                gelu: c.activation == Activation::GeluTanh,
            }
        } else {
            Mlp::Gelu {
                fc_in: self.linear(dm, d, true)?,
                fc_out: self.linear(d, dm, true)?,
                exact: c.activation == Activation::Gelu,
            }
        })
    }

    /// One block with the parts its family has (what its loader in `crate::families`
    /// reads): drawn MLP first, then the first norm, attention, the second norm (GPT-J's is
    /// the first again) and Gemma's post-norms.
    fn block(&self) -> Result<Block> {
        let c = self.config;
        let (d, dh) = (c.d_model, c.d_head);
        let (q_out, kv_out) = (c.n_heads * dh, c.n_kv_heads * dh);
        let out_bias = match c.arch {
            Architecture::Gpt2 => true,
            Architecture::GptNeox => c.qkv_bias,
            Architecture::Llama | Architecture::GptJ => false,
        };
        let layout = BlockLayout::of(c);
        let mlp = self.mlp()?;
        let ln1 = self.norm(d)?;
        let attn = Attention {
            q: self.linear(q_out, d, c.qkv_bias)?,
            k: self.linear(kv_out, d, c.qkv_bias)?,
            v: self.linear(kv_out, d, c.qkv_bias)?,
            o: self.linear(d, q_out, out_bias)?,
            qk_norms: if c.qk_norm {
                Some((self.norm(dh)?, self.norm(dh)?))
            } else {
                None
            },
        };
        let ln2 = if layout == BlockLayout::ParallelSharedNorm {
            ln1.shared()
        } else {
            self.norm(d)?
        };
        Ok(Block {
            ln1,
            attn,
            ln2,
            mlp,
            layout,
            post_norms: if c.post_norms {
                Some((self.norm(d)?, self.norm(d)?))
            } else {
                None
            },
        })
    }
}
