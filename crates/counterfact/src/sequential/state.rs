//! What a sequential run keeps in `sequential/state.json`, and what it adds to its summary.

use std::path::Path;

use gpt_core::WeightId;
use serde::{Deserialize, Serialize};

use super::{io, CurvePoint, SEQUENTIAL_DIR, STATE_FILE};
use crate::error::{Error, Result};
use crate::retention::RetentionScores;
use crate::summary::Summary;

/// A batch that failed (with `skip_failed`): its cases are not in the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailedBatch {
    /// The batch's cases.
    pub case_ids: Vec<u64>,
    /// Why.
    pub error: String,
}

/// What `sequential/state.json` holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SequentialState {
    /// Cases per edit call.
    pub batch: usize,
    /// Batches done (written or failed).
    pub batches: usize,
    /// The cases written so far, in order.
    pub edited: Vec<u64>,
    /// Seconds each edited case's edit took (its share of its batch's).
    pub edit_seconds: Vec<f64>,
    /// Batches that failed.
    pub failed: Vec<FailedBatch>,
    /// The matrices edited so far (the order of the checkpoint's tensors).
    pub weights: Vec<WeightId>,
    /// The checkpoint's name (`b{batches}`), `None` before the first batch.
    pub checkpoint: Option<String>,
    /// The curve so far, by edits.
    pub curve: Vec<CurvePoint>,
    /// Retention of the unedited model.
    pub retention_before: Option<RetentionScores>,
    /// Retention after all edits (set by the final scores).
    pub retention_after: Option<RetentionScores>,
}

/// What `summary.json` says of a sequential run: `"sequential": {"edits", "batch"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SequentialInfo {
    /// Edits in the model at the end.
    pub edits: usize,
    /// Cases per edit call.
    pub batch: usize,
    /// Cases of failed batches (not in the model).
    #[serde(default)]
    pub failed: usize,
}

/// A value before and after the edits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BeforeAfter {
    /// The unedited model.
    pub before: Option<f64>,
    /// After all edits.
    pub after: Option<f64>,
}

/// What `summary.json` says of retention: `"retention": {"perplexity": {"before", "after"},
/// "known_facts": {"before", "after"}}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Retention {
    /// Held-out perplexity.
    pub perplexity: BeforeAfter,
    /// Known-facts top-1 accuracy.
    pub known_facts: BeforeAfter,
}

impl SequentialState {
    /// The state in run folder `dir`, if it holds a sequential run.
    ///
    /// # Errors
    /// [`Error::Run`] for an unreadable or corrupt state file.
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(SEQUENTIAL_DIR).join(STATE_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::Run {
                path,
                reason: format!("not a sequential run's state: {e}"),
            })
    }

    /// Replaces `state.json` in the state folder `dir` atomically.
    pub(super) fn write(&self, dir: &Path) -> Result<()> {
        factscope_common::write_json_atomic(&dir.join(STATE_FILE), self)?;
        Ok(())
    }

    /// Adds this run's `sequential`, `curve` and `retention` to its summary.
    pub fn annotate(&self, summary: &mut Summary) {
        summary.sequential = Some(SequentialInfo {
            edits: self.edited.len(),
            batch: self.batch,
            failed: self.failed_cases(),
        });
        summary.curve = self.curve.clone();
        let before = self.retention_before.unwrap_or_default();
        let after = self.retention_after.unwrap_or_default();
        if self.retention_before.is_some() || self.retention_after.is_some() {
            summary.retention = Some(Retention {
                perplexity: BeforeAfter {
                    before: before.perplexity,
                    after: after.perplexity,
                },
                known_facts: BeforeAfter {
                    before: before.known_facts,
                    after: after.known_facts,
                },
            });
        }
    }

    /// Cases of the batches that failed.
    pub(super) fn failed_cases(&self) -> usize {
        self.failed.iter().map(|f| f.case_ids.len()).sum()
    }

    /// Puts `point` on the curve, in place of one at the same number of edits.
    pub(super) fn set_point(&mut self, point: CurvePoint) {
        self.curve.retain(|p| p.edits != point.edits);
        self.curve.push(point);
        self.curve.sort_by_key(|p| p.edits);
    }

    /// Whether the run measures no retention (so `retention_after` stays `None` when
    /// finished).
    pub(super) fn probe_free(&self) -> bool {
        self.retention_before.is_none()
    }
}
