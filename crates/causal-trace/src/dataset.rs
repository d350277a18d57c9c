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
//! let report = run_dataset(&m.model, &m.tokenizer, &facts, &options, "out".as_ref(), &mut |_| {})?;
//! println!("{} of {} known", report.summary.known, report.summary.total);
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use gpt_core::tch::{Device, Kind};
use gpt_core::{ForwardOptions, HookableModel, LogitsAt, NoHooks, TokenBatch, Tokenizer};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::noise::{embedding_std, Corruption};
use crate::prompt::TracePrompt;
use crate::trace::{
    Answer, GridSpec, Schedule, Sever, TokenSelection, TraceGrid, TraceKind, TraceSetup, Tracer,
};

#[cfg(feature = "viz")]
pub use crate::summary::save_figures;
pub use crate::summary::{
    category_rows, mean_ci, summarize, CategorySummary, Estimate, Failure, KindSummary,
    SeveredSummary, Summary, TokenCategory, Z95,
};

/// One record of a known-facts file (`known_1000.json` format).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownFact {
    /// Id of the record (names its case file).
    pub known_id: u64,
    /// The subject, as it occurs in `prompt`.
    pub subject: String,
    /// The expected answer, without a leading space.
    pub attribute: String,
    /// The relation's template, `{}` for the subject (informative; may be empty).
    #[serde(default)]
    pub template: String,
    /// GPT-2 XL's continuation (informative; may be empty).
    #[serde(default)]
    pub prediction: String,
    /// The prompt traced.
    pub prompt: String,
    /// Wikidata relation id, e.g. `P30` (informative; may be empty).
    #[serde(default)]
    pub relation_id: String,
}

/// Reads a known-facts file: a JSON list of [`KnownFact`] records.
///
/// `known_id`, `subject`, `attribute` and `prompt` are required; `template`, `prediction`
/// and `relation_id` default to empty.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read; [`Error::BadFile`] if it is not JSON or not a
/// list; [`Error::BadRecord`] naming the record's index and the field for a missing field, a
/// value of the wrong type, an empty subject or attribute, a subject that does not occur in
/// the prompt, or a repeated `known_id`.
pub fn load_known_facts(path: &Path) -> Result<Vec<KnownFact>> {
    let text = fs::read_to_string(path).map_err(|error| Error::Io {
        path: path.to_path_buf(),
        error,
    })?;
    let value: Value = serde_json::from_str(&text).map_err(|e| Error::BadFile {
        path: path.to_path_buf(),
        reason: format!("not valid JSON: {e}"),
    })?;
    let Value::Array(records) = value else {
        return Err(Error::BadFile {
            path: path.to_path_buf(),
            reason: format!(
                "expected a JSON list of known-fact records, found {}",
                json_kind(&value)
            ),
        });
    };
    let mut facts = Vec::with_capacity(records.len());
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for (index, record) in records.into_iter().enumerate() {
        let bad = |reason: String| Error::BadRecord {
            path: path.to_path_buf(),
            index,
            reason,
        };
        let fact = parse_fact(&record).map_err(bad)?;
        if let Some(first) = seen.insert(fact.known_id, index) {
            return Err(bad(format!(
                "field `known_id`: {} repeats the id of record {first}",
                fact.known_id
            )));
        }
        facts.push(fact);
    }
    Ok(facts)
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// One record, field by field, so the error names the field.
fn parse_fact(record: &Value) -> std::result::Result<KnownFact, String> {
    let Value::Object(obj) = record else {
        return Err(format!("expected an object, found {}", json_kind(record)));
    };
    fn field<T: DeserializeOwned>(
        obj: &Map<String, Value>,
        name: &str,
        required: bool,
    ) -> std::result::Result<Option<T>, String> {
        match obj.get(name) {
            None if required => Err(format!("missing field `{name}`")),
            None => Ok(None),
            Some(v) => serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|e| format!("field `{name}`: {e}")),
        }
    }
    let req = |name: &str| -> std::result::Result<String, String> {
        Ok(field::<String>(obj, name, true)?.unwrap_or_default())
    };
    let opt = |name: &str| -> std::result::Result<String, String> {
        Ok(field::<String>(obj, name, false)?.unwrap_or_default())
    };
    let known_id = field::<u64>(obj, "known_id", true)?.unwrap_or_default();
    let fact = KnownFact {
        known_id,
        subject: req("subject")?,
        attribute: req("attribute")?,
        template: opt("template")?,
        prediction: opt("prediction")?,
        prompt: req("prompt")?,
        relation_id: opt("relation_id")?,
    };
    if fact.subject.trim().is_empty() {
        return Err("field `subject`: the subject is empty".into());
    }
    if fact.attribute.trim().is_empty() {
        return Err("field `attribute`: the attribute is empty".into());
    }
    if !fact.prompt.contains(&fact.subject) {
        return Err(format!(
            "field `subject`: {:?} does not occur in the prompt {:?}",
            fact.subject, fact.prompt
        ));
    }
    Ok(fact)
}

/// The outcome of the "known" rule for one fact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KnownCheck {
    /// Whether the greedy prediction is the expected token.
    pub known: bool,
    /// The model's greedy next token after the prompt.
    pub predicted: Answer,
    /// The first token of `" " + attribute`.
    pub expected: Answer,
}

/// The first token of `" " + attribute` (a BOS the tokenizer adds is skipped).
///
/// # Errors
/// An attribute that tokenises to nothing; tokenizer errors.
pub fn expected_token(tokenizer: &Tokenizer, attribute: &str) -> Result<Answer> {
    let text = format!(" {attribute}");
    let enc = tokenizer.encode(&text)?;
    let id = enc
        .ids
        .iter()
        .zip(&enc.offsets)
        .find(|(_, (a, b))| b > a)
        .map(|(id, _)| *id)
        .ok_or_else(|| {
            Error::InvalidConfig(format!("the attribute {attribute:?} has no tokens"))
        })?;
    Ok(Answer {
        id,
        text: tokenizer.token_text(id)?,
    })
}

/// Applies the "known" rule (data/README): the model knows `fact` when its greedy next
/// token after `fact.prompt` equals the first token of `" " + fact.attribute`.
///
/// # Errors
/// An empty prompt, a prompt longer than the context, tokenizer or model errors.
pub fn check_known(
    model: &dyn HookableModel,
    tokenizer: &Tokenizer,
    fact: &KnownFact,
) -> Result<KnownCheck> {
    let expected = expected_token(tokenizer, &fact.attribute)?;
    let enc = tokenizer.encode(&fact.prompt)?;
    if enc.ids.is_empty() {
        return Err(gpt_core::Error::EmptyPrompt.into());
    }
    let _guard = gpt_core::tch::no_grad_guard();
    let batch = TokenBatch::single(&enc.ids, model.device())?;
    let logits = model
        .forward_with(
            &batch,
            ForwardOptions {
                kv_cache: None,
                logits: LogitsAt::Last,
            },
            &mut NoHooks,
        )?
        .logits()?;
    let top = logits
        .f_to_kind(Kind::Float)?
        .f_argmax(-1, false)?
        .f_to_device(Device::Cpu)?
        .int64_value(&[0]);
    let predicted = Answer {
        id: top,
        text: tokenizer.token_text(top)?,
    };
    Ok(KnownCheck {
        known: predicted.id == expected.id,
        predicted,
        expected,
    })
}

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

/// The per-case file `cases/known_{known_id}.json`.
///
/// Known: `{known_id, known: true, fact, grids}`; not known: `{known_id, known: false,
/// predicted, expected}`; failed: as either, with `error`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseRecord {
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

impl CaseRecord {
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

/// Where a run stands, reported after each case (and once before the first, `done == 0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Progress {
    /// Cases finished (computed or reused).
    pub done: usize,
    /// Cases in the run.
    pub total: usize,
    /// Cases the model knows (traced).
    pub known: usize,
    /// Cases skipped because the model does not know them.
    pub skipped: usize,
    /// Cases that failed.
    pub failed: usize,
    /// Cases whose result was read back from an earlier run.
    pub reused: usize,
    /// The case just finished.
    pub current_id: Option<u64>,
}

/// What [`run_dataset`] returns.
#[derive(Clone, Debug)]
pub struct DatasetReport {
    /// Every case of the run, in file order.
    pub cases: Vec<CaseRecord>,
    /// The averages (also written to `summary.json`).
    pub summary: Summary,
    /// The absolute noise scale used (σ resolved).
    pub noise: Corruption,
    /// Cases read back from an earlier run.
    pub reused: usize,
    /// Known cases traced in this run (not reused).
    pub traced: usize,
    /// Wall seconds spent tracing those (known check included).
    pub trace_seconds: f64,
    /// Files written besides the case files (summary, figures).
    pub written: Vec<PathBuf>,
}

/// The case file of `known_id` under `out_dir`.
pub fn case_path(out_dir: &Path, known_id: u64) -> PathBuf {
    out_dir.join("cases").join(format!("known_{known_id}.json"))
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
/// # Errors
/// Settings out of range (no samples, no kinds, a window of 0 or deeper than the model),
/// σ that cannot be computed, a case directory or summary that cannot be written.
pub fn run_dataset(
    model: &dyn HookableModel,
    tokenizer: &Tokenizer,
    facts: &[KnownFact],
    options: &DatasetRun,
    out_dir: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<DatasetReport> {
    let n_layers = model.config().n_layers;
    if options.samples == 0 {
        return Err(Error::InvalidConfig("samples must be at least 1".into()));
    }
    if options.kinds.is_empty() {
        return Err(Error::InvalidConfig("no trace kinds selected".into()));
    }
    let windowed = options.kinds.iter().any(|&k| k != TraceKind::Hidden);
    if windowed && (options.window == 0 || options.window > n_layers) {
        return Err(Error::InvalidConfig(format!(
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
                Some(embedding_std(model, tokenizer, &subjects)?)
            }
        }
    };
    let noise = match sigma {
        Some(s) => options.noise.resolve(s),
        None => options.noise.clone(),
    };
    let cases_dir = out_dir.join("cases");
    fs::create_dir_all(&cases_dir).map_err(|error| Error::Write {
        path: cases_dir.clone(),
        error,
    })?;

    let selected = &facts[..options.limit.unwrap_or(facts.len()).min(facts.len())];
    let mut state = Progress {
        total: selected.len(),
        ..Progress::default()
    };
    progress(state);
    let mut cases = Vec::with_capacity(selected.len());
    let (mut traced, mut trace_seconds) = (0usize, 0.0f64);
    for fact in selected {
        let path = case_path(out_dir, fact.known_id);
        let record = match read_case(&path).filter(|c| reusable(c, fact, options, &noise, n_layers))
        {
            Some(c) => {
                state.reused += 1;
                c
            }
            None => {
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
                    write_json_atomic(&path, &record)?;
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
        state.current_id = Some(fact.known_id);
        progress(state);
        cases.push(record);
    }

    let summary = summarize(&cases);
    let summary_path = out_dir.join("summary.json");
    write_json_atomic(&summary_path, &summary)?;
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
        traced,
        trace_seconds,
        written,
    })
}

/// A case file read back, or `None` if absent or unreadable.
fn read_case(path: &Path) -> Option<CaseRecord> {
    let text = fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

fn same_noise(a: &Corruption, b: &Corruption) -> bool {
    if std::mem::discriminant(a) != std::mem::discriminant(b) {
        return false;
    }
    match (a, b) {
        (Corruption::Substitute { tokens: x }, Corruption::Substitute { tokens: y }) => x == y,
        _ => match (a.scale(), b.scale()) {
            (Some(x), Some(y)) => close(x, y),
            _ => a == b,
        },
    }
}

/// Whether a case read back matches this run's fact and settings.
fn reusable(
    c: &CaseRecord,
    fact: &KnownFact,
    options: &DatasetRun,
    noise: &Corruption,
    n_layers: usize,
) -> bool {
    if c.known_id != fact.known_id {
        return false;
    }
    if c.failed() || !c.known {
        // Facts not known and prompt failures depend on the fact and model only.
        return c.fact.as_ref().is_none_or(|f| f == fact);
    }
    if c.fact.as_ref() != Some(fact) {
        return false;
    }
    options.kinds.iter().all(|&kind| {
        c.grid(kind).is_some_and(|g| {
            g.samples == options.samples
                && g.seed == options.seed
                && g.n_layers == n_layers
                && g.schedule == Schedule::Fast
                && (kind == TraceKind::Hidden || g.window == options.window)
                && same_noise(&g.noise, noise)
                && g.scores.len() == g.rows.len()
        })
    }) && (!options.severed
        || [None, Some(Sever::Mlp), Some(Sever::Attn)]
            .iter()
            .all(|&sever| {
                c.severed_grid(sever)
                    .is_some_and(|g| g.samples == options.samples && g.seed == options.seed)
            }))
}

/// Traces one fact. The flag says whether the record may be written (and reused later).
fn trace_case(
    model: &dyn HookableModel,
    tokenizer: &Tokenizer,
    fact: &KnownFact,
    options: &DatasetRun,
    noise: &Corruption,
    sigma: Option<f64>,
) -> (CaseRecord, bool) {
    let mut record = CaseRecord {
        known_id: fact.known_id,
        known: false,
        predicted: None,
        expected: None,
        fact: None,
        grids: Vec::new(),
        error: None,
        seconds: None,
    };
    let check = match check_known(model, tokenizer, fact) {
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
        Error::SubjectNotFound { .. }
            | Error::EmptySubject
            | Error::Model(gpt_core::Error::EmptyPrompt)
    )
}

fn trace_grids(
    model: &dyn HookableModel,
    tokenizer: &Tokenizer,
    fact: &KnownFact,
    options: &DatasetRun,
    noise: &Corruption,
    sigma: Option<f64>,
) -> Result<Vec<TraceGrid>> {
    let prompt = TracePrompt::new(tokenizer, &fact.prompt, &fact.subject)?;
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

/// Writes `value` as pretty JSON to a temporary file beside `path`, then renames it into
/// place, so `path` never holds a partial file.
///
/// # Errors
/// [`Error::Write`] naming the file.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Write {
        path: path.to_path_buf(),
        error: std::io::Error::other(e),
    })?;
    write_atomic(path, &bytes)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let werr = |p: &Path| {
        let p = p.to_path_buf();
        move |error| Error::Write { path: p, error }
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut attempt = 0u32;
    let (tmp, mut file) = loop {
        let tmp = dir.join(format!(".{name}.{}.{attempt}.tmp", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == ErrorKind::AlreadyExists && attempt < 64 => attempt += 1,
            Err(e) => return Err(werr(&tmp)(e)),
        }
    };
    let result = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(werr(&tmp))
        .and_then(|()| {
            drop(file);
            fs::rename(&tmp, path).map_err(werr(path))
        });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
