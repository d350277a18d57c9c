//! # causal-trace
//!
//! Locate the hidden states that carry a fact (Meng et al. 2022, §2): run a prompt clean,
//! corrupt the subject's embeddings in N further runs, and measure how much restoring one
//! clean state (a block output, or a window of MLP or attention outputs) brings back the
//! clean answer.
//!
//! - [`SubjectPrompt`] tokenises a prompt and finds the subject by characters.
//! - [`Tracer`] runs the clean and corrupted passes once; [`Tracer::grid`] computes a
//!   [`TraceGrid`] per [`GridSpec`] (kind, window, rows, severed module, schedule).
//! - [`Schedule::Fast`] reuses everything a restoration cannot change; [`Schedule::Naive`]
//!   is one full pass per cell, as the reference code, and serves as the oracle.
//! - [`Metric`] decides what is measured (default: probability of the clean answer).
//! - [`noise`]: Gaussian / uniform / replacement noise, token substitution, ROME's σ rule.
//!
//! # Example
//! ```no_run
//! use causal_trace::{noise::{embedding_std, Corruption}, GridSpec, TraceKind, SubjectPrompt, TraceSetup, Tracer};
//! # fn main() -> causal_trace::Result<()> {
//! let m = gpt_core::load_model("models/SmolLM2-135M-Instruct.Q4_1.gguf".as_ref(), Default::default())?;
//! let prompt = SubjectPrompt::new(&m.tokenizer, "The Eiffel Tower is located in the city of", "The Eiffel Tower")?;
//! let sigma = embedding_std(&m.model, &m.tokenizer, &["The Eiffel Tower".to_string()])?;
//! let setup = TraceSetup { samples: 10, corruption: Corruption::paper_default(), sigma: Some(sigma), seed: 1 };
//! let tracer = Tracer::new(&m.model, &m.tokenizer, prompt, setup, None)?;
//! let grid = tracer.grid(&GridSpec::new(TraceKind::Hidden))?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod case;
pub mod dataset;
mod error;
pub mod facts;
mod fast;
#[cfg(feature = "viz")]
mod figures;
pub mod flops;
mod hooks;
pub mod metric;
mod naive;
pub mod noise;
pub mod patching;
pub mod summary;
mod trace;

pub use error::{Error, Result};
#[cfg(feature = "viz")]
pub use figures::save_figures;
pub use metric::{FnMetric, LogitDiff, Metric, TokenProb};
pub use patching::{last_subject_sites, patch_run, PatchResult, PatchSite};
// The prompt and answer types are gpt-core's (shared with editing and evaluation).
pub use gpt_core::{SubjectPrompt, TokenText};
pub use trace::{
    GridSpec, Schedule, Sever, TokenSelection, TraceGrid, TraceKind, TraceSetup, Tracer,
};
