//! Sequential editing: write cases `batch` at a time and keep every edit (no restore), then
//! score all edited cases on the model that holds them all — the protocol under which MEMIT
//! and ROME collapse after a few thousand edits and AlphaEdit does not (reference §8).
//!
//! Every `checkpoint_every` edits, all cases edited so far are scored again (with the
//! [`RetentionProbe`](crate::RetentionProbe)), giving a curve of ES/PS/NS (zsRE: efficacy,
//! paraphrase, specificity) and retention against the number of edits. The run folder's
//! `sequential/` holds what a resumed run needs: `state.json` ([`SequentialState`]), the
//! summed weight change of every matrix edited so far (`deltas-b{N}.safetensors`, f32,
//! tensor `w{i}` for [`SequentialState::weights`]`[i]`) and the editor's own state
//! (`editor-b{N}/`, e.g. AlphaEdit's `K_pK_pᵀ`), `N` the batches done. A new checkpoint is
//! written beside the old one and `state.json` is replaced atomically before the old one is
//! removed, so a run killed at any point resumes from its last whole batch.
//!
//! After each batch the edited matrices are put in one canonical form, `W = W₀ + ΔW` with
//! `ΔW` exactly as saved, so a resumed run holds bit for bit the weights of one that never
//! stopped.
//!
//! The module's files: `state` (what `state.json` and the summary say), `curve` (the
//! points), `checkpoint` (the canonical form and its files), `run` (the batch loop) and
//! `scoring` (the final scores and records).

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::runner::RunOptions;

mod checkpoint;
mod curve;
mod run;
mod scoring;
mod state;

pub use checkpoint::apply_checkpoint;
pub use curve::CurvePoint;
pub use run::run_sequential;
pub use state::{BeforeAfter, FailedBatch, Retention, SequentialInfo, SequentialState};

/// The folder of a run folder that holds a sequential run's state.
pub const SEQUENTIAL_DIR: &str = "sequential";

/// The state file in [`SEQUENTIAL_DIR`].
pub const STATE_FILE: &str = "state.json";

/// The stage [`run_sequential`] reports while editing: batches done of all, with the count
/// `edits` (cases written so far) and `failed`.
pub const EDITS_STAGE: &str = "sequential edits";

/// The stage [`run_sequential`] reports while it scores (a checkpoint or the final scores).
pub const SCORING_STAGE: &str = "scoring";

/// How a sequential run goes.
#[derive(Clone, Debug)]
pub struct SequentialOptions {
    /// Cases written per edit call (jointly for MEMIT, AlphaEdit, EMMET, FT-L; one after
    /// another for ROME).
    pub batch: usize,
    /// Score everything edited so far every this many edits (at the end of the batch that
    /// reaches a multiple); `None`: only before and after.
    pub checkpoint_every: Option<usize>,
    /// Scoring, generation and failure handling of the final scores (its `batch` is not
    /// used).
    pub run: RunOptions,
}

impl Default for SequentialOptions {
    fn default() -> Self {
        Self {
            batch: 1,
            checkpoint_every: None,
            run: RunOptions::default(),
        }
    }
}

/// What a call to [`run_sequential`] did.
#[derive(Clone, Debug, Default)]
pub struct SequentialOutcome {
    /// Batches written in this call.
    pub batches: usize,
    /// Edits in the model at the end (this call's and earlier calls').
    pub edits: usize,
    /// Case records written in this call.
    pub recorded: usize,
    /// Cases of batches that failed (this call's and earlier calls'): id and error.
    pub failed: Vec<(u64, String)>,
    /// Whether the caller stopped the run.
    pub stopped: bool,
}

/// The folder of a run folder's sequential state.
pub fn state_dir(run_dir: &Path) -> PathBuf {
    run_dir.join(SEQUENTIAL_DIR)
}

/// An I/O error naming `path`.
fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |error| Error::Io {
        path: path.to_path_buf(),
        error,
    }
}
