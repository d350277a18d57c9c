//! Model families: one folder per family, each the only place that knows the family's
//! Hugging Face `config.json` format (wire struct → [`ModelConfig`]), its checkpoint tensor
//! names, how its weights load into the one [`Transformer`], and how it is written back.
//!
//! | family | folder | `model_type`s | GGUF | written by `save_hf` |
//! |---|---|---|---|---|
//! | GPT-2 | `gpt2/` | `gpt2` | yes | yes |
//! | Llama layout | `llama/` | `llama`, `qwen2`, `mistral`, `gemma`, `gemma2`, `gemma3_text` | llama, qwen2, mistral | yes |
//! | GPT-NeoX / Pythia | `neox/` | `gpt_neox` | no | no |
//! | GPT-J | `gptj/` | `gptj` | no | no |
//!
//! Shared by several families: `hf.rs` (wire helpers: token ids, serde defaults, JSON
//! numbers as transformers checks them), `tensors.rs` (LayerNorm and `nn.Linear` loading),
//! and the rotary-scaling reader in `crate::config`. Adding a family: its folder, a variant
//! of [`Architecture`], its `model_type`s and reader in `HF_FAMILIES` below (which
//! [`ModelConfig::from_hf_json`] dispatches by, and whose list its "unknown architecture"
//! message gives), and its arm in the dispatch functions below (its `BUFFERS` included).
//!
//! Every tensor of a checkpoint must be used by the load (`Loader::check_all_read`): a
//! config that says fewer layers than the checkpoint has, or leaves out a bias it has, is
//! refused instead of silently dropping weights. The exceptions are each family's
//! `BUFFERS` (constants older transformers saved) and a tied head stored anyway, which
//! must equal the embedding (`tensors::unembed`).

use std::path::Path;

use tch::Tensor;

use crate::config::{Architecture, ModelConfig};
use crate::error::{Error, Result};
use crate::transformer::{Transformer, TransformerParts};
use crate::weights::Loader;

pub(crate) mod gpt2;
pub(crate) mod gptj;
mod hf;
pub(crate) mod llama;
pub(crate) mod neox;
mod tensors;

/// Reads the `config.json` of one family (the `model_type` for families that read several).
type HfReader = fn(&str, &str, &Path) -> Result<ModelConfig>;

/// The `model_type`s of `config.json` each family reads, with its reader: the one list the
/// dispatch and the "unknown architecture" message use.
const HF_FAMILIES: &[(&[&str], HfReader)] = &[
    (&["gpt2"], |_, text, source| {
        gpt2::config_from_hf(text, source)
    }),
    (llama::MODEL_TYPES, llama::config_from_hf),
    (&["gpt_neox"], |_, text, source| {
        neox::config_from_hf(text, source)
    }),
    (&["gptj"], |_, text, source| {
        gptj::config_from_hf(text, source)
    }),
];

/// Every `model_type` a Hugging Face `config.json` may have, in the families' order.
pub(crate) fn model_types() -> impl Iterator<Item = &'static str> {
    HF_FAMILIES
        .iter()
        .flat_map(|(types, _)| types.iter().copied())
}

/// The config of `text`, a `config.json` of `model_type`, by its family's reader (not yet
/// validated); `None` if no family reads `model_type`.
pub(crate) fn config_from_hf(
    model_type: &str,
    text: &str,
    source: &Path,
) -> Option<Result<ModelConfig>> {
    HF_FAMILIES
        .iter()
        .find(|(types, _)| types.contains(&model_type))
        .map(|(_, read)| read(model_type, text, source))
}

/// The per-layer buffers (block-relative names) a checkpoint of `arch` may hold besides
/// the weights: constants older transformers saved, which the model recomputes (each
/// family's `BUFFERS` says which and why).
fn buffers(arch: Architecture) -> &'static [&'static str] {
    match arch {
        Architecture::Gpt2 => gpt2::BUFFERS,
        Architecture::Llama => llama::BUFFERS,
        Architecture::GptNeox => neox::BUFFERS,
        Architecture::GptJ => gptj::BUFFERS,
    }
}

/// Loads the weights of a Hugging Face checkpoint of `config`'s family.
///
/// # Errors
/// Besides missing or misshapen tensors, [`Error::UnusedTensors`] if the checkpoint holds
/// tensors the config does not account for (other than the family's buffers).
pub(crate) fn load_hf(config: &ModelConfig, loader: &mut Loader<'_>) -> Result<TransformerParts> {
    let parts = match config.arch {
        Architecture::Gpt2 => gpt2::load(config, loader),
        Architecture::Llama => llama::load(config, loader, llama::Layout::HuggingFace),
        Architecture::GptNeox => neox::load(config, loader),
        Architecture::GptJ => gptj::load(config, loader),
    }?;
    loader.check_all_read(buffers(config.arch), config.n_layers, "config.json")?;
    Ok(parts)
}

/// The model config from a GGUF file's metadata, by its `general.architecture`.
pub(crate) fn config_from_gguf(file: &gguf::GgufFile, path: &Path) -> Result<ModelConfig> {
    if file.architecture() == Some("gpt2") {
        gpt2::config_from_gguf(file, path)
    } else {
        llama::config_from_gguf(file, path)
    }
}

/// Loads the weights of a GGUF file read by [`config_from_gguf`] (llama.cpp's names).
///
/// # Errors
/// As [`load_hf`]; llama.cpp writes no buffers, so every tensor must be used (Llama's
/// `rope_freqs.weight` is read and checked by its loader).
pub(crate) fn load_gguf(config: &ModelConfig, loader: &mut Loader<'_>) -> Result<TransformerParts> {
    let parts = match config.arch {
        Architecture::Gpt2 => gpt2::load_gguf(config, loader),
        Architecture::Llama => llama::load(config, loader, llama::Layout::Gguf),
        // `config_from_gguf` reads no other family.
        Architecture::GptNeox | Architecture::GptJ => Err(Error::InvalidInput(format!(
            "{:?} models are not read from GGUF files",
            config.arch
        ))),
    }?;
    loader.check_all_read(&[], config.n_layers, "the GGUF metadata")?;
    Ok(parts)
}

/// `config.json` of `config` in transformers' format.
pub(crate) fn hf_config(config: &ModelConfig) -> serde_json::Value {
    match config.arch {
        Architecture::Gpt2 => gpt2::hf_config(config),
        // GPT-NeoX and GPT-J have no writer (`hf_tensors` refuses them); their config is
        // given in the Llama layout's form, as it always has been.
        Architecture::Llama | Architecture::GptNeox | Architecture::GptJ => {
            llama::hf_config(config)
        }
    }
}

/// The model's tensors under its family's Hugging Face names, for writing a folder.
pub(crate) fn hf_tensors(t: &Transformer) -> Result<Vec<(String, Tensor)>> {
    match t.config.arch {
        Architecture::Gpt2 => gpt2::hf_tensors(t),
        Architecture::Llama => llama::hf_tensors(t),
        Architecture::GptNeox | Architecture::GptJ => Err(Error::InvalidInput(format!(
            "writing {:?} models as a Hugging Face folder is not implemented (GPT-2 and Llama are); save the weight changes themselves instead",
            t.config.arch
        ))),
    }
}

/// The GGUF metadata of `config` (llama.cpp's architecture name and its hyperparameter
/// keys), for writing a new GGUF file; the inverse of [`config_from_gguf`].
///
/// # Errors
/// Families and details llama.cpp would not compute as this crate does, or that
/// [`config_from_gguf`] would not read back.
pub(crate) fn gguf_metadata(config: &ModelConfig) -> Result<Vec<(String, gguf::MetadataValue)>> {
    match config.arch {
        Architecture::Gpt2 => gpt2::gguf_metadata(config),
        Architecture::Llama => llama::gguf_metadata(config),
        Architecture::GptNeox | Architecture::GptJ => Err(unwritable_gguf(config.arch)),
    }
}

/// The model's tensors under llama.cpp's names, in its storage layout (`[out, in]`
/// matrices; Llama's q/k rows permuted), for writing a new GGUF file.
pub(crate) fn gguf_tensors(t: &Transformer) -> Result<Vec<(String, Tensor)>> {
    match t.config.arch {
        Architecture::Gpt2 => gpt2::gguf_tensors(t),
        Architecture::Llama => llama::gguf_tensors(t),
        Architecture::GptNeox | Architecture::GptJ => Err(unwritable_gguf(t.config.arch)),
    }
}

fn unwritable_gguf(arch: Architecture) -> Error {
    Error::InvalidInput(format!(
        "writing {arch:?} models as GGUF is not supported (GPT-2 and Llama-layout models are): they are not read back from GGUF either"
    ))
}
