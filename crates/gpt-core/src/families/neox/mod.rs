//! The GPT-NeoX / Pythia family: the only place that knows GPT-NeoX configs and checkpoint
//! names.
//!
//! - `config.rs`: `config.json` → [`ModelConfig`](crate::ModelConfig).
//! - `load.rs`: weights → the transformer's parts, by these names:
//!
//! | role (`WeightId`) | checkpoint name (`gpt_neox.layers.{l}.…`) |
//! |---|---|
//! | `AttnQ`/`AttnK`/`AttnV` | `attention.query_key_value` (fused, per head) |
//! | `AttnOut` | `attention.dense` |
//! | `MlpIn` | `mlp.dense_h_to_4h` |
//! | `MlpOut` | `mlp.dense_4h_to_h` |
//! | `Embed` / `Unembed` | `gpt_neox.embed_in` / `embed_out` |
//!
//! The fused `query_key_value` projection is laid out per head: its `3·d_model` output rows
//! are `[q₀ k₀ v₀ q₁ k₁ v₁ …]`, each `d_head` long (transformers views it as
//! `[.., heads, 3·d_head]` and chunks the last axis), so `load.rs` splits it head by head.
//!
//! Not written back by `save_hf` (edits are saved as weight deltas).

mod config;
mod load;

pub(crate) use config::config_from_hf;
pub(crate) use load::{load, BUFFERS};
