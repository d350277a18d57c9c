//! The per-case record of a dataset run (`cases/known_{id}.json`) and its checks.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::facts::KnownFact;
use crate::trace::{Sever, TraceGrid, TraceKind};

/// The per-case file `cases/known_{known_id}.json`.
///
/// Known: `{known_id, known: true, fact, grids}`; not known: `{known_id, known: false,
/// predicted, expected}`; failed: as either, with `error`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceRecord {
    /// Id of the fact.
    pub known_id: u64,
    /// Whether the model knows the fact.
    pub known: bool,
    /// The greedy prediction (recorded for facts not known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted: Option<String>,
    /// The expected first token (recorded for facts not known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// The fact (recorded for known facts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fact: Option<KnownFact>,
    /// One grid per kind (known facts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grids: Vec<TraceGrid>,
    /// Why the case failed (it then counts as failed, not as known or unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Wall seconds the case took (known check, clean and corrupted runs, grids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
}

impl TraceRecord {
    /// The last-subject-token hidden grid restored ordinarily (`None`) or with a module
    /// severed, if the run traced it.
    pub fn severed_grid(&self, sever: Option<Sever>) -> Option<&TraceGrid> {
        self.grids.iter().find(|g| {
            g.kind == TraceKind::Hidden
                && g.sever == sever
                && g.rows.len() == 1
                && g.tokens.len() > 1
        })
    }

    /// Whether the case failed.
    pub fn failed(&self) -> bool {
        self.error.is_some()
    }

    /// The (first) grid of `kind` without severing, if any: the full grid when the run traced
    /// that kind, since those come before the severed comparison's rows.
    pub fn grid(&self, kind: TraceKind) -> Option<&TraceGrid> {
        self.grids
            .iter()
            .find(|g| g.kind == kind && g.sever.is_none())
    }
}

/// The case file of `known_id` under `out_dir`.
pub fn case_path(out_dir: &Path, known_id: u64) -> PathBuf {
    out_dir.join("cases").join(format!("known_{known_id}.json"))
}
