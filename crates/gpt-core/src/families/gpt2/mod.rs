//! The GPT-2 family (gpt2, gpt2-medium/large/xl, distilgpt2): the only place that knows GPT-2
//! configs and checkpoint names.
//!
//! - `config.rs`: `config.json` (`n_layer`, `n_embd`, …) and GGUF metadata →
//!   [`ModelConfig`](crate::ModelConfig); the family's fixed facts.
//! - `names.rs`: tensor names (Hugging Face, with or without `transformer.`; GGUF).
//! - `load.rs`: weights → the transformer's parts (`Conv1D` transposed, `c_attn` split).
//! - `save.rs`: the inverse, for [`Transformer::save_hf`](crate::Transformer::save_hf).

mod config;
mod load;
mod names;
mod save;

pub(crate) use config::{config_from_gguf, config_from_hf, gguf_metadata};
pub(crate) use load::{load, load_gguf, BUFFERS};
pub(crate) use save::{gguf_tensors, hf_config, hf_tensors};
