//! The layers of a block: linear maps, norms and MLPs, with the small enums that hold what
//! differs between architectures.

use tch::{Kind, Tensor};

use crate::error::Result;
use crate::transformer::attention::Attention;

/// `y = x Wᵀ + b` with `W: [out, in]`.
#[derive(Debug)]
pub(crate) struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    /// `x: [.., in]` → `[.., out]`: `x Wᵀ + b`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // libtorch folds a contiguous `[b, t, in]` input into one `[b·t, in]` matrix product.
        // A non-contiguous one (the query rows narrowed out of a resumed batch) goes through
        // a batched product with the weight expanded over `b`, and oneDNN's bf16 kernel
        // then copies the weight once per batch row: 192 MB of a bf16 trace's peak (found
        // with heaptrack), and slower. Copying the activations instead is small.
        Ok(x.f_contiguous()?
            .f_linear(&self.weight, self.bias.as_ref())?)
    }
}

/// LayerNorm (GPT-2) or RMSNorm (Llama) over the last dimension.
#[derive(Debug)]
pub(crate) enum Norm {
    Layer {
        weight: Tensor,
        bias: Tensor,
        eps: f64,
    },
    Rms {
        weight: Tensor,
        eps: f64,
        /// Gemma's `(1 + w)` scale, applied in the reduction dtype before the cast back.
        plus_one: bool,
    },
}

/// The dtype a reduction (norm statistics, softmax) runs in: f32 for f32 and the half
/// types (as transformers does), f64 for f64 so that f64 models stay exact to ~1e-15.
pub(crate) fn reduction_kind(kind: Kind) -> Kind {
    if kind == Kind::Double {
        Kind::Double
    } else {
        Kind::Float
    }
}

impl Norm {
    /// The same norm again, sharing its tensors (GPT-J's one norm per block is both `ln1`
    /// and `ln2`).
    pub(crate) fn shared(&self) -> Norm {
        match self {
            Norm::Layer { weight, bias, eps } => Norm::Layer {
                weight: weight.shallow_clone(),
                bias: bias.shallow_clone(),
                eps: *eps,
            },
            Norm::Rms {
                weight,
                eps,
                plus_one,
            } => Norm::Rms {
                weight: weight.shallow_clone(),
                eps: *eps,
                plus_one: *plus_one,
            },
        }
    }

    /// `x: [.., d]` → `[.., d]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Norm::Layer { weight, bias, eps } => {
                let d = x.size().last().copied().unwrap_or(0);
                Ok(x.f_layer_norm([d], Some(weight), Some(bias), *eps, false)?)
            }
            Norm::Rms {
                weight,
                eps,
                plus_one,
            } => {
                // As transformers' LlamaRMSNorm: normalise in f32 (f64 stays f64), cast back,
                // then scale: `w · x / sqrt(mean(x²) + eps)`. GemmaRMSNorm scales by
                // `1 + w` before the cast instead.
                let rk = reduction_kind(x.kind());
                let xf = x.f_to_kind(rk)?;
                let var = xf.f_square()?.f_mean_dim(-1, true, rk)?;
                let normed = xf.f_mul(&var.f_add_scalar(*eps)?.f_rsqrt()?)?;
                if *plus_one {
                    let scale = weight.f_to_kind(rk)?.f_add_scalar(1.0)?;
                    Ok(normed.f_mul(&scale)?.f_to_kind(x.kind())?)
                } else {
                    Ok(weight.f_mul(&normed.f_to_kind(x.kind())?)?)
                }
            }
        }
    }
}

/// GELU MLP (GPT-2, GPT-J: tanh approximation; GPT-NeoX: exact, erf) or gated MLP (Llama's
/// SwiGLU, Gemma's GeGLU).
#[derive(Debug)]
pub(crate) enum Mlp {
    Gelu {
        fc_in: Linear,
        fc_out: Linear,
        /// `gelu` (erf) instead of `gelu_new` (tanh).
        exact: bool,
    },
    Gated {
        gate: Linear,
        up: Linear,
        down: Linear,
        /// The gate is tanh-GELU (GeGLU) instead of SiLU (SwiGLU).
        gelu: bool,
    },
}

impl Mlp {
    /// The MLP key (`mlp.hook_post`): `gelu(x W_inᵀ + b)` or `act(x W_gateᵀ) ⊙ x W_upᵀ` (act
    /// = silu or tanh-gelu), `[.., d_model]` → `[.., d_mlp]`.
    pub fn post(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Mlp::Gelu { fc_in, exact, .. } => {
                fc_in
                    .forward(x)?
                    .f_gelu(if *exact { "none" } else { "tanh" })?
            }
            Mlp::Gated { gate, up, gelu, .. } => {
                let g = gate.forward(x)?;
                let g = if *gelu {
                    g.f_gelu("tanh")?
                } else {
                    g.f_silu()?
                };
                g.f_mul(&up.forward(x)?)?
            }
        })
    }

    /// The output projection (the matrix ROME edits): `[.., d_mlp]` → `[.., d_model]`.
    pub fn out(&self, post: &Tensor) -> Result<Tensor> {
        self.out_proj().forward(post)
    }

    /// The output projection.
    pub fn out_proj(&self) -> &Linear {
        match self {
            Mlp::Gelu { fc_out, .. } => fc_out,
            Mlp::Gated { down, .. } => down,
        }
    }
}

/// How a block combines attention and MLP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BlockLayout {
    /// `m = x + attn(ln1(x))`, then `m + mlp(ln2(m))` (GPT-2, Llama, NeoX without parallel
    /// residual).
    Sequential,
    /// `x + attn(ln1(x)) + mlp(ln2(x))` (GPT-NeoX's `use_parallel_residual`).
    Parallel,
    /// `x + attn(ln1(x)) + mlp(ln1(x))`: one norm for both (GPT-J; `ln2` is `ln1`).
    ParallelSharedNorm,
}

impl BlockLayout {
    /// The layout `config` describes: GPT-J's one norm for both branches, attention and MLP
    /// in parallel where `parallel_attn_mlp` says so (GPT-NeoX's `use_parallel_residual`),
    /// else in sequence. Loaders and random models both take it from here.
    pub(crate) fn of(config: &crate::config::ModelConfig) -> Self {
        match config.arch {
            crate::config::Architecture::GptJ => BlockLayout::ParallelSharedNorm,
            _ if config.parallel_attn_mlp => BlockLayout::Parallel,
            _ => BlockLayout::Sequential,
        }
    }
}

/// One transformer block (see [`BlockLayout`]).
#[derive(Debug)]
pub(crate) struct Block {
    pub ln1: Norm,
    pub attn: Attention,
    pub ln2: Norm,
    pub mlp: Mlp,
    pub layout: BlockLayout,
    /// Gemma 2's sandwich norms `(after attention, after the MLP)`, applied to each output
    /// before it joins the residual stream (sequential layout only).
    pub post_norms: Option<(Norm, Norm)>,
}
