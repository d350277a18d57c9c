//! The GPT-J family: the only place that knows GPT-J configs and checkpoint names.
//!
//! - `config.rs`: `config.json` → [`ModelConfig`](crate::ModelConfig).
//! - `load.rs`: weights → the transformer's parts, by these names:
//!
//! | role (`WeightId`) | checkpoint name (`transformer.h.{l}.…`) |
//! |---|---|
//! | `AttnQ`/`AttnK`/`AttnV` | `attn.q_proj` / `attn.k_proj` / `attn.v_proj` (no bias) |
//! | `AttnOut` | `attn.out_proj` (no bias) |
//! | `MlpIn` | `mlp.fc_in` |
//! | `MlpOut` | `mlp.fc_out` |
//! | `Embed` / `Unembed` | `transformer.wte` / `lm_head` (with bias) |
//!
//! One LayerNorm (`ln_1`) feeds both attention and MLP; the block's `ln2` is the same norm.
//!
//! Not written back by `save_hf` (edits are saved as weight deltas).

mod config;
mod load;

pub(crate) use config::config_from_hf;
pub(crate) use load::{load, BUFFERS};
