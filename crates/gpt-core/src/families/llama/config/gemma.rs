//! Gemma's details in a Llama-layout `config.json`: what `gemma`, `gemma2` and
//! `gemma3_text` add to the Llama block, with their config classes' defaults.

use super::LlamaHfConfig;
use crate::config::{parse_rope_scaling, ModelConfig, NormKind, Rope, RopeContext, RopeScaling};

/// Which Gemma a config is; each adds to the one before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Gemma {
    /// GeGLU gate, RMSNorm by `1 + w`, embeddings scaled by `√d_model`, `head_dim` 256 and
    /// tied embeddings by default.
    V1,
    /// Sandwich norms, windowed layers (alternating), `query_pre_attn_scalar`, soft caps
    /// (50 and 30 unless set).
    V2,
    /// Gemma 2's block without the caps (unless set), q/k norms, five windowed layers to one
    /// full, and a rotary base and scaling per layer type.
    V3,
}

impl Gemma {
    /// The Gemma of `model_type`, if it is one.
    pub(super) fn of(model_type: &str) -> Option<Self> {
        match model_type {
            "gemma" => Some(Gemma::V1),
            "gemma2" => Some(Gemma::V2),
            "gemma3_text" => Some(Gemma::V3),
            _ => None,
        }
    }
}

impl LlamaHfConfig {
    /// Gemma 3's two rotary embeddings `(global θ, global scaling, sliding rope)`: from
    /// `rope_parameters` nested by layer type (transformers ≥ 5), or from `rope_theta`
    /// (default 1e6), `rope_scaling` (global only) and `rope_local_base_freq` (default 1e4).
    pub(super) fn gemma3_ropes(
        &self,
        ctx: RopeContext,
    ) -> Result<(f64, Option<RopeScaling>, Option<Rope>), String> {
        let nested = |kind: &str| {
            self.rope_parameters
                .as_ref()
                .and_then(|p| p.get(kind))
                .filter(|v| v.is_object())
        };
        let theta_of = |v: Option<&serde_json::Value>| {
            v.and_then(|v| v.get("rope_theta")).and_then(|t| t.as_f64())
        };
        let (full, sliding) = (nested("full_attention"), nested("sliding_attention"));
        let global_theta = theta_of(full).or(self.rope_theta).unwrap_or(1_000_000.0);
        let mut global_scaling = match full {
            Some(v) => parse_rope_scaling("rope_parameters.full_attention", v, ctx)?,
            None => None,
        };
        if let Some(v) = &self.rope_scaling {
            if let Some(scaling) = parse_rope_scaling("rope_scaling", v, ctx)? {
                global_scaling = Some(scaling);
            }
        }
        let local = Rope {
            theta: theta_of(sliding)
                .or(self.rope_local_base_freq)
                .unwrap_or(10_000.0),
            scaling: match sliding {
                Some(v) => parse_rope_scaling("rope_parameters.sliding_attention", v, ctx)?,
                None => None,
            },
        };
        Ok((global_theta, global_scaling, Some(local)))
    }

    /// Which layers use the window (`layer_types`, else Gemma 2's alternation or Gemma 3's
    /// five sliding layers to one full).
    pub(super) fn gemma_sliding_layers(&self, gemma: Gemma) -> Result<Vec<bool>, String> {
        if self.use_bidirectional_attention == Some(true) {
            return Err(
                "use_bidirectional_attention = true is not supported (causal models only)".into(),
            );
        }
        let n = self.num_hidden_layers;
        let pattern = if gemma == Gemma::V3 { 6 } else { 2 };
        match &self.layer_types {
            None => Ok((0..n).map(|i| (i + 1) % pattern != 0).collect()),
            Some(types) if types.len() != n => Err(format!(
                "layer_types has {} entries for {n} layers",
                types.len()
            )),
            Some(types) => types
                .iter()
                .enumerate()
                .map(|(i, t)| match t.as_str() {
                    "sliding_attention" => Ok(true),
                    "full_attention" => Ok(false),
                    other => Err(format!(
                        "layer_types[{i}] `{other}` is not supported (sliding_attention, full_attention)"
                    )),
                })
                .collect(),
        }
    }

    /// `config` (read as Llama's) with `gemma`'s details set on top.
    pub(super) fn gemma_details(&self, gemma: Gemma, config: ModelConfig) -> ModelConfig {
        let gemma2 = gemma >= Gemma::V2;
        let softcap = |v: Option<Option<f64>>, default: f64| match gemma {
            Gemma::V1 => None,
            Gemma::V2 => v.unwrap_or(Some(default)),
            // Gemma 3 has no caps unless its config sets them.
            Gemma::V3 => v.flatten(),
        };
        ModelConfig {
            norm: NormKind::RmsNormPlusOne,
            // transformers: `torch.tensor(hidden_size ** 0.5)`, a float32, cast to the dtype.
            embed_scale: Some(f64::from((self.hidden_size as f64).sqrt() as f32)),
            query_pre_attn_scalar: gemma2.then(|| self.query_pre_attn_scalar.unwrap_or(256.0)),
            attn_softcap: softcap(self.attn_logit_softcapping, 50.0),
            final_softcap: softcap(self.final_logit_softcapping, 30.0),
            post_norms: gemma2,
            qk_norm: gemma == Gemma::V3,
            ..config
        }
    }
}
