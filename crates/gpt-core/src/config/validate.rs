//! [`ModelConfig::validate`]: one check per concern, each naming the field it refuses.

use std::path::Path;

use super::{Activation, Architecture, ModelConfig, NormKind};
use crate::error::{Error, Result};

/// What a check refuses, before the config's source is attached.
type Check = std::result::Result<(), String>;

impl ModelConfig {
    /// Checks the sizes and constants for consistency.
    ///
    /// # Errors
    /// [`Error::Config`] naming `source` and the inconsistent field.
    pub fn validate(&self, source: &Path) -> Result<()> {
        self.check_sizes()
            .and_then(|()| self.check_rotary())
            .and_then(|()| self.check_windows())
            .and_then(|()| self.check_scales())
            .and_then(|()| self.check_block_kinds())
            .and_then(|()| self.check_special_tokens())
            .map_err(|reason| Error::Config {
                path: source.to_path_buf(),
                reason,
            })
    }

    /// Positive sizes that fit together: heads × head width is the residual width (except
    /// in the Llama layout, whose `head_dim` may differ), query heads in whole groups per
    /// key/value head; a usable norm epsilon.
    fn check_sizes(&self) -> Check {
        for (name, v) in [
            ("n_layers", self.n_layers),
            ("d_model", self.d_model),
            ("n_heads", self.n_heads),
            ("n_kv_heads", self.n_kv_heads),
            ("d_head", self.d_head),
            ("d_mlp", self.d_mlp),
            ("vocab_size", self.vocab_size),
            ("n_ctx", self.n_ctx),
        ] {
            if v == 0 {
                return Err(format!("{name} must be positive"));
            }
        }
        if self.arch != Architecture::Llama && self.n_heads * self.d_head != self.d_model {
            return Err(format!(
                "d_model {} is not n_heads {} x d_head {}",
                self.d_model, self.n_heads, self.d_head
            ));
        }
        if self.n_heads % self.n_kv_heads != 0 {
            return Err(format!(
                "n_heads {} is not a multiple of n_kv_heads {}",
                self.n_heads, self.n_kv_heads
            ));
        }
        if !(self.norm_eps.is_finite() && self.norm_eps >= 0.0) {
            return Err(format!(
                "norm epsilon {} is not a finite non-negative number",
                self.norm_eps
            ));
        }
        Ok(())
    }

    /// Rotary positions: an even number of turning dimensions within the head, positive
    /// bases, usable rescalings.
    fn check_rotary(&self) -> Check {
        if let Some(r) = self.rotary_dim {
            if r == 0 || r % 2 != 0 || r > self.d_head {
                return Err(format!(
                    "rotary_dim {r} must be even, positive and at most d_head {}",
                    self.d_head
                ));
            }
        }
        if self.rope_theta.is_some() && self.rotary_dim.is_none() && self.d_head % 2 != 0 {
            return Err(format!(
                "rotary embeddings need an even d_head, got {}",
                self.d_head
            ));
        }
        if let Some(theta) = self.rope_theta {
            if !(theta.is_finite() && theta > 0.0) {
                return Err(format!("rope_theta {theta} must be positive"));
            }
        }
        if let Some(scaling) = &self.rope_scaling {
            scaling.check()?;
        }
        if let Some(rope) = &self.sliding_rope {
            if !(rope.theta.is_finite() && rope.theta > 0.0) {
                return Err(format!(
                    "sliding layers' rope_theta {} must be positive",
                    rope.theta
                ));
            }
        }
        Ok(())
    }

    /// Sliding-window attention: a positive window, one entry per layer, and a window for
    /// the layers said to slide.
    fn check_windows(&self) -> Check {
        if self.sliding_window == Some(0) {
            return Err("sliding_window must be positive".into());
        }
        if let Some(layers) = &self.sliding_layers {
            if layers.len() != self.n_layers {
                return Err(format!(
                    "sliding_layers has {} entries for {} layers",
                    layers.len(),
                    self.n_layers
                ));
            }
            if self.sliding_window.is_none() && layers.iter().any(|&s| s) {
                return Err("sliding layers without a sliding_window".into());
            }
        }
        Ok(())
    }

    /// Gemma 2's score scale and soft caps: positive when set.
    fn check_scales(&self) -> Check {
        for (name, v) in [
            ("query_pre_attn_scalar", self.query_pre_attn_scalar),
            ("attn_logit_softcapping", self.attn_softcap),
            ("final_logit_softcapping", self.final_softcap),
        ] {
            if let Some(v) = v {
                if !(v.is_finite() && v > 0.0) {
                    return Err(format!("{name} {v} must be positive"));
                }
            }
        }
        Ok(())
    }

    /// The norm and activation kinds the architecture's block is built with: LayerNorm and a
    /// GELU MLP (GPT-2's always tanh-GELU), or (the Llama layout) RMSNorm and a SiLU or
    /// tanh-GELU gate.
    fn check_block_kinds(&self) -> Check {
        let (norm_ok, activation_ok) = match self.arch {
            Architecture::Gpt2 => (
                self.norm == NormKind::LayerNorm,
                self.activation == Activation::GeluTanh,
            ),
            Architecture::GptNeox | Architecture::GptJ => (
                self.norm == NormKind::LayerNorm,
                matches!(self.activation, Activation::GeluTanh | Activation::Gelu),
            ),
            Architecture::Llama => (
                matches!(self.norm, NormKind::RmsNorm | NormKind::RmsNormPlusOne),
                matches!(self.activation, Activation::Silu | Activation::GeluTanh),
            ),
        };
        if !norm_ok {
            return Err(format!(
                "norm {:?} is not supported by the {:?} block",
                self.norm, self.arch
            ));
        }
        if !activation_ok {
            return Err(format!(
                "activation {:?} is not supported by the {:?} block",
                self.activation, self.arch
            ));
        }
        Ok(())
    }

    /// Special tokens inside the vocabulary.
    fn check_special_tokens(&self) -> Check {
        for (name, id) in [
            ("bos_token_id", self.bos_token_id),
            ("eos_token_id", self.eos_token_id),
        ] {
            if let Some(id) = id {
                if id < 0 || id as usize >= self.vocab_size {
                    return Err(format!(
                        "{name} {id} is outside the vocabulary of {}",
                        self.vocab_size
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::random::tiny_config;

    #[test]
    fn block_kinds_must_fit_the_architecture() {
        let source = Path::new("<test>");
        for (arch, norm, activation, refused) in [
            (
                Architecture::Gpt2,
                NormKind::RmsNorm,
                Activation::GeluTanh,
                "norm",
            ),
            (
                Architecture::Gpt2,
                NormKind::LayerNorm,
                Activation::Gelu,
                "activation",
            ),
            (
                Architecture::Llama,
                NormKind::LayerNorm,
                Activation::Silu,
                "norm",
            ),
            (
                Architecture::Llama,
                NormKind::RmsNorm,
                Activation::Gelu,
                "activation",
            ),
        ] {
            let mut c = tiny_config(arch);
            c.validate(source).unwrap();
            (c.norm, c.activation) = (norm, activation);
            let e = c.validate(source).unwrap_err().to_string();
            assert!(e.contains(refused) && e.contains("<test>"), "{e}");
        }
        let mut gemma = tiny_config(Architecture::Llama);
        (gemma.norm, gemma.activation) = (NormKind::RmsNormPlusOne, Activation::GeluTanh);
        gemma.validate(source).unwrap();
    }
}
