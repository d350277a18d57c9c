//! Capability retention: what is left of a model's general abilities after edits, measured on
//! data unrelated to them — the perplexity of a fixed held-out text and the top-1 accuracy on
//! known facts whose subjects were not edited (the two checks sequential-editing papers
//! report beside ES/PS/NS, e.g. AlphaEdit's general-capability tests).
//!
//! The text must be kept out of the key statistics `C` the editor protects: a text inside `C`
//! is exactly what null-space methods preserve by construction, so it would flatter them.

use std::collections::BTreeSet;

use gpt_core::{ResumableModel, Tokenizer};
use serde::{Deserialize, Serialize};

use crate::dataset::{CaseKind, EditCase};
use crate::error::{Error, Result};
use crate::metrics::score_cases;
use crate::probability::{score_items, BatchLimits, ScoreItem};

/// The retention scores of one model state. `None` where the probe has no such data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RetentionScores {
    /// `exp(mean NLL)` over every predicted token of the held-out text's windows.
    pub perplexity: Option<f64>,
    /// The fraction of known-facts records whose true object's first token is the greedy
    /// next token (`[0, 1]`).
    pub known_facts: Option<f64>,
}

/// A fixed retention test: token windows of a held-out text and known-facts records.
#[derive(Clone, Debug, Default)]
pub struct RetentionProbe {
    windows: Vec<ScoreItem>,
    known: Vec<EditCase>,
}

impl RetentionProbe {
    /// A probe of `documents` (each tokenised alone, cut into windows of `window` tokens —
    /// at most the model's context — and taken in order until `max_tokens` tokens are in)
    /// and the known-facts records `known` (cases of [`CaseKind::KnownFact`]).
    ///
    /// Within a window, token `i` is predicted from tokens `0..i`; the first token of each
    /// window is context only.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a window under 2 tokens, or a `known` record that is not a
    /// known fact (named by case id); tokenizer errors.
    pub fn new(
        tokenizer: &Tokenizer,
        documents: &[String],
        max_tokens: usize,
        window: usize,
        known: Vec<EditCase>,
    ) -> Result<Self> {
        if window < 2 {
            return Err(Error::InvalidInput(format!(
                "retention windows of {window} token(s): need at least 2"
            )));
        }
        if let Some(c) = known.iter().find(|c| c.kind != CaseKind::KnownFact) {
            return Err(Error::InvalidInput(format!(
                "retention known facts: case {} is not a known-facts record",
                c.case_id
            )));
        }
        let mut windows = Vec::new();
        let mut taken = 0usize;
        'documents: for d in documents {
            let ids = tokenizer.encode(d)?.ids;
            for w in ids.chunks(window) {
                if taken >= max_tokens {
                    break 'documents;
                }
                let w = &w[..w.len().min(max_tokens - taken)];
                if w.len() < 2 {
                    continue;
                }
                taken += w.len();
                windows.push(ScoreItem {
                    prompt: w[..1].to_vec(),
                    target: w[1..].to_vec(),
                });
            }
        }
        Ok(Self { windows, known })
    }

    /// The same probe without the known facts about `subjects` (the edited ones: a fact
    /// about an edited subject is not unrelated to the edits).
    pub fn without_subjects(mut self, subjects: &BTreeSet<String>) -> Self {
        self.known
            .retain(|c| !subjects.contains(c.request.subject.trim()));
        self
    }

    /// Predicted tokens of the text (the perplexity's denominator).
    pub fn text_tokens(&self) -> usize {
        self.windows.iter().map(|w| w.target.len()).sum()
    }

    /// Known-facts records in the probe.
    pub fn known_facts(&self) -> usize {
        self.known.len()
    }

    /// The scores of `model` as it is now.
    ///
    /// # Errors
    /// Model errors; a window longer than the model's context.
    pub fn measure<M: ResumableModel + ?Sized>(
        &self,
        model: &M,
        tokenizer: &Tokenizer,
        limits: BatchLimits,
    ) -> Result<RetentionScores> {
        let n_ctx = model.config().n_ctx;
        if let Some(w) = self.windows.iter().find(|w| 1 + w.target.len() > n_ctx) {
            return Err(Error::InvalidInput(format!(
                "retention windows of {} tokens do not fit the model's context of {n_ctx}",
                1 + w.target.len()
            )));
        }
        let perplexity = if self.windows.is_empty() {
            None
        } else {
            let scores = score_items(model, &self.windows, limits)?;
            let (nll, tokens) =
                scores
                    .iter()
                    .zip(&self.windows)
                    .fold((0.0, 0usize), |(s, t), (score, w)| {
                        (
                            s + score.mean_nll * w.target.len() as f64,
                            t + w.target.len(),
                        )
                    });
            Some((nll / tokens as f64).exp())
        };
        let known_facts = if self.known.is_empty() {
            None
        } else {
            let cases: Vec<&EditCase> = self.known.iter().collect();
            let metrics = score_cases(model, tokenizer, &cases, limits)?;
            let hits: Vec<f64> = metrics.iter().filter_map(|m| m.known).collect();
            (!hits.is_empty()).then(|| hits.iter().sum::<f64>() / hits.len() as f64)
        };
        Ok(RetentionScores {
            perplexity,
            known_facts,
        })
    }
}
