//! # gpt-core
//!
//! GPT-style language models over libtorch with typed hook points, per-call interventions
//! and exactly undoable weight edits: the foundation of factscope.
//!
//! - [`load_model`] reads a Hugging Face folder (`config.json` + safetensors) or a `.gguf`
//!   file into a [`Transformer`] plus its [`Tokenizer`]. Families ([`Architecture`]): GPT-2
//!   (`gpt2`, also from GGUF); the Llama layout — Llama / SmolLM2, Qwen2, Mistral (also from
//!   GGUF) and Gemma 1–3 (`gemma`, `gemma2`, `gemma3_text`); GPT-NeoX / Pythia (`gpt_neox`);
//!   GPT-J (`gptj`). Each family's config format, tensor names, loader and writer live in one
//!   folder of `src/families/`; [`ModelConfig`] is what they share.
//! - [`HookableModel`] runs forward passes; an [`Intervention`] sees every [`HookPoint`]
//!   (TransformerLens names) and may continue, replace the activation, or stop.
//! - [`EditableModel`] reads weights as `[out, in]` by [`WeightId`], applies a
//!   [`WeightDelta`] and undoes it bit-exactly.
//! - [`Editor`] turns [`RewriteRequest`]s into weight changes (ROME, MEMIT, … implement it in
//!   their crates); [`apply_edits`] writes them, one at a time or jointly.
//! - [`ResumableModel`] resumes a pass from a given residual stream; [`lanes`] builds the
//!   fast schedules on it: one [`BaseRun`], then many edited runs ([`Lane`]s) each resumed
//!   from its first affected block, batched block by block ([`run_lanes`]).
//! - [`intervention::SiteWrite`] sets, adds or patches values at chosen `(row, position[,
//!   head])` [`intervention::Sites`]: the one building block of tracing, patching and editing.
//! - [`SubjectPrompt`] locates a subject's tokens in a prompt; [`target_tokens`] gives the
//!   tokens of an answer after a prompt.
//! - [`Progress`] is what every long operation of the workspace reports to its one callback
//!   shape, [`ProgressFn`], which may also stop it ([`Cancelled`]); see [`progress`].
//! - [`top_k`] lists the most probable next tokens after a prompt.
//! - [`generate()`] decodes greedily or with seeded top-k sampling using a [`KvCache`].
//! - Feature `testing`: the `gpt_core::testing` module exports proptest strategies (configs,
//!   models, prompts, well- and ill-conditioned matrices) so that downstream crates can property-test against
//!   random models.
//!
//! # Example
//! ```no_run
//! use gpt_core::{load_model, HookableModel, HookPoint, LoadOptions, TokenBatch};
//! # fn main() -> gpt_core::Result<()> {
//! let loaded = load_model("models/SmolLM2-135M-Instruct.Q4_1.gguf".as_ref(), LoadOptions::default())?;
//! let enc = loaded.tokenizer.encode("The Eiffel Tower is located in the city of")?;
//! let batch = TokenBatch::single(&enc.ids, loaded.model.device())?;
//! let (logits, cache) = loaded.model.run_with_cache(&batch, &|p| p == HookPoint::mlp_post(5))?;
//! # Ok(()) }
//! ```
//!
//! # Running it well
//! - **libtorch at run time**: `tch` links libtorch dynamically. A binary of yours finds it
//!   through `LD_LIBRARY_PATH`, or through an rpath from a one-line `build.rs` calling
//!   `factscope_build::libtorch_rpath()` (crate `factscope-build`; the README's "Library"
//!   section has the `Cargo.toml` lines).
//! - **Threads**: libtorch's OpenMP threads busy-wait by default; beside other busy
//!   processes that makes small operations many times slower (a ROME edit ~10×). A library
//!   cannot change it once libtorch has started: set `OMP_WAIT_POLICY=PASSIVE` in your
//!   program's environment (the `factscope` binary does so by re-executing itself).
//! - **bf16 on CPUs**: oneDNN keeps a cache of compiled kernels per operand shape, which a
//!   causal trace fills with hundreds of shapes; `ONEDNN_PRIMITIVE_CACHE_CAPACITY=16` keeps
//!   a bf16 trace's memory near f32's at no cost in time (the `factscope` binary sets it).

#![warn(missing_docs)]

pub mod cache;
pub mod config;
pub mod edit;
pub mod editor;
mod error;
mod families;
pub mod fingerprint;
pub mod generate;
pub mod hook;
pub mod input;
pub mod intervention;
pub mod lanes;
mod llama_cpp_pre;
mod load;
pub mod model;
pub mod predict;
pub mod progress;
pub mod prompt;
pub mod random;
mod save;
mod save_gguf;
mod schedule;
mod sentencepiece;
pub mod steering;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tokenizer;
mod transformer;
mod weights;

pub use cache::{ActivationCache, CacheHook, Patch};
pub use config::{Activation, Architecture, ModelConfig, NormKind, Rope, RopeScaling};
pub use edit::{EditUndo, WeightDelta, WeightId};
pub use editor::{
    apply_edits, check_joint_requests, undo_all, EditModel, Editor, Method, RewriteRequest,
};
pub use error::{check_finite, Error, Result};
pub use fingerprint::model_fingerprint;
pub use generate::{generate, generate_batch, generate_seeded, GenerateOptions, Sampling};
pub use hook::{BlockSite, HookPoint, Layer};
pub use input::{Padding, TokenBatch};
pub use intervention::{HookAction, Intervention, NoHooks, SiteWrite, Sites, WriteOp};
pub use lanes::{run_lanes, BaseRun, Lane, LaneLogits, LaneWrite};
pub use load::{is_gguf_path, load_hf_tokenizer, load_model, LoadOptions, LoadedModel};
pub use model::{
    AsHookable, BlocksInput, BlocksOutcome, EditableModel, ForwardOptions, HookableModel, KvCache,
    LogitsAt, Outcome, ResumableModel,
};
pub use predict::{top_k, top_k_with, Candidate, Prediction};
pub use progress::{Cancelled, Progress, ProgressFn};
pub use prompt::{first_target_token, target_tokens, SubjectPrompt, TokenText};
pub use random::RandomInit;
pub use save_gguf::{save_gguf, EditedTensorType, ExportedGguf, GgufExport, SavedTensor};
pub use schedule::Schedule;
pub use tokenizer::{Encoding, Tokenizer};
pub use transformer::Transformer;

/// The GGUF tensor types ([`GgufExport::ty`]), from the `gguf` crate.
pub use gguf::GgmlType;
/// Re-export of the tensor library, so dependents use the same version.
pub use tch;
