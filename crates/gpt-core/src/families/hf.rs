//! Hugging Face wire details shared by the families' `config.json` readers and writers.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use crate::config::RopeScaling;
use crate::error::{Error, Result};

/// A family's `config.json` struct from `text`; `source` names it in errors.
pub(crate) fn parse<T: DeserializeOwned>(text: &str, source: &Path) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Config {
        path: source.to_path_buf(),
        reason: e.to_string(),
    })
}

/// One token id or a list of them (HF allows both for `eos_token_id`).
#[derive(Deserialize, Clone, Debug)]
#[serde(untagged)]
pub(crate) enum TokenIds {
    One(i64),
    Many(Vec<i64>),
}

impl TokenIds {
    /// The id, or the first of the list.
    pub(crate) fn first(&self) -> Option<i64> {
        match self {
            TokenIds::One(id) => Some(*id),
            TokenIds::Many(ids) => ids.first().copied(),
        }
    }
}

/// transformers' default LayerNorm epsilon.
pub(crate) fn default_ln_eps() -> f64 {
    1e-5
}

/// GPT-2's and GPT-J's default activation.
/// Checks a GPT-2-style `activation_function` (these families run the tanh GELU only); the
/// error is the reason, for the caller to name the file.
pub(crate) fn check_tanh_gelu(activation: &str) -> std::result::Result<(), String> {
    if matches!(activation, "gelu_new" | "gelu_pytorch_tanh") {
        Ok(())
    } else {
        Err(format!(
            "activation_function `{activation}` is not supported (gelu_new only)"
        ))
    }
}

pub(crate) fn default_gelu_new() -> String {
    "gelu_new".into()
}

pub(crate) fn default_true() -> bool {
    true
}

/// The default `max_position_embeddings` of the Llama and GPT-NeoX config classes.
pub(crate) fn default_ctx() -> usize {
    2048
}

/// `v` as a JSON integer when it is whole (transformers checks some fields' types strictly).
pub(crate) fn whole_as_int(v: f64) -> serde_json::Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        json!(v as i64)
    } else {
        json!(v)
    }
}

/// A rotary scaling as transformers reads it (`original_max_position_embeddings` an int for
/// its rope validation).
pub(crate) fn scaling_json(scaling: RopeScaling) -> serde_json::Value {
    let mut v = json!(scaling);
    if let Some(n) = v
        .get("original_max_position_embeddings")
        .and_then(|n| n.as_f64())
    {
        v["original_max_position_embeddings"] = whole_as_int(n);
    }
    v
}
