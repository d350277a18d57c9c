//! Corruption of the subject: noise added to (or replacing) its token embeddings, or other
//! tokens substituted for it. Seeded and drawn on the CPU, so every device sees the same
//! numbers.

use gpt_core::tch::{Device, Kind, Tensor};
use gpt_core::{HookableModel, Tokenizer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How large the noise is.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoiseLevel {
    /// `k × σ`, σ = pooled standard deviation of subject token embeddings (ROME's `s3` is
    /// `k = 3`). Resolved to a [`NoiseLevel::Std`] by [`embedding_std`].
    EmbeddingStdMultiple(f64),
    /// A fixed scale.
    Std(f64),
}

/// How the subject is corrupted in the corrupted rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Corruption {
    /// `e' = e + scale · N(0, 1)` (the paper).
    Gaussian {
        /// Noise scale.
        level: NoiseLevel,
    },
    /// `e' = e + scale · U(−1, 1)`.
    Uniform {
        /// Noise scale.
        level: NoiseLevel,
    },
    /// `e' = scale · N(0, 1)`: the subject embedding is replaced, not perturbed.
    ReplaceGaussian {
        /// Noise scale.
        level: NoiseLevel,
    },
    /// The subject's tokens are replaced by these tokens' embeddings (one list per corrupted
    /// row, cycled; each list as long as the subject).
    Substitute {
        /// Replacement token ids.
        tokens: Vec<Vec<i64>>,
    },
}

impl Corruption {
    /// The paper's default: Gaussian noise of 3σ.
    pub fn paper_default() -> Self {
        Corruption::Gaussian {
            level: NoiseLevel::EmbeddingStdMultiple(3.0),
        }
    }

    /// The same corruption with a relative level resolved against `sigma`.
    pub fn resolve(&self, sigma: f64) -> Self {
        let fix = |l: &NoiseLevel| match *l {
            NoiseLevel::EmbeddingStdMultiple(k) => NoiseLevel::Std(k * sigma),
            NoiseLevel::Std(s) => NoiseLevel::Std(s),
        };
        match self {
            Corruption::Gaussian { level } => Corruption::Gaussian { level: fix(level) },
            Corruption::Uniform { level } => Corruption::Uniform { level: fix(level) },
            Corruption::ReplaceGaussian { level } => {
                Corruption::ReplaceGaussian { level: fix(level) }
            }
            other => other.clone(),
        }
    }

    /// Whether the level is relative to the embedding std.
    pub fn needs_sigma(&self) -> bool {
        matches!(
            self,
            Corruption::Gaussian {
                level: NoiseLevel::EmbeddingStdMultiple(_)
            } | Corruption::Uniform {
                level: NoiseLevel::EmbeddingStdMultiple(_)
            } | Corruption::ReplaceGaussian {
                level: NoiseLevel::EmbeddingStdMultiple(_)
            }
        )
    }

    /// The absolute noise scale, if this corruption has one.
    pub fn scale(&self) -> Option<f64> {
        match self {
            Corruption::Gaussian { level }
            | Corruption::Uniform { level }
            | Corruption::ReplaceGaussian { level } => match level {
                NoiseLevel::Std(s) => Some(*s),
                NoiseLevel::EmbeddingStdMultiple(_) => None,
            },
            Corruption::Substitute { .. } => None,
        }
    }

    /// The corrupted subject embeddings of `rows` rows: `clean: [span, d]` → `[rows, span, d]`.
    ///
    /// The noise comes from a ChaCha8 generator seeded with `seed`, drawn in row-major order
    /// on the CPU (identical on every device).
    ///
    /// # Errors
    /// A relative level that was not resolved, a non-finite or negative scale, substitution
    /// lists of the wrong length, model errors.
    pub fn corrupt(
        &self,
        model: &dyn HookableModel,
        clean: &Tensor,
        rows: usize,
        seed: u64,
    ) -> Result<Tensor> {
        let (span, d) = clean.size2()?;
        let n = rows as i64 * span * d;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let scale = |level: &NoiseLevel| -> Result<f64> {
            match *level {
                NoiseLevel::Std(s) if s.is_finite() && s >= 0.0 => Ok(s),
                NoiseLevel::Std(s) => Err(Error::InvalidInput(format!("noise scale {s} must be finite and >= 0"))),
                NoiseLevel::EmbeddingStdMultiple(_) => Err(Error::InvalidInput(
                    "noise level relative to the embedding std was not resolved (call Corruption::resolve)".into(),
                )),
            }
        };
        let draw = |values: Vec<f32>| -> Result<Tensor> {
            Ok(Tensor::f_from_slice(&values)?
                .f_view([rows as i64, span, d])?
                .f_to_device(clean.device())?
                .f_to_kind(clean.kind())?)
        };
        let base = clean
            .f_unsqueeze(0)?
            .f_expand([rows as i64, span, d], false)?;
        Ok(match self {
            Corruption::Gaussian { level } => {
                let s = scale(level)?;
                let noise: Vec<f32> = (0..n)
                    .map(|_| (s * rng.sample::<f64, _>(StandardNormal)) as f32)
                    .collect();
                base.f_add(&draw(noise)?)?
            }
            Corruption::Uniform { level } => {
                let s = scale(level)?;
                let noise: Vec<f32> = (0..n)
                    .map(|_| (s * rng.gen_range(-1.0..1.0)) as f32)
                    .collect();
                base.f_add(&draw(noise)?)?
            }
            Corruption::ReplaceGaussian { level } => {
                let s = scale(level)?;
                let noise: Vec<f32> = (0..n)
                    .map(|_| (s * rng.sample::<f64, _>(StandardNormal)) as f32)
                    .collect();
                draw(noise)?
            }
            Corruption::Substitute { tokens } => {
                if tokens.is_empty() {
                    return Err(Error::InvalidInput(
                        "token substitution needs at least one replacement".into(),
                    ));
                }
                let mut ids = Vec::with_capacity(rows * span as usize);
                for r in 0..rows {
                    let list = &tokens[r % tokens.len()];
                    if list.len() != span as usize {
                        return Err(Error::InvalidInput(format!(
                            "replacement {} has {} tokens but the subject has {span}",
                            r % tokens.len(),
                            list.len()
                        )));
                    }
                    ids.extend_from_slice(list);
                }
                let ids = Tensor::f_from_slice(&ids)?.f_view([rows as i64, span])?;
                model.embed_tokens(&ids)?
            }
        })
    }
}

/// σ of ROME's noise rule: the standard deviation (unbiased, pooled over all elements) of
/// the token embeddings of every subject tokenised alone.
///
/// # Errors
/// No subjects, an empty subject, tokenizer or model errors.
pub fn embedding_std(
    model: &dyn HookableModel,
    tokenizer: &Tokenizer,
    subjects: &[String],
) -> Result<f64> {
    let mut all = Vec::new();
    for s in subjects {
        // Skip a BOS the tokenizer may add: σ is over the subject's own tokens.
        let ids = tokenizer.encode(s)?.text_ids();
        if ids.is_empty() {
            return Err(gpt_core::Error::EmptySubject.into());
        }
        all.extend(ids);
    }
    if all.is_empty() {
        return Err(Error::InvalidInput(
            "embedding std needs at least one subject".into(),
        ));
    }
    let _guard = gpt_core::tch::no_grad_guard();
    let emb = model.embed_tokens(&Tensor::f_from_slice(&all)?)?;
    let std = emb
        .f_to_kind(Kind::Double)?
        .f_std(true)?
        .f_to_device(Device::Cpu)?
        .f_double_value(&[])?;
    Ok(std)
}

impl std::fmt::Display for NoiseLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoiseLevel::Std(s) => write!(f, "std {s:.4}"),
            NoiseLevel::EmbeddingStdMultiple(k) => {
                write!(f, "std {k} × σ of the subject embeddings")
            }
        }
    }
}

/// What a person reads: "Gaussian noise, std 0.3660".
impl std::fmt::Display for Corruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Corruption::Gaussian { level } => write!(f, "Gaussian noise, {level}"),
            Corruption::Uniform { level } => write!(f, "uniform noise, {level}"),
            Corruption::ReplaceGaussian { level } => {
                write!(f, "subject embeddings replaced by Gaussian noise, {level}")
            }
            Corruption::Substitute { tokens } => {
                write!(
                    f,
                    "subject replaced by {} other token list(s)",
                    tokens.len()
                )
            }
        }
    }
}

impl Corruption {
    /// [`Display`](std::fmt::Display) with the relative level spelled out when σ is known:
    /// "Gaussian noise, std 0.3660 (3 × σ of the subject embeddings, σ = 0.1220)".
    pub fn describe(&self, sigma: Option<f64>) -> String {
        match (self.scale(), sigma) {
            (Some(scale), Some(sigma))
                if sigma > 0.0 && !matches!(self, Corruption::Substitute { .. }) =>
            {
                format!(
                    "{self} ({:.3} × σ of the subject embeddings, σ = {sigma:.4})",
                    scale / sigma
                )
            }
            _ => self.to_string(),
        }
    }
}
