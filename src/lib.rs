//! # factscope
//!
//! Locate, edit and measure factual associations in GPT-style language models: the umbrella
//! crate re-exporting the workspace's libraries, and the `factscope` command line (feature
//! `cli`, on by default; depend with `default-features = false` for the libraries alone).
//!
//! - [`gpt_core`]: models (GPT-2, Llama family), hook points, interventions, weight edits.
//! - [`causal_trace`]: causal tracing, activation patching, dataset averages.
//! - [`rome`]: editing facts in the weights (ROME, r-ROME, MEMIT, FT-L; update math, key
//!   statistics).
//! - [`counterfact`]: the CounterFact evaluation of edits (metrics, resumable runner, reports).
//! - [`common`]: atomic writes and confidence intervals shared by every crate.
//! - [`gguf`]: the GGUF reader used to load quantised checkpoints.
//! - [`function_vectors`]: function vectors of in-context-learning tasks (head scan, vector,
//!   zero-shot and shuffled-label accuracy).
//! - [`viz`] (feature `viz`): heatmaps, line and bar plots.

pub use causal_trace;
pub use counterfact;
pub use factscope_common as common;
pub use function_vectors;
pub use gguf;
pub use gpt_core;
pub use rome;
#[cfg(feature = "viz")]
pub use viz;
