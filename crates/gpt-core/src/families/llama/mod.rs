//! The Llama layout (Llama, SmolLM2, Qwen2, Mistral, Gemma 1–3): the only place that knows
//! their configs and checkpoint names.
//!
//! - `config.rs`: `config.json` → [`ModelConfig`](crate::ModelConfig), the family's fixed
//!   facts; `config/gemma.rs`: what each Gemma adds.
//! - `gguf.rs`: GGUF metadata (`general.architecture` llama, qwen2, mistral) → config.
//! - `names.rs`: tensor names (Hugging Face; GGUF) as a `Part` × `Layout` table.
//! - `load.rs`: weights → the transformer's parts (GGUF q/k rows un-permuted).
//! - `save.rs`: the inverse, for [`Transformer::save_hf`](crate::Transformer::save_hf).

mod config;
mod gguf;
mod load;
mod names;
mod save;
#[cfg(test)]
mod tests;

pub(crate) use config::{config_from_hf, MODEL_TYPES};
pub(crate) use gguf::{config_from_gguf, gguf_metadata, llama_cpp_arch};
pub(crate) use load::{load, BUFFERS};
pub(crate) use names::Layout;
pub(crate) use save::{gguf_tensors, hf_config, hf_tensors};
