//! What a trace measures: a score per row from the final next-token distribution.

use gpt_core::tch::{Kind, Tensor};

use crate::error::Result;

/// A score of the next-token distribution at the last position, per row.
///
/// Causal tracing reports the mean over the corrupted rows. Implement it to trace anything
/// the final distribution expresses (a sentiment proxy, a logit difference, …).
pub trait Metric {
    /// `logits: [rows, vocab]` (f32) → scores `[rows]`.
    ///
    /// # Errors
    /// libtorch errors, or the metric's own.
    fn score(&self, logits: &Tensor) -> Result<Tensor>;

    /// A short name for reports (e.g. `p(" Paris")`).
    fn name(&self) -> String;
}

/// Probability of one token: `softmax(logits)[token]` (the paper's measure, with the clean
/// prediction as the token).
#[derive(Clone, Debug)]
pub struct TokenProb {
    /// Token id.
    pub token: i64,
    /// Its text, for the name.
    pub text: String,
}

impl Metric for TokenProb {
    fn score(&self, logits: &Tensor) -> Result<Tensor> {
        Ok(logits.f_softmax(-1, Kind::Float)?.f_select(1, self.token)?)
    }
    fn name(&self) -> String {
        format!("p({:?})", self.text)
    }
}

/// Logit difference `logits[a] − logits[b]`.
#[derive(Clone, Debug)]
pub struct LogitDiff {
    /// Token counted positively.
    pub a: i64,
    /// Token counted negatively.
    pub b: i64,
}

impl Metric for LogitDiff {
    fn score(&self, logits: &Tensor) -> Result<Tensor> {
        let l = logits.f_to_kind(Kind::Float)?;
        Ok(l.f_select(1, self.a)?.f_sub(&l.f_select(1, self.b)?)?)
    }
    fn name(&self) -> String {
        format!("logit[{}] - logit[{}]", self.a, self.b)
    }
}

/// A metric from a closure over `[rows, vocab]` logits.
pub struct FnMetric<F> {
    name: String,
    f: F,
}

impl<F: Fn(&Tensor) -> Result<Tensor>> FnMetric<F> {
    /// Wraps `f` under `name`.
    pub fn new(name: impl Into<String>, f: F) -> Self {
        Self {
            name: name.into(),
            f,
        }
    }
}

impl<F: Fn(&Tensor) -> Result<Tensor>> Metric for FnMetric<F> {
    fn score(&self, logits: &Tensor) -> Result<Tensor> {
        (self.f)(logits)
    }
    fn name(&self) -> String {
        self.name.clone()
    }
}
