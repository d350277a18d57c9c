//! # counterfact
//!
//! Whether an edit worked: CounterFact's evaluation (Meng et al. 2022, §4 of the reference)
//! for any [`gpt_core::Editor`] on any [`gpt_core::EditModel`].
//!
//! - [`dataset`]: cases from the original CounterFact records, the compact schema of
//!   EasyEdit's `counterfact` files, known-facts records and zsRE records (MEND's
//!   evaluation split); bad records named by index and field, optionally skipped with a
//!   count; [`dataset::shard`] for job arrays.
//! - [`probability`]: teacher-forced mean per-token NLL and top-1 token hits of many
//!   (prompt, target) pairs in length-sorted batches, with a one-pass-per-pair oracle.
//! - [`metrics`]: per case ES / EM, PS / PM, NS / NM (and K for known facts; efficacy,
//!   paraphrase and specificity token accuracies for zsRE);
//!   [`fluency`]: GE, the weighted bi/tri-gram entropy of seeded generations.
//! - [`runner`]: edit, score, restore bit-exactly, one record per case appended and synced
//!   ([`record`]), resumable and sharded.
//! - [`sequential`]: edits kept batch after batch (no restore), a curve of the metrics
//!   against the number of edits, resumable from checkpoints of the summed weight changes;
//!   [`retention`]: held-out perplexity and known-facts accuracy before and after.
//! - [`summary`]: means with seeded bootstrap intervals, S, per-relation tables, Markdown;
//!   [`report`]: a self-contained HTML page.

//!
//! # Example
//! ```no_run
//! use counterfact::{load_cases, read_run, run_cases, summarize_run, Bootstrap, RunDir, RunOptions, RunSettings};
//! use gpt_core::{load_model, LoadOptions};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut m = load_model("models/SmolLM2-135M-Instruct.Q4_1.gguf".as_ref(), LoadOptions::default())?;
//! let cases = load_cases("../shared/data/counterfact_dev.json".as_ref(), false)?.cases;
//! let c = rome::KeyStats::load("c_layer4.safetensors".as_ref())?.c()?;
//! let mut editor = rome::RomeEditor::new(rome::RomeHparams::smollm2(), Some(c));
//! let settings = RunSettings {
//!     method: "rome".into(), model: "SmolLM2".into(), model_fingerprint: "…".into(),
//!     cases: "counterfact_dev.json".into(), cases_fingerprint: String::new(), limit: Some(10),
//!     batch: 1, generation: true,
//!     seed: 1, hparams: serde_json::Value::Null, sequential: None,
//! };
//! let (dir, done) = RunDir::open("runs/rome".as_ref(), &settings, (0, 1), true)?;
//! run_cases(&mut m.model, &m.tokenizer, Some(&mut editor), &cases[..10], &done,
//!           &RunOptions::default(), &dir, &mut gpt_core::progress::ignore)?;
//! let (settings, records) = read_run(dir.path())?;
//! let summary = summarize_run(&settings, &records, Bootstrap::default());
//! println!("ES {:?}", summary.metrics.get("ES"));
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod dataset;
mod error;
pub mod fluency;
pub mod metrics;
pub mod probability;
pub mod record;
pub mod report;
pub mod retention;
pub mod runner;
pub mod sequential;
pub mod summary;

pub use dataset::{load_cases, CaseKind, EditCase, LoadedCases, Probe};
pub use error::{Error, Result};
pub use metrics::{score_cases, CaseMetrics, CaseNll, CaseTop1, PairNll, TokenHits};
pub use probability::{score_items, score_items_naive, BatchLimits, ItemScore, ScoreItem};
pub use record::{read_run, read_settings, CaseRecord, RunDir, RunSettings, SequentialSettings};
pub use retention::{RetentionProbe, RetentionScores};
pub use runner::{run_cases, RunOptions, RunOutcome, CASES_STAGE};
pub use sequential::{
    apply_checkpoint, run_sequential, CurvePoint, SequentialOptions, SequentialOutcome,
    SequentialState,
};
pub use summary::{
    markdown_table, summarize, summarize_dir, summarize_run, Bootstrap, Interval, Summary,
};
