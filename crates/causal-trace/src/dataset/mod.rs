//! Causal tracing over a dataset of known facts (ROME's `known_1000.json` format), with
//! resumable per-case results and averaged effects per token category (ROME §1.5).
//!
//! - [`load_known_facts`] reads and checks a facts file, naming the record and field of any
//!   problem.
//! - [`check_known`] applies the "known" rule: the model's greedy next token after the
//!   prompt equals the first token of `" " + attribute`.
//! - [`run_dataset`] traces every known fact (hidden, MLP and attention grids), writing one
//!   JSON file per case under `out_dir/cases/` as it goes (atomically), so an interrupted run
//!   resumes where it stopped; then [`summarize`] averages them and the summary (and, with
//!   feature `viz`, the figures) is written to `out_dir`.
//!
//! # Example
//! ```no_run
//! use causal_trace::dataset::{load_known_facts, run_dataset, DatasetRun};
//! # fn main() -> causal_trace::Result<()> {
//! let m = gpt_core::load_model("models/SmolLM2-135M-Instruct.Q4_1.gguf".as_ref(), Default::default())?;
//! let facts = load_known_facts("known_facts_dev.json".as_ref())?;
//! let options = DatasetRun { limit: Some(20), ..DatasetRun::default() };
//! let report = run_dataset(&m.model, &m.tokenizer, &facts, &options, "out".as_ref(),
//!     &mut gpt_core::progress::watch(|p| eprintln!("{p}")))?;
//! println!("{} of {} known", report.summary.known, report.summary.total);
//! # Ok(()) }
//! ```

mod known;
mod resume;

use std::path::{Path, PathBuf};
use std::time::Instant;

use gpt_core::progress::{self, Progress, ProgressFn};
use gpt_core::{ResumableModel, Tokenizer};
use serde::{Deserialize, Serialize};

pub use crate::case::{case_path, TraceRecord};
use crate::error::{Error, Result};
pub use crate::facts::{load_known_facts, KnownFact};
#[cfg(feature = "viz")]
pub use crate::figures::save_figures;
use crate::noise::{embedding_std, Corruption};
pub use crate::summary::{
    category_rows, mean_ci, summarize, CategorySummary, DatasetSummary, Estimate, Failure,
    KindSummary, SeveredSummary, TokenCategory, Z95,
};
use crate::trace::{GridSpec, Sever, TokenSelection, TraceGrid, TraceKind, TraceSetup, Tracer};
use gpt_core::SubjectPrompt;
pub use known::{check_known, expected_token, KnownCheck};
use resume::{cached_case, Cached};

/// Settings of a dataset run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetRun {
    /// Corrupted runs per prompt (ROME: 10).
    pub samples: usize,
    /// The corruption (default: Gaussian noise of 3σ).
    pub noise: Corruption,
    /// σ for a relative noise level; `None`: ROME's rule, [`embedding_std`] over the
    /// subjects of ALL facts given to [`run_dataset`] (not only the first `limit`).
    pub sigma: Option<f64>,
    /// Window of layers for MLP and attention traces (ROME: 10).
    pub window: usize,
    /// Noise seed; the same for every prompt (as ROME's `RandomState(1)`).
    pub seed: u64,
    /// The grids computed per known fact.
    pub kinds: Vec<TraceKind>,
    /// Only the first `limit` facts.
    pub limit: Option<usize>,
    /// Formats of the figures written next to `summary.json` (feature `viz`): file
    /// extensions, `svg` and/or `png`; empty for none.
    pub figure_formats: Vec<String>,
    /// Model name for figure labels.
    pub model_name: String,
    /// Also trace each fact's last subject token with the MLP and with attention severed
    /// (and ordinarily), for the averaged severed comparison.
    #[serde(default)]
    pub severed: bool,
}

impl Default for DatasetRun {
    fn default() -> Self {
        Self {
            samples: 10,
            noise: Corruption::paper_default(),
            sigma: None,
            window: 10,
            seed: 1,
            kinds: TraceKind::ALL.to_vec(),
            limit: None,
            figure_formats: vec!["svg".into(), "png".into()],
            model_name: "model".into(),
            severed: false,
        }
    }
}

/// The stage [`run_dataset`] reports, before the first case (`done == 0`) and after each:
/// cases finished (computed or reused) of the run, the item `known_id` of the case just
/// finished, and the counts `known` (traced), `not known` (skipped: the model does not know
/// them), `failed`, `reused` (read back from an earlier run) and `redone` (files of an
/// earlier run that could not be reused, see [`DatasetReport::redone`], traced again).
pub const DATASET_STAGE: &str = "known facts";

/// The running counts of a dataset run, reported as [`DATASET_STAGE`] events.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    done: usize,
    known: usize,
    skipped: usize,
    failed: usize,
    reused: usize,
    redone: usize,
}

impl Counts {
    fn event(&self, total: usize) -> Progress {
        Progress::new(DATASET_STAGE, self.done as u64, Some(total as u64), "cases")
            .with_count("known", self.known as u64)
            .with_count("not known", self.skipped as u64)
            .with_count("failed", self.failed as u64)
            .with_count("reused", self.reused as u64)
            .with_count("redone", self.redone as u64)
    }
}

/// A case file of an earlier run that was traced again instead of reused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redone {
    /// Id of the fact.
    pub known_id: u64,
    /// Why the file was not reused.
    pub reason: String,
}

/// What [`run_dataset`] returns.
#[derive(Clone, Debug)]
pub struct DatasetReport {
    /// Every case of the run, in file order.
    pub cases: Vec<TraceRecord>,
    /// The averages (also written to `summary.json`).
    pub summary: DatasetSummary,
    /// The absolute noise scale used (σ resolved).
    pub noise: Corruption,
    /// Cases read back from an earlier run.
    pub reused: usize,
    /// Case files of an earlier run that were not reused, and why (e.g. "score 5 is not a
    /// probability", "traced with other settings"): those cases were traced again.
    pub redone: Vec<Redone>,
    /// Known cases traced in this run (not reused).
    pub traced: usize,
    /// Wall seconds spent tracing those (known check included).
    pub trace_seconds: f64,
    /// Files written besides the case files (summary, figures).
    pub written: Vec<PathBuf>,
}

/// Traces the first `options.limit` of `facts`, writing `out_dir/cases/known_{id}.json` per
/// case, `out_dir/summary.json`, and (feature `viz`) the figures of [`save_figures`] in
/// `options.figure_formats`.
///
/// A case whose file exists, parses and matches the settings (samples, seed, window, noise,
/// kinds, fact) is reused, so an interrupted run resumes. Each case file is written to a
/// temporary file and renamed. Per-case errors do not stop the run: they are recorded in
/// the case (with `error`) and counted as failed; failures of the prompt itself (subject not
/// found after tokenisation, empty prompt) are written to the case file and reused, other
/// failures (model errors) are retried by the next run.
///
/// `progress` hears of [`DATASET_STAGE`] before the first case and after each; stopping it
/// returns [`Error::Cancelled`] with the case files written so far kept (a later run
/// reuses them).
///
/// # Errors
/// Settings out of range (no samples, no kinds, a window of 0 or deeper than the model),
/// σ that cannot be computed, a case directory or summary that cannot be written;
/// [`Error::Cancelled`].
pub fn run_dataset(
    model: &dyn ResumableModel,
    tokenizer: &Tokenizer,
    facts: &[KnownFact],
    options: &DatasetRun,
    out_dir: &Path,
    progress: &mut ProgressFn<'_>,
) -> Result<DatasetReport> {
    let n_layers = model.config().n_layers;
    if options.samples == 0 {
        return Err(Error::InvalidInput("samples must be at least 1".into()));
    }
    if options.kinds.is_empty() {
        return Err(Error::InvalidInput("no trace kinds selected".into()));
    }
    let windowed = options.kinds.iter().any(|&k| k != TraceKind::Hidden);
    if windowed && (options.window == 0 || options.window > n_layers) {
        return Err(Error::InvalidInput(format!(
            "window {} must be between 1 and the model's {n_layers} layers",
            options.window
        )));
    }
    let sigma = match (options.noise.needs_sigma(), options.sigma) {
        (false, _) => None,
        (true, Some(s)) => Some(s),
        (true, None) => {
            if facts.is_empty() {
                None
            } else {
                let subjects: Vec<String> = facts.iter().map(|f| f.subject.clone()).collect();
                Some(embedding_std(model.as_hookable(), tokenizer, &subjects)?)
            }
        }
    };
    let noise = match sigma {
        Some(s) => options.noise.resolve(s),
        None => options.noise.clone(),
    };
    let cases_dir = out_dir.join("cases");
    factscope_common::fsio::ensure_writable_dir(&cases_dir)?;

    let selected = &facts[..options.limit.unwrap_or(facts.len()).min(facts.len())];
    let total = selected.len();
    let mut state = Counts::default();
    progress::report(progress, state.event(total))?;
    let mut cases = Vec::with_capacity(selected.len());
    let (mut traced, mut trace_seconds) = (0usize, 0.0f64);
    let mut redone = Vec::new();
    for fact in selected {
        let path = case_path(out_dir, fact.known_id);
        let cached = cached_case(&path, fact, options, &noise, n_layers);
        let record = match cached {
            Cached::Reuse(c) => {
                state.reused += 1;
                *c
            }
            Cached::Absent | Cached::Redo(_) => {
                if let Cached::Redo(reason) = cached {
                    state.redone += 1;
                    redone.push(Redone {
                        known_id: fact.known_id,
                        reason,
                    });
                }
                let start = Instant::now();
                let (mut record, cache) =
                    trace_case(model, tokenizer, fact, options, &noise, sigma);
                let seconds = start.elapsed().as_secs_f64();
                record.seconds = Some(seconds);
                if record.known && !record.failed() {
                    traced += 1;
                    trace_seconds += seconds;
                }
                if cache {
                    factscope_common::write_json_atomic(&path, &record)?;
                }
                record
            }
        };
        match (record.failed(), record.known) {
            (true, _) => state.failed += 1,
            (false, true) => state.known += 1,
            (false, false) => state.skipped += 1,
        }
        state.done += 1;
        cases.push(record);
        progress::report(progress, state.event(total).with_item(fact.known_id))?;
    }

    let summary = summarize(&cases);
    let summary_path = out_dir.join("summary.json");
    factscope_common::write_json_atomic(&summary_path, &summary)?;
    #[allow(unused_mut)]
    let mut written = vec![summary_path];
    #[cfg(feature = "viz")]
    if !options.figure_formats.is_empty() {
        let formats: Vec<&str> = options.figure_formats.iter().map(String::as_str).collect();
        written.extend(save_figures(
            &summary,
            out_dir,
            &options.model_name,
            &formats,
        )?);
    }
    Ok(DatasetReport {
        cases,
        summary,
        noise,
        reused: state.reused,
        redone,
        traced,
        trace_seconds,
        written,
    })
}

/// Traces one fact. The flag says whether the record may be written (and reused later).
fn trace_case(
    model: &dyn ResumableModel,
    tokenizer: &Tokenizer,
    fact: &KnownFact,
    options: &DatasetRun,
    noise: &Corruption,
    sigma: Option<f64>,
) -> (TraceRecord, bool) {
    let mut record = TraceRecord {
        known_id: fact.known_id,
        known: false,
        predicted: None,
        expected: None,
        fact: None,
        grids: Vec::new(),
        error: None,
        seconds: None,
    };
    let check = match check_known(model.as_hookable(), tokenizer, fact) {
        Ok(c) => c,
        Err(e) => {
            let cache = prompt_error(&e);
            record.fact = Some(fact.clone());
            record.error = Some(e.to_string());
            return (record, cache);
        }
    };
    if !check.known {
        record.predicted = Some(check.predicted.text);
        record.expected = Some(check.expected.text);
        return (record, true);
    }
    record.known = true;
    record.fact = Some(fact.clone());
    match trace_grids(model, tokenizer, fact, options, noise, sigma) {
        Ok(grids) => {
            record.grids = grids;
            (record, true)
        }
        Err(e) => {
            let cache = prompt_error(&e);
            record.error = Some(e.to_string());
            (record, cache)
        }
    }
}

/// Errors that depend on the fact and tokenizer only (so worth remembering).
fn prompt_error(e: &Error) -> bool {
    matches!(
        e,
        Error::Model(
            gpt_core::Error::SubjectNotFound { .. }
                | gpt_core::Error::EmptySubject
                | gpt_core::Error::EmptyPrompt
        )
    )
}

fn trace_grids(
    model: &dyn ResumableModel,
    tokenizer: &Tokenizer,
    fact: &KnownFact,
    options: &DatasetRun,
    noise: &Corruption,
    sigma: Option<f64>,
) -> Result<Vec<TraceGrid>> {
    let prompt = SubjectPrompt::new(tokenizer, &fact.prompt, &fact.subject)?;
    let setup = TraceSetup {
        samples: options.samples,
        corruption: noise.clone(),
        sigma,
        seed: options.seed,
    };
    let tracer = Tracer::new(model, tokenizer, prompt, setup, None)?;
    let mut grids = options
        .kinds
        .iter()
        .map(|&kind| {
            tracer.grid(&GridSpec {
                window: options.window,
                ..GridSpec::new(kind)
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if options.severed {
        for sever in [None, Some(Sever::Mlp), Some(Sever::Attn)] {
            grids.push(tracer.grid(&GridSpec {
                tokens: TokenSelection::SubjectLast,
                sever,
                ..GridSpec::new(TraceKind::Hidden)
            })?);
        }
    }
    Ok(grids)
}
