//! # function-vectors
//!
//! Function vectors (Todd et al., "Function Vectors in Large Language Models", ICLR 2024)
//! over gpt-core models, built only on gpt-core's public traits and interventions
//! ([`gpt_core::ResumableModel`], [`gpt_core::EditableModel`] for `W_O`,
//! [`gpt_core::SiteWrite`]).
//!
//! The recipe (every constant from the reference; see [`extract::ExtractSettings`]):
//! 1. [`Task`] files and the reference's [`Splits`]; [`PromptBuilder`] makes clean,
//!    shuffled-label and zero-shot prompts with the template `Q: x\nA: y\n\n…Q: x_q\nA:`.
//! 2. [`mean_head_activations`]: `z̄[l, h]`, each query head's output before the output
//!    projection (`blocks.{l}.attn.hook_z`) at the last token, averaged over clean prompts.
//! 3. [`head_scan`]: the causal indirect effect of each head: patch `z̄[l, h]` into a
//!    shuffled-label prompt, `CIE = p(y0 | patched) − p(y0)`; averaged over prompts (AIE),
//!    and over tasks ([`mean_grid`]) for the universal head set; [`top_heads`].
//! 4. [`function_vector`]: `v = Σ_{(l,h)∈A} W_O^(l)[:, h] z̄[l, h]` in residual space.
//! 5. [`evaluate_items`] / [`summarize`]: top-1 accuracy of the first answer token,
//!    zero-shot and shuffled-label, with and without `v` added at
//!    `blocks.{l}.hook_resid_post` (default layer [`default_layer`], `⌊L/3⌋`), and a layer
//!    sweep; [`arithmetic`]: `v_AD + v_BC − v_AC` on composed list tasks.
//!
//! Speed: an edit at the last position changes only the last position from its block up,
//! so the head scan and the layer sweep run one base pass per prompt and then only the
//! last position through the upper blocks, attending to cached keys/values, with every
//! head (or layer) of a prompt batched ([`resume`]). [`Schedule::Naive`] (one full pass
//! per head) is kept as the oracle.
//!
//! # Example
//! ```no_run
//! use function_vectors::{extract, function_vector, top_heads, ExtractSettings, PromptBuilder, Task};
//! use gpt_core::{load_model, HookableModel, LoadOptions};
//! # fn main() -> function_vectors::Result<()> {
//! let m = load_model("models/SmolLM2-135M-Instruct.Q4_1.gguf".as_ref(), LoadOptions::default())?;
//! let task = Task::load("../shared/data/function_vectors/antonym.json".as_ref())?;
//! let builder = PromptBuilder::new(&m.tokenizer, m.model.config(), &task)?;
//! let run = extract(&m.model, &builder, &ExtractSettings::default(), &mut gpt_core::progress::ignore)?;
//! let heads = top_heads(&run.scan.aie(), 10);
//! let v = function_vector(&m.model, &run.mean, &heads)?; // [d_model]
//! # let _ = v; Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod activations;
pub mod arithmetic;
mod error;
pub mod eval;
pub mod extract;
#[cfg(feature = "viz")]
pub mod figures;
pub mod file;
pub mod prompt;
pub mod resume;
pub mod rng;
pub mod scan;
pub mod task;
pub mod vector;

pub use activations::{mean_head_activations, MeanActivations, MEAN_ACTIVATIONS_STAGE};
pub use error::{Error, Result};
pub use eval::{
    evaluate_items, summarize, Accuracy, AccuracyTable, EvalOptions, ItemResult, LayerSweep,
    TaskAccuracy, EVALUATION_STAGE,
};
pub use extract::{extract, ExtractSettings, Extraction, VALID_ICL_STAGE};
pub use file::{model_fingerprint, FvMeta};
pub use prompt::{Bos, IclPrompt, PromptBuilder, Variant};
pub use scan::{
    head_scan, mean_grid, scan_prompt, top_heads, HeadScan, HeadScore, Schedule, HEAD_SCAN_STAGE,
};
pub use task::{Pair, Splits, Task};
pub use vector::{
    add_at_layer_naive, add_at_layers, default_layer, function_vector, steering_vector,
};
