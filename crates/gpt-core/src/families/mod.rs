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
//! of [`Architecture`], its `model_type`s in [`ModelConfig::from_hf_json`], and its arm in
//! the dispatch functions below.

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

/// Loads the weights of a Hugging Face checkpoint of `config`'s family.
pub(crate) fn load_hf(config: &ModelConfig, loader: &mut Loader<'_>) -> Result<TransformerParts> {
    match config.arch {
        Architecture::Gpt2 => gpt2::load(config, loader),
        Architecture::Llama => llama::load(config, loader, llama::Layout::HuggingFace),
        Architecture::GptNeox => neox::load(config, loader),
        Architecture::GptJ => gptj::load(config, loader),
    }
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
pub(crate) fn load_gguf(config: &ModelConfig, loader: &mut Loader<'_>) -> Result<TransformerParts> {
    match config.arch {
        Architecture::Gpt2 => gpt2::load_gguf(config, loader),
        Architecture::Llama => llama::load(config, loader, llama::Layout::Gguf),
        // `config_from_gguf` reads no other family.
        Architecture::GptNeox | Architecture::GptJ => Err(Error::InvalidInput(format!(
            "{:?} models are not read from GGUF files",
            config.arch
        ))),
    }
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
            "writing {:?} models as a Hugging Face folder is not implemented; save the weight changes with --save-delta instead",
            t.config.arch
        ))),
    }
}
