//! Sequential editing: write cases `batch` at a time and keep every edit (no restore), then
//! score all edited cases on the model that holds them all — the protocol under which MEMIT
//! and ROME collapse after a few thousand edits and AlphaEdit does not (reference §8).
//!
//! Every `checkpoint_every` edits, all cases edited so far are scored again (with the
//! [`RetentionProbe`]), giving a curve of ES/PS/NS (zsRE: efficacy, paraphrase, specificity)
//! and retention against the number of edits. The run folder's `sequential/` holds what a
//! resumed run needs: `state.json` ([`SequentialState`]), the summed weight change of every
//! matrix edited so far (`deltas-b{N}.safetensors`, f32, tensor `w{i}` for
//! [`SequentialState::weights`]`[i]`) and the editor's own state (`editor-b{N}/`, e.g.
//! AlphaEdit's `K_pK_pᵀ`), `N` the batches done. A new checkpoint is written beside the old
//! one and `state.json` is replaced atomically before the old one is removed, so a run
//! killed at any point resumes from its last whole batch.
//!
//! After each batch the edited matrices are put in one canonical form, `W = W₀ + ΔW` with
//! `ΔW` exactly as saved, so a resumed run holds bit for bit the weights of one that never
//! stopped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use gpt_core::progress::{Progress, ProgressFn};
use gpt_core::tch::{Device, Kind, Tensor};
use gpt_core::{
    apply_edits, undo_all, EditModel, EditUndo, Editor, Tokenizer, WeightDelta, WeightId,
};
use serde::{Deserialize, Serialize};

use crate::dataset::EditCase;
use crate::error::{Error, Result};
use crate::metrics::{score_cases, CaseMetrics};
use crate::record::{CaseRecord, RunDir};
use crate::retention::{RetentionProbe, RetentionScores};
use crate::runner::{fluency_of, named, record, RunOptions};
use crate::summary::{summarize, Bootstrap, Summary};

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

/// One point of the curve: the mean of each metric over the cases edited so far (at 0
/// edits: the unedited model on all the run's edited cases), with retention.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Edits in the model.
    pub edits: usize,
    /// Means by metric name (`ES`, `PS`, `NS`, `S`, …, rates in `[0, 1]`; `GE` where texts
    /// are generated: after all edits, and at 0 edits with `pre_generation`).
    #[serde(flatten)]
    pub metrics: BTreeMap<String, f64>,
    /// Held-out perplexity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perplexity: Option<f64>,
    /// Known-facts top-1 accuracy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_facts: Option<f64>,
}

impl CurvePoint {
    fn new(edits: usize, metrics: &[&CaseMetrics], retention: Option<RetentionScores>) -> Self {
        let table = summarize(
            metrics,
            Bootstrap {
                resamples: 0,
                seed: 0,
            },
        );
        let retention = retention.unwrap_or_default();
        Self {
            edits,
            metrics: table
                .into_iter()
                .filter(|(_, i)| i.mean.is_finite())
                .map(|(k, i)| (k, i.mean))
                .collect(),
            perplexity: retention.perplexity,
            known_facts: retention.known_facts,
        }
    }
}

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

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |error| Error::Io {
        path: path.to_path_buf(),
        error,
    }
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

    fn write(&self, dir: &Path) -> Result<()> {
        factscope_common::write_json_atomic(&dir.join(STATE_FILE), self)?;
        Ok(())
    }

    /// Adds this run's `sequential`, `curve` and `retention` to its summary.
    pub fn annotate(&self, summary: &mut Summary) {
        summary.sequential = Some(SequentialInfo {
            edits: self.edited.len(),
            batch: self.batch,
            failed: self.failed.iter().map(|f| f.case_ids.len()).sum(),
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

    fn set_point(&mut self, point: CurvePoint) {
        self.curve.retain(|p| p.edits != point.edits);
        self.curve.push(point);
        self.curve.sort_by_key(|p| p.edits);
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

/// The edited matrices in canonical form `W₀ + ΔW`: the undo records of the `ΔW`s applied
/// to the original weights, in `weights` order.
struct Canonical {
    weights: Vec<WeightId>,
    undos: Vec<EditUndo>,
}

impl Canonical {
    /// Applies the deltas of the checkpoint `name` in `dir` to the unedited `model`.
    fn load<M: EditModel>(model: &mut M, dir: &Path, state: &SequentialState) -> Result<Self> {
        let Some(name) = &state.checkpoint else {
            return Ok(Self {
                weights: Vec::new(),
                undos: Vec::new(),
            });
        };
        let path = dir.join(format!("deltas-{name}.safetensors"));
        let bad = |reason: String| Error::Run {
            path: path.clone(),
            reason,
        };
        let tensors: BTreeMap<String, Tensor> = Tensor::read_safetensors(&path)
            .map_err(|e| bad(format!("cannot read the checkpoint's deltas: {e}")))?
            .into_iter()
            .collect();
        let mut undos = Vec::new();
        let result = (|| -> Result<()> {
            for (i, &w) in state.weights.iter().enumerate() {
                let delta = tensors
                    .get(&format!("w{i}"))
                    .ok_or_else(|| bad(format!("no tensor `w{i}` (the change of {w})")))?;
                undos.push(model.apply(&WeightDelta::Dense {
                    target: w,
                    delta: delta.shallow_clone(),
                })?);
            }
            Ok(())
        })();
        if let Err(e) = result {
            undo_all(model, &undos)?;
            return Err(e);
        }
        Ok(Self {
            weights: state.weights.clone(),
            undos,
        })
    }

    /// Folds the undo records of one batch (applied after the canonical ones) into the
    /// canonical form; returns the new `ΔW`s in `weights` order.
    fn absorb<M: EditModel>(&mut self, model: &mut M, batch: Vec<EditUndo>) -> Result<Vec<Tensor>> {
        // The original of each matrix: from the canonical record, else from the first
        // record of this batch that touched it.
        let mut originals: BTreeMap<WeightId, Tensor> = BTreeMap::new();
        for u in self.undos.iter().chain(&batch) {
            originals
                .entry(u.target())
                .or_insert_with(|| u.original().shallow_clone());
            if !self.weights.contains(&u.target()) {
                self.weights.push(u.target());
            }
        }
        let deltas = self
            .weights
            .iter()
            .map(|&w| -> Result<Tensor> {
                let original = originals
                    .get(&w)
                    .ok_or_else(|| Error::InvalidInput(format!("no original weights of {w}")))?;
                Ok(model.weight(w)?.f_sub(original)?)
            })
            .collect::<Result<Vec<_>>>()?;
        undo_all(model, &batch)?;
        undo_all(model, &self.undos)?;
        self.undos.clear();
        for (&w, d) in self.weights.iter().zip(&deltas) {
            self.undos.push(model.apply(&WeightDelta::Dense {
                target: w,
                delta: d.shallow_clone(),
            })?);
        }
        Ok(deltas)
    }
}

/// Writes a new checkpoint beside the old, then the state naming it, then removes the old.
fn checkpoint(
    dir: &Path,
    state: &mut SequentialState,
    deltas: &[Tensor],
    editor: &dyn Editor,
) -> Result<()> {
    let name = format!("b{}", state.batches);
    let deltas_path = dir.join(format!("deltas-{name}.safetensors"));
    factscope_common::write_atomic(&deltas_path, &deltas_file(deltas, &deltas_path)?)?;
    let editor_dir = dir.join(format!("editor-{name}"));
    if editor_dir.exists() {
        std::fs::remove_dir_all(&editor_dir).map_err(io(&editor_dir))?;
    }
    std::fs::create_dir_all(&editor_dir).map_err(io(&editor_dir))?;
    editor.save_state(&editor_dir)?;
    let old = state.checkpoint.replace(name.clone());
    state.write(dir)?;
    if let Some(old) = old.filter(|o| *o != name) {
        let _ = std::fs::remove_file(dir.join(format!("deltas-{old}.safetensors")));
        let _ = std::fs::remove_dir_all(dir.join(format!("editor-{old}")));
    }
    Ok(())
}

/// The safetensors bytes of `deltas` (f32, tensor `w{i}` for delta `i`).
fn deltas_file(deltas: &[Tensor], path: &Path) -> Result<Vec<u8>> {
    let mut owned = Vec::with_capacity(deltas.len());
    for (i, d) in deltas.iter().enumerate() {
        let d = d
            .f_to_device(Device::Cpu)?
            .f_to_kind(Kind::Float)?
            .f_contiguous()?;
        let shape: Vec<usize> = d.size().iter().map(|&n| n as usize).collect();
        let values = Vec::<f32>::try_from(&d.f_flatten(0, -1)?)?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        owned.push((format!("w{i}"), shape, bytes));
    }
    let bad = |reason: String| Error::Run {
        path: path.to_path_buf(),
        reason,
    };
    let views = owned
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| bad(format!("cannot serialise `{name}`: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, None)
        .map_err(|e| bad(format!("cannot serialise the checkpoint's deltas: {e}")))
}

/// The folder of a run folder's sequential state.
pub fn state_dir(run_dir: &Path) -> PathBuf {
    run_dir.join(SEQUENTIAL_DIR)
}

/// Applies the edits of the sequential run in `run_dir` (as of its last checkpoint) to the
/// unedited `model` and returns the undo records: how to get the edited model of a run.
///
/// # Errors
/// No sequential run there, a corrupt checkpoint, or deltas that do not fit the model.
pub fn apply_checkpoint<M: EditModel>(model: &mut M, run_dir: &Path) -> Result<Vec<EditUndo>> {
    let state = SequentialState::read(run_dir)?.ok_or_else(|| Error::Run {
        path: run_dir.to_path_buf(),
        reason: "it holds no sequential run".into(),
    })?;
    Ok(Canonical::load(model, &state_dir(run_dir), &state)?.undos)
}

/// Runs `cases` sequentially: `batch` at a time through `editor`, every edit kept; every
/// `checkpoint_every` edits a curve point; at the end, every edited case scored on the
/// model holding all edits (and generated from, for GE), then on the unedited model, one
/// record per case appended to `out` (cases in `done` are not recorded again). With a
/// `probe`, retention before, at each checkpoint and after.
///
/// Resumes from `out`'s `sequential/` state when there is one (its batch size must be
/// `options.batch`; the cases must be the same, in the same order). On return the model is
/// as it was before the run (the edits are in the run folder: [`apply_checkpoint`]).
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
    let state = match SequentialState::read(out.path())? {
        Some(state) => {
            check_resume(&state, cases, options.batch, &setting.dir)?;
            state
        }
        None => {
            let state = SequentialState {
                batch: options.batch,
                retention_before: setting.measure(model)?,
                ..SequentialState::default()
            };
            state.write(&setting.dir)?;
            state
        }
    };
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

/// What a sequential run reads and does not change.
struct Setting<'a> {
    tokenizer: &'a Tokenizer,
    by_id: BTreeMap<u64, &'a EditCase>,
    done: &'a BTreeSet<u64>,
    options: &'a SequentialOptions,
    probe: Option<&'a RetentionProbe>,
    out: &'a RunDir,
    /// The run folder's `sequential/`.
    dir: PathBuf,
}

impl Setting<'_> {
    /// Retention of `model` as it is now (`None` without a probe).
    fn measure<M: EditModel>(&self, model: &M) -> Result<Option<RetentionScores>> {
        self.probe
            .map(|p| p.measure(model, self.tokenizer, self.options.run.limits))
            .transpose()
    }

    /// The cases of `ids` that are in the run, in order.
    fn cases(&self, ids: &[u64]) -> Vec<&EditCase> {
        ids.iter()
            .filter_map(|id| self.by_id.get(id).copied())
            .collect()
    }
}

/// What a sequential run changes as it goes.
struct Going {
    state: SequentialState,
    canonical: Canonical,
    outcome: SequentialOutcome,
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
    let tokenizer = setting.tokenizer;
    let total = cases.len().div_ceil(options.batch);
    let failed_count =
        |state: &SequentialState| state.failed.iter().map(|f| f.case_ids.len()).sum::<usize>();
    let at = |state: &SequentialState| {
        Progress::new(
            EDITS_STAGE,
            state.batches as u64,
            Some(total as u64),
            "batches",
        )
        .with_count("edits", state.edited.len() as u64)
        .with_count("failed", failed_count(state) as u64)
    };
    if progress(&at(&run.state)).is_break() {
        run.outcome.stopped = true;
        return Ok(());
    }
    for group in cases.chunks(options.batch).skip(run.state.batches) {
        let ids: Vec<u64> = group.iter().map(|c| c.case_id).collect();
        let requests: Vec<_> = group.iter().map(|c| c.request.clone()).collect();
        let started = Instant::now();
        let state = &mut run.state;
        match apply_edits(editor, model, tokenizer, &requests) {
            Ok(undos) => {
                let seconds = started.elapsed().as_secs_f64() / group.len() as f64;
                let deltas = run.canonical.absorb(model, undos)?;
                state.weights = run.canonical.weights.clone();
                let before = state.edited.len();
                state.edited.extend(&ids);
                state
                    .edit_seconds
                    .extend(std::iter::repeat_n(seconds, ids.len()));
                state.batches += 1;
                run.outcome.batches += 1;
                if let Some(k) = options.checkpoint_every {
                    if before / k != state.edited.len() / k {
                        let p = Progress::new(SCORING_STAGE, 0, Some(1), "checkpoint")
                            .with_count("edits", state.edited.len() as u64);
                        let _ = progress(&p);
                        let edited = setting.cases(&state.edited);
                        let scores = score_cases(&*model, tokenizer, &edited, options.run.limits)?;
                        let point = CurvePoint::new(
                            state.edited.len(),
                            &scores.iter().collect::<Vec<_>>(),
                            setting.measure(model)?,
                        );
                        state.set_point(point);
                    }
                }
                checkpoint(&setting.dir, state, &deltas, editor)?;
            }
            Err(e) if options.run.skip_failed => {
                state.failed.push(FailedBatch {
                    case_ids: ids,
                    error: e.to_string(),
                });
                state.batches += 1;
                state.write(&setting.dir)?;
            }
            Err(e) => return Err(named(&ids, e.into())),
        }
        if progress(&at(&run.state)).is_break() {
            run.outcome.stopped = true;
            return Ok(());
        }
    }
    final_scores(setting, model, run, progress)
}

/// Whether the run measures no retention (so `retention_after` stays `None` when finished).
fn probe_free(state: &SequentialState) -> bool {
    state.retention_before.is_none()
}

fn finish(mut outcome: SequentialOutcome, state: &SequentialState) -> SequentialOutcome {
    outcome.edits = state.edited.len();
    outcome.failed = state
        .failed
        .iter()
        .flat_map(|f| f.case_ids.iter().map(|&id| (id, f.error.clone())))
        .collect();
    outcome
}

/// Scores every edited case on the model holding all edits (generating for the cases not yet
/// recorded), then on the unedited model; writes the end points of the curve and the
/// records.
fn final_scores<M: EditModel>(
    setting: &Setting<'_>,
    model: &mut M,
    run: &mut Going,
    progress: &mut ProgressFn<'_>,
) -> Result<()> {
    let (options, tokenizer, done) = (setting.options, setting.tokenizer, setting.done);
    let (state, canonical, outcome) = (&mut run.state, &mut run.canonical, &mut run.outcome);
    let limits = options.run.limits;
    let edited = setting.cases(&state.edited);
    let todo: Vec<usize> = (0..edited.len())
        .filter(|&i| !done.contains(&edited[i].case_id))
        .collect();
    let finished = state.retention_after.is_some() || probe_free(state);
    if todo.is_empty() && finished && state.curve.iter().any(|p| p.edits == edited.len()) {
        // Every record is written and the curve ends here: a finished run.
        return Ok(());
    }
    let _ = progress(
        &Progress::new(SCORING_STAGE, 0, Some(2), "model states")
            .with_count("edits", edited.len() as u64),
    );
    let started = Instant::now();
    // After all edits.
    let mut post = score_cases(&*model, tokenizer, &edited, limits)?;
    let todo_cases: Vec<&EditCase> = todo.iter().map(|&i| edited[i]).collect();
    let mut todo_post: Vec<CaseMetrics> = todo.iter().map(|&i| post[i].clone()).collect();
    let texts = fluency_of(
        &*model,
        tokenizer,
        &todo_cases,
        &options.run,
        &mut todo_post,
    )?;
    for (&i, m) in todo.iter().zip(&todo_post) {
        post[i].ge = m.ge;
    }
    state.retention_after = setting.measure(model)?;
    state.set_point(CurvePoint::new(
        edited.len(),
        &post.iter().collect::<Vec<_>>(),
        state.retention_after,
    ));
    let _ = progress(
        &Progress::new(SCORING_STAGE, 1, Some(2), "model states")
            .with_count("edits", edited.len() as u64),
    );
    // The unedited model (the edits come back only through the checkpoint).
    undo_all(model, &canonical.undos)?;
    canonical.undos.clear();
    let mut pre = score_cases(&*model, tokenizer, &edited, limits)?;
    let mut todo_pre: Vec<CaseMetrics> = todo.iter().map(|&i| pre[i].clone()).collect();
    if options.run.pre_generation {
        fluency_of(&*model, tokenizer, &todo_cases, &options.run, &mut todo_pre)?;
        for (&i, m) in todo.iter().zip(&todo_pre) {
            pre[i].ge = m.ge;
        }
    }
    state.set_point(CurvePoint::new(
        0,
        &pre.iter().collect::<Vec<_>>(),
        state.retention_before,
    ));
    state.write(&setting.dir)?;
    let _ = progress(
        &Progress::new(SCORING_STAGE, 2, Some(2), "model states")
            .with_count("edits", edited.len() as u64),
    );
    let each = started.elapsed().as_secs_f64() / edited.len().max(1) as f64;
    let seconds: BTreeMap<u64, f64> = state
        .edited
        .iter()
        .copied()
        .zip(state.edit_seconds.iter().copied())
        .collect();
    for ((&i, pre), (post, generation)) in todo
        .iter()
        .zip(todo_pre)
        .zip(todo_post.into_iter().zip(texts))
    {
        let case = edited[i];
        let edit = seconds.get(&case.case_id).copied();
        let r: CaseRecord = record(
            case,
            pre,
            Some(post),
            edit,
            each + edit.unwrap_or(0.0),
            generation,
        );
        setting.out.append(&r)?;
        outcome.recorded += 1;
    }
    Ok(())
}
