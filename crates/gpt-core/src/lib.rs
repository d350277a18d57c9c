//! # gpt-core
//!
//! GPT-style language models over libtorch with typed hook points, per-call interventions
//! and exactly undoable weight edits: the foundation of factscope.
//!
//! - [`load_model`] reads a Hugging Face folder (safetensors, GPT-2 or Llama family) or a
//!   `.gguf` file into a [`Transformer`] plus its [`Tokenizer`].
//! - [`HookableModel`] runs forward passes; an [`Intervention`] sees every [`HookPoint`]
//!   (TransformerLens names) and may continue, replace the activation, or stop.
//! - [`EditableModel`] reads weights as `[out, in]` by [`WeightId`], applies a
//!   [`WeightDelta`] and undoes it bit-exactly.
//! - [`generate()`] decodes greedily or with seeded top-k sampling using a [`KvCache`].
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

#![warn(missing_docs)]

pub mod cache;
pub mod config;
pub mod edit;
mod error;
pub mod generate;
mod gpt2;
pub mod hook;
pub mod input;
pub mod intervention;
mod llama;
mod load;
pub mod model;
pub mod random;
pub mod tokenizer;
mod transformer;
mod weights;

pub use cache::{ActivationCache, CacheHook, Patch, PatchSites};
pub use config::{Architecture, ModelConfig};
pub use edit::{EditUndo, WeightDelta, WeightId};
pub use error::{Error, Result};
pub use generate::{generate, GenerateOptions, Sampling};
pub use hook::{BlockSite, HookPoint, Layer};
pub use input::{Padding, TokenBatch};
pub use intervention::{HookAction, Intervention, NoHooks};
pub use load::{load_hf_tokenizer, load_model, LoadOptions, LoadedModel};
pub use model::{
    BlocksInput, BlocksOutcome, EditableModel, ForwardOptions, HookableModel, KvCache, LogitsAt,
    Outcome,
};
pub use random::RandomInit;
pub use tokenizer::{Encoding, Tokenizer};
pub use transformer::Transformer;

/// Re-export of the tensor library, so dependents use the same version.
pub use tch;
