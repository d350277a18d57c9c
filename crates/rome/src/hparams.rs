//! ROME's hyperparameters, with the reference presets (`hparams/ROME/*.json`).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which keys the rank-one update uses (reference §2.6, §2.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RomeVariant {
    /// The original implementation: direction from the template-averaged key `k*`, output set
    /// at the bare prompt's key `k` (so `W′k = v*`).
    Original,
    /// r-ROME (Gupta et al. 2024): `k*` everywhere and the template-averaged output as the
    /// current value, so `W′k* = v*` and the update norm stays small.
    RRome,
}

/// ROME's hyperparameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RomeHparams {
    /// The edited layer (its MLP output projection).
    pub layer: usize,
    /// Optimisation steps for v* (forward passes; at most `steps − 1` Adam updates).
    pub v_num_grad_steps: usize,
    /// Adam learning rate.
    pub v_lr: f64,
    /// Weight of `‖δ‖ / ‖v₀‖²` in the loss.
    pub v_weight_decay: f64,
    /// `‖δ‖` is clamped to this multiple of `‖v₀‖`.
    pub clamp_norm_factor: f64,
    /// Weight of the KL term on "{subject} is a".
    pub kl_factor: f64,
    /// Use `C⁻¹k*` as the direction (else `k*` itself, as EasyEdit's default).
    pub mom2_adjustment: bool,
    /// `(length, count)` of the generated context templates (ROME: `[(5, 10), (10, 10)]`).
    pub context_template_length_params: Vec<(usize, usize)>,
    /// Stop the optimisation once the loss is below this (ROME: 0.05).
    pub early_stop_loss: f64,
    /// Which keys the update uses.
    pub variant: RomeVariant,
    /// Seed of the context-template sampling (the reference leaves it unseeded).
    pub template_seed: u64,
}

impl RomeHparams {
    fn base(layer: usize, clamp_norm_factor: f64) -> Self {
        Self {
            layer,
            v_num_grad_steps: 20,
            v_lr: 0.5,
            v_weight_decay: 0.5,
            clamp_norm_factor,
            kl_factor: 0.0625,
            mom2_adjustment: true,
            context_template_length_params: vec![(5, 10), (10, 10)],
            early_stop_loss: 5e-2,
            variant: RomeVariant::Original,
            template_seed: 0,
        }
    }

    /// GPT-2 XL (layer 17, clamp 4).
    pub fn gpt2_xl() -> Self {
        Self::base(17, 4.0)
    }

    /// GPT-2 medium (layer 8, clamp 3).
    pub fn gpt2_medium() -> Self {
        Self::base(8, 3.0)
    }

    /// GPT-2 large (layer 12, clamp 4).
    pub fn gpt2_large() -> Self {
        Self::base(12, 4.0)
    }

    /// GPT-J 6B (layer 5, clamp 4).
    pub fn gpt_j() -> Self {
        Self::base(5, 4.0)
    }

    /// GPT-NeoX-20B (the MEMIT repository's ROME file: layer 15, clamp 4, GPT-2 XL's other
    /// values).
    pub fn neox_20b() -> Self {
        Self::base(15, 4.0)
    }

    /// Llama(-2)-7B as EasyEdit's `hparams/ROME/llama-7b.yaml`: layer 5, 25 steps, weight decay
    /// 1e-3, clamp 4 — and `mom2_adjustment: false` there (u = k/‖k‖, no covariance), kept
    /// here so that results compare with EasyEdit's; set it to `true` for the paper's update.
    pub fn llama_7b() -> Self {
        Self {
            v_num_grad_steps: 25,
            v_weight_decay: 1e-3,
            mom2_adjustment: false,
            ..Self::base(5, 4.0)
        }
    }

    /// SmolLM2-135M (the bundled model): layer 4, where the causal traces of the known facts
    /// put the MLP's indirect effect at the last subject token first (AIE 0.083 at layer 4;
    /// `factscope trace-dataset`), as the paper chose layer 17 of GPT-2 XL; GPT-2 XL's other
    /// values.
    pub fn smollm2() -> Self {
        Self::base(4, 4.0)
    }

    /// Checks the values against a model of `n_layers` layers.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] / a layer out of range.
    pub fn validate(&self, n_layers: usize) -> Result<()> {
        if self.layer >= n_layers {
            return Err(gpt_core::Error::LayerOutOfRange {
                layer: self.layer,
                n_layers,
            }
            .into());
        }
        if self.v_num_grad_steps == 0 {
            return Err(Error::InvalidInput(
                "v_num_grad_steps must be at least 1".into(),
            ));
        }
        let finite = [
            self.v_lr,
            self.v_weight_decay,
            self.clamp_norm_factor,
            self.kl_factor,
        ];
        if finite.iter().any(|v| !v.is_finite() || *v < 0.0) {
            return Err(Error::InvalidInput(
                "learning rate, weight decay, clamp and KL factors must be finite and >= 0".into(),
            ));
        }
        Ok(())
    }
}
