//! # factscope
//!
//! Locate, edit and measure factual associations in GPT-style language models: the umbrella
//! crate re-exporting the workspace's libraries.
//!
//! - [`gpt_core`]: models (GPT-2, Llama family), hook points, interventions, weight edits.
//! - [`gguf`]: the GGUF reader used to load quantised checkpoints.

pub use gguf;
pub use gpt_core;
