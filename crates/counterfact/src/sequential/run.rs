//! The batch loop of a sequential run: edit, fold into the canonical form, score when a
//! curve point is due, checkpoint, report.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use gpt_core::progress::{Progress, ProgressFn};
use gpt_core::tch::Tensor;
use gpt_core::{apply_edits, undo_all, EditModel, EditUndo, Editor, Tokenizer};

use super::checkpoint::{checkpoint, Canonical};
use super::scoring::final_scores;
use super::{
    io, state_dir, CurvePoint, FailedBatch, SequentialOptions, SequentialOutcome, SequentialState,
    EDITS_STAGE, SCORING_STAGE, STATE_FILE,
};
use crate::dataset::EditCase;
use crate::error::{Error, Result};
use crate::metrics::score_cases;
use crate::record::RunDir;
use crate::retention::{RetentionProbe, RetentionScores};
use crate::runner::named;

/// Runs `cases` sequentially: `batch` at a time through `editor`, every edit kept; every
/// `checkpoint_every` edits a curve point; at the end, every edited case scored on the
/// model holding all edits (and generated from, for GE), then on the unedited model, one
/// record per case appended to `out` (cases in `done` are not recorded again). With a
/// `probe`, retention before, at each checkpoint and after.
///
/// Resumes from `out`'s `sequential/` state when there is one (its batch size must be
/// `options.batch`; the cases must be the same, in the same order). On return the model is
/// as it was before the run (the edits are in the run folder:
/// [`apply_checkpoint`](super::apply_checkpoint)).
///
/// `progress` hears of [`EDITS_STAGE`] before the first batch and after each, and of
/// [`SCORING_STAGE`]; stopping it after a batch ends the run early (the checkpoint is
/// written) with [`SequentialOutcome::stopped`] set, the model restored.
///
/// # Errors
/// Cases without an edit; a state of another batch size or other cases; editing errors
/// (named with the batch's case ids; without `skip_failed`, the run stops at its last
/// checkpoint); model and write errors.
#[allow(clippy::too_many_arguments)]
pub fn run_sequential<'e, M: EditModel>(
    model: &mut M,
    tokenizer: &Tokenizer,
    editor: &mut (dyn Editor + 'e),
    cases: &[EditCase],
    done: &BTreeSet<u64>,
    options: &SequentialOptions,
    probe: Option<&RetentionProbe>,
    out: &RunDir,
    progress: &mut ProgressFn<'_>,
) -> Result<SequentialOutcome> {
    check_options(cases, options)?;
    let dir = state_dir(out.path());
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let setting = Setting {
        tokenizer,
        by_id: cases.iter().map(|c| (c.case_id, c)).collect(),
        done,
        options,
        probe,
        out,
        dir,
    };
    let state = setting.open_state(model, cases)?;
    let canonical = Canonical::load(model, &setting.dir, &state)?;
    let mut run = Going {
        state,
        canonical,
        outcome: SequentialOutcome::default(),
    };
    if let Some(name) = &run.state.checkpoint {
        editor.load_state(&setting.dir.join(format!("editor-{name}")))?;
    }
    let result = edit_and_score(&setting, cases, model, editor, &mut run, progress);
    // Whatever happened, the model comes back as it was.
    undo_all(model, &run.canonical.undos)?;
    result?;
    Ok(finish(run.outcome, &run.state))
}

/// Refuses a batch or checkpoint interval of 0 and cases that cannot be edited.
fn check_options(cases: &[EditCase], options: &SequentialOptions) -> Result<()> {
    if options.batch == 0 {
        return Err(Error::InvalidInput("the batch must be at least 1".into()));
    }
    if options.checkpoint_every == Some(0) {
        return Err(Error::InvalidInput(
            "checkpoints every 0 edits: give at least 1".into(),
        ));
    }
    if let Some(c) = cases.iter().find(|c| !c.has_edit()) {
        return Err(Error::InvalidInput(format!(
            "case {} has no new target (a known-facts record): it cannot be edited",
            c.case_id
        )));
    }
    Ok(())
}

/// What a sequential run reads and does not change.
pub(super) struct Setting<'a> {
    pub(super) tokenizer: &'a Tokenizer,
    by_id: BTreeMap<u64, &'a EditCase>,
    pub(super) done: &'a BTreeSet<u64>,
    pub(super) options: &'a SequentialOptions,
    probe: Option<&'a RetentionProbe>,
    pub(super) out: &'a RunDir,
    /// The run folder's `sequential/`.
    pub(super) dir: PathBuf,
}

impl Setting<'_> {
    /// Retention of `model` as it is now (`None` without a probe).
    pub(super) fn measure<M: EditModel>(&self, model: &M) -> Result<Option<RetentionScores>> {
        self.probe
            .map(|p| p.measure(model, self.tokenizer, self.options.run.limits))
            .transpose()
    }

    /// The cases of `ids` that are in the run, in order.
    pub(super) fn cases(&self, ids: &[u64]) -> Vec<&EditCase> {
        ids.iter()
            .filter_map(|id| self.by_id.get(id).copied())
            .collect()
    }

    /// The state to go on from: the run folder's (checked against `cases`), else a new one
    /// with the unedited model's retention, written at once.
    fn open_state<M: EditModel>(&self, model: &M, cases: &[EditCase]) -> Result<SequentialState> {
        if let Some(state) = SequentialState::read(self.out.path())? {
            check_resume(&state, cases, self.options.batch, &self.dir)?;
            return Ok(state);
        }
        let state = SequentialState {
            batch: self.options.batch,
            retention_before: self.measure(model)?,
            ..SequentialState::default()
        };
        state.write(&self.dir)?;
        Ok(state)
    }

    /// Scores every case edited so far and puts the point on the curve, when the batch that
    /// took the edits from `before` to `state.edited.len()` crossed a multiple of
    /// `checkpoint_every`.
    fn score_if_due<M: EditModel>(
        &self,
        model: &M,
        state: &mut SequentialState,
        before: usize,
        progress: &mut ProgressFn<'_>,
    ) -> Result<()> {
        let Some(k) = self.options.checkpoint_every else {
            return Ok(());
        };
        if before / k == state.edited.len() / k {
            return Ok(());
        }
        let p = Progress::new(SCORING_STAGE, 0, Some(1), "checkpoint")
            .with_count("edits", state.edited.len() as u64);
        let _ = progress(&p);
        let edited = self.cases(&state.edited);
        let scores = score_cases(model, self.tokenizer, &edited, self.options.run.limits)?;
        let point = CurvePoint::new(
            state.edited.len(),
            &scores.iter().collect::<Vec<_>>(),
            self.measure(model)?,
        );
        state.set_point(point);
        Ok(())
    }
}

/// What a sequential run changes as it goes.
pub(super) struct Going {
    pub(super) state: SequentialState,
    pub(super) canonical: Canonical,
    pub(super) outcome: SequentialOutcome,
}

impl Going {
    /// Folds a written batch (`undos`, cases `ids`, `seconds` each) into the canonical form
    /// and the state; returns the new `ΔW`s and the edits before the batch.
    fn absorb<M: EditModel>(
        &mut self,
        model: &mut M,
        undos: Vec<EditUndo>,
        ids: &[u64],
        seconds: f64,
    ) -> Result<(Vec<Tensor>, usize)> {
        let deltas = self.canonical.absorb(model, undos)?;
        let state = &mut self.state;
        state.weights = self.canonical.weights.clone();
        let before = state.edited.len();
        state.edited.extend(ids);
        state
            .edit_seconds
            .extend(std::iter::repeat_n(seconds, ids.len()));
        state.batches += 1;
        self.outcome.batches += 1;
        Ok((deltas, before))
    }
}

fn check_resume(
    state: &SequentialState,
    cases: &[EditCase],
    batch: usize,
    dir: &Path,
) -> Result<()> {
    let refuse = |reason: String| Error::Run {
        path: dir.join(STATE_FILE),
        reason,
    };
    if state.batch != batch {
        return Err(refuse(format!(
            "the run edits {} case(s) at a time, not {batch}",
            state.batch
        )));
    }
    let first: BTreeSet<u64> = cases
        .iter()
        .take(state.batches * batch)
        .map(|c| c.case_id)
        .collect();
    let written: BTreeSet<u64> = state
        .edited
        .iter()
        .chain(state.failed.iter().flat_map(|f| &f.case_ids))
        .copied()
        .collect();
    if written != first {
        return Err(refuse(format!(
            "its {} batch(es) were not the first {} case(s) of these cases",
            state.batches,
            first.len()
        )));
    }
    Ok(())
}

/// The [`EDITS_STAGE`] progress of `state`, of `total` batches.
fn edits_progress(state: &SequentialState, total: usize) -> Progress {
    Progress::new(
        EDITS_STAGE,
        state.batches as u64,
        Some(total as u64),
        "batches",
    )
    .with_count("edits", state.edited.len() as u64)
    .with_count("failed", state.failed_cases() as u64)
}

/// Writes the batches not yet written (checkpoint after each, curve points as due), then
/// the final scores.
fn edit_and_score<M: EditModel>(
    setting: &Setting<'_>,
    cases: &[EditCase],
    model: &mut M,
    editor: &mut dyn Editor,
    run: &mut Going,
    progress: &mut ProgressFn<'_>,
) -> Result<()> {
    let options = setting.options;
    let total = cases.len().div_ceil(options.batch);
    if progress(&edits_progress(&run.state, total)).is_break() {
        run.outcome.stopped = true;
        return Ok(());
    }
    for group in cases.chunks(options.batch).skip(run.state.batches) {
        let ids: Vec<u64> = group.iter().map(|c| c.case_id).collect();
        let requests: Vec<_> = group.iter().map(|c| c.request.clone()).collect();
        let started = Instant::now();
        // The run stops between batches (checkpoints stay whole), so a batch's edit is not
        // watched.
        let ignore = &mut gpt_core::progress::ignore;
        match apply_edits(editor, model, setting.tokenizer, &requests, ignore) {
            Ok(undos) => {
                let seconds = started.elapsed().as_secs_f64() / group.len() as f64;
                let (deltas, before) = run.absorb(model, undos, &ids, seconds)?;
                setting.score_if_due(&*model, &mut run.state, before, progress)?;
                checkpoint(&setting.dir, &mut run.state, &deltas, editor)?;
            }
            Err(e) if options.run.skip_failed => {
                run.state.failed.push(FailedBatch {
                    case_ids: ids,
                    error: e.to_string(),
                });
                run.state.batches += 1;
                run.state.write(&setting.dir)?;
            }
            Err(e) => return Err(named(&ids, e.into())),
        }
        if progress(&edits_progress(&run.state, total)).is_break() {
            run.outcome.stopped = true;
            return Ok(());
        }
    }
    final_scores(setting, model, run, progress)
}

/// The outcome with the run's totals: edits in the model and the failed cases.
fn finish(mut outcome: SequentialOutcome, state: &SequentialState) -> SequentialOutcome {
    outcome.edits = state.edited.len();
    outcome.failed = state
        .failed
        .iter()
        .flat_map(|f| f.case_ids.iter().map(|&id| (id, f.error.clone())))
        .collect();
    outcome
}
