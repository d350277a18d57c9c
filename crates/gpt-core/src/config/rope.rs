//! Rotary embeddings' base and rescaling: the validated [`Rope`] / [`RopeScaling`], and the
//! one reader of Hugging Face's `rope_scaling` / `rope_parameters` objects, shared by every
//! family with rotary positions (the Llama layout, GPT-NeoX).

/// A rescaling of the rotary frequencies (`rope_scaling` / `rope_parameters.rope_type`), as
/// transformers' `ROPE_INIT_FUNCTIONS` apply them; the others (`dynamic`, `longrope`, …) are
/// refused when a config is read.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "rope_type", rename_all = "snake_case")]
pub enum RopeScaling {
    /// Position interpolation: every inverse frequency divided by `factor`.
    Linear {
        /// The divisor.
        factor: f64,
    },
    /// Llama 3.1's: wavelengths longer than `original_max_position_embeddings /
    /// low_freq_factor` are divided by `factor`, shorter than `… / high_freq_factor` kept, and
    /// those between interpolated smoothly.
    Llama3 {
        /// The divisor of the low frequencies.
        factor: f64,
        /// Wavelength bound (as a fraction of the original context) of the low frequencies.
        low_freq_factor: f64,
        /// Wavelength bound of the high frequencies.
        high_freq_factor: f64,
        /// The context length the model was trained with.
        original_max_position_embeddings: f64,
    },
    /// YaRN (Peng et al., 2023): frequencies that turn fewer than `beta_slow` times over the
    /// original context are divided by `factor`, those that turn more than `beta_fast` times
    /// kept, a linear ramp over the dimensions between; cos and sin are multiplied by
    /// `attention_factor`.
    Yarn {
        /// The divisor of the interpolated frequencies.
        factor: f64,
        /// The context length the model was trained with.
        original_max_position_embeddings: f64,
        /// Rotations over the original context above which a frequency is kept (default 32).
        beta_fast: f64,
        /// Rotations below which a frequency is divided by `factor` (default 1).
        beta_slow: f64,
        /// Whether the ramp's ends are rounded to whole dimensions (default true).
        truncate: bool,
        /// The multiplier of cos and sin: given, or `0.1·ln(factor) + 1` (with `mscale` and
        /// `mscale_all_dim`, the ratio of two such terms), as transformers derives it.
        attention_factor: f64,
    },
}

impl RopeScaling {
    /// The factor cos and sin are multiplied by (YaRN's attention factor; 1 otherwise).
    pub fn attention_factor(&self) -> f64 {
        match self {
            RopeScaling::Yarn {
                attention_factor, ..
            } => *attention_factor,
            _ => 1.0,
        }
    }

    /// Checks that the factors are usable: positive and finite (and for llama3, the high
    /// frequency bound above the low one).
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        match *self {
            RopeScaling::Linear { factor } if !(factor.is_finite() && factor > 0.0) => {
                Err(format!("rope_scaling factor {factor} must be positive"))
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } if !([
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            ]
            .iter()
            .all(|v| v.is_finite() && *v > 0.0)
                && high_freq_factor > low_freq_factor) =>
            {
                Err(
                    "llama3 rope_scaling needs positive factors with high_freq_factor > low_freq_factor"
                        .into(),
                )
            }
            RopeScaling::Yarn {
                factor,
                original_max_position_embeddings,
                beta_fast,
                beta_slow,
                attention_factor,
                ..
            } if !([
                factor,
                original_max_position_embeddings,
                beta_fast,
                beta_slow,
            ]
            .iter()
            .all(|v| v.is_finite() && *v > 0.0)
                && attention_factor.is_finite()
                && attention_factor > 0.0) =>
            {
                Err(
                    "yarn rope_scaling needs positive factor, original_max_position_embeddings, \
                     beta_fast, beta_slow and attention_factor"
                        .into(),
                )
            }
            _ => Ok(()),
        }
    }
}

/// A rotary embedding's base and rescaling (Gemma 3 gives its sliding layers their own).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Rope {
    /// Rotary base (`rope_theta`).
    pub theta: f64,
    /// Rescaling of the frequencies; `None`: plain `θ^(−2i/d)`.
    pub scaling: Option<RopeScaling>,
}

/// What a rotary scaling reads from outside its own object: the context lengths.
#[derive(Clone, Copy)]
pub(crate) struct RopeContext {
    /// `max_position_embeddings`.
    pub(crate) max_positions: usize,
    /// A top-level `original_max_position_embeddings` (Phi-3 style), which transformers
    /// prefers to the one inside the scaling object.
    pub(crate) original_max_positions: Option<f64>,
}

/// YaRN's attention-factor term `0.1·mscale·ln(scale) + 1` (1 for `scale ≤ 1`).
fn yarn_mscale(scale: f64, mscale: f64) -> f64 {
    if scale <= 1.0 {
        1.0
    } else {
        0.1 * mscale * scale.ln() + 1.0
    }
}

/// The rotary scaling a `rope_scaling` or `rope_parameters` object asks for (`rope_type`, or
/// the older `type`): `None` for `default`; an error naming the option for what is not
/// implemented, so that no config that changes the math is read as if it did not. Missing
/// optional fields take transformers' defaults (`_compute_yarn_parameters`).
pub(crate) fn parse_rope_scaling(
    field: &str,
    value: &serde_json::Value,
    ctx: RopeContext,
) -> std::result::Result<Option<RopeScaling>, String> {
    if value.is_null() {
        return Ok(None);
    }
    let kind = value
        .get("rope_type")
        .or_else(|| value.get("type"))
        .and_then(|t| t.as_str())
        .unwrap_or("default");
    let number = |key: &str| -> std::result::Result<f64, String> {
        value
            .get(key)
            .and_then(|v| v.as_f64())
            .ok_or_else(|| format!("{field}: rope_type `{kind}` needs a number `{key}`"))
    };
    let optional = |key: &str| value.get(key).and_then(|v| v.as_f64());
    // transformers: the top-level value first, then the object's, then the context length.
    let original = || {
        ctx.original_max_positions
            .or_else(|| optional("original_max_position_embeddings"))
            .unwrap_or(ctx.max_positions as f64)
    };
    Ok(match kind {
        "default" => None,
        "linear" => Some(RopeScaling::Linear {
            factor: number("factor")?,
        }),
        "llama3" => Some(RopeScaling::Llama3 {
            factor: number("factor")?,
            low_freq_factor: number("low_freq_factor")?,
            high_freq_factor: number("high_freq_factor")?,
            original_max_position_embeddings: number("original_max_position_embeddings")?,
        }),
        "yarn" => {
            let original = original();
            // A null factor means the ratio of the two context lengths (DeepSeek-V3 style).
            let factor = optional("factor").unwrap_or(ctx.max_positions as f64 / original);
            // `x or default` in transformers: a zero counts as missing.
            let nonzero = |key: &str| optional(key).filter(|v| *v != 0.0);
            let attention_factor = match (
                optional("attention_factor"),
                nonzero("mscale"),
                nonzero("mscale_all_dim"),
            ) {
                (Some(a), _, _) => a,
                (None, Some(m), Some(all)) => yarn_mscale(factor, m) / yarn_mscale(factor, all),
                _ => yarn_mscale(factor, 1.0),
            };
            Some(RopeScaling::Yarn {
                factor,
                original_max_position_embeddings: original,
                beta_fast: nonzero("beta_fast").unwrap_or(32.0),
                beta_slow: nonzero("beta_slow").unwrap_or(1.0),
                truncate: value
                    .get("truncate")
                    .and_then(|v| v.as_bool())
                    .unwrap_or(true),
                attention_factor,
            })
        }
        other => {
            return Err(format!(
                "{field}: rope_type `{other}` is not supported (default, linear, llama3, yarn)"
            ))
        }
    })
}

/// Rotary scaling from either field of a config (`rope_scaling`, `rope_parameters`).
pub(crate) fn rope_scaling_of(
    rope_scaling: Option<&serde_json::Value>,
    rope_parameters: Option<&serde_json::Value>,
    ctx: RopeContext,
) -> std::result::Result<Option<RopeScaling>, String> {
    let mut found = None;
    for (field, value) in [
        ("rope_scaling", rope_scaling),
        ("rope_parameters", rope_parameters),
    ] {
        if let Some(value) = value {
            if let Some(scaling) = parse_rope_scaling(field, value, ctx)? {
                found = Some(scaling);
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests;
