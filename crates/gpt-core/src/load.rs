//! Loading a model and its tokenizer from a Hugging Face folder or a `.gguf` file.

use std::path::{Path, PathBuf};

use tch::{Device, Kind};

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::families;
use crate::model::HookableModel;
use crate::tokenizer::Tokenizer;
use crate::transformer::Transformer;
use crate::weights::{safetensors_checkpoint, GgufSource, Loader, SafetensorsSource};

/// Compute dtype and device for loading.
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    /// Where the weights go.
    pub device: Device,
    /// Compute dtype: `Kind::Float`, `Kind::BFloat16` or `Kind::Half`.
    pub kind: Kind,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            device: Device::Cpu,
            kind: Kind::Float,
        }
    }
}

/// A model with its tokenizer.
#[derive(Debug)]
pub struct LoadedModel {
    /// The model.
    pub model: Transformer,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// Where it was loaded from.
    pub path: PathBuf,
}

impl LoadedModel {
    /// Every token that ends a text or a turn: the tokenizer's [`Tokenizer::end_ids`] and the
    /// model config's end-of-sequence id. Generation stops at any of them.
    pub fn end_ids(&self) -> Vec<i64> {
        let mut ids = self.tokenizer.end_ids();
        ids.extend(self.model.config().eos_token_id);
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// Whether `load_model` reads `path` as a GGUF file (its `.gguf` extension, any case)
/// rather than a Hugging Face folder.
pub fn is_gguf_path(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

/// Loads a model: a Hugging Face folder (`config.json`, safetensors, `tokenizer.json` or
/// `vocab.json` + `merges.txt`) or a `.gguf` file.
///
/// # Errors
/// A missing or unreadable path, an unknown architecture, inconsistent sizes, corrupt or
/// truncated checkpoints, missing tensors, tensors of the wrong shape, tensors the config
/// does not account for ([`Error::UnusedTensors`]), an unsupported dtype: each names the
/// file and tensor.
pub fn load_model(path: &Path, options: LoadOptions) -> Result<LoadedModel> {
    if !matches!(options.kind, Kind::Float | Kind::BFloat16 | Kind::Half) {
        return Err(Error::InvalidInput(format!(
            "compute dtype {:?} is not supported (f32, bf16, f16)",
            options.kind
        )));
    }
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let _guard = tch::no_grad_guard();
    let (model, tokenizer) = if meta.is_dir() {
        load_hf_dir(path, options)?
    } else if is_gguf_path(path) {
        load_gguf(path, options)?
    } else {
        return Err(Error::NotAModel {
            path: path.to_path_buf(),
            reason: "expected a Hugging Face model folder or a .gguf file".into(),
        });
    };
    Ok(LoadedModel {
        model,
        tokenizer,
        path: path.to_path_buf(),
    })
}

fn load_hf_dir(dir: &Path, options: LoadOptions) -> Result<(Transformer, Tokenizer)> {
    let config_path = dir.join("config.json");
    if !config_path.is_file() {
        return Err(Error::NotAModel {
            path: dir.to_path_buf(),
            reason: "no config.json".into(),
        });
    }
    let config = ModelConfig::from_hf_file(&config_path)?;
    let mut tokenizer = load_hf_tokenizer(dir)?;
    tokenizer.set_special_ids(config.bos_token_id, config.eos_token_id);
    let checkpoint = safetensors_checkpoint(dir)?;
    let mut source = SafetensorsSource::open(&checkpoint)?;
    let mut loader = Loader::new(&mut source, options.device, options.kind);
    let parts = families::load_hf(&config, &mut loader)?;
    Ok((
        Transformer::new(config, options.device, options.kind, parts)?,
        tokenizer,
    ))
}

/// The tokenizer of a Hugging Face folder: `tokenizer.json`, else `vocab.json` + `merges.txt`.
///
/// # Errors
/// [`Error::NotAModel`] if the folder has neither.
pub fn load_hf_tokenizer(dir: &Path) -> Result<Tokenizer> {
    let json = dir.join("tokenizer.json");
    if json.is_file() {
        return Tokenizer::from_file(&json);
    }
    let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
    if vocab.is_file() && merges.is_file() {
        return Tokenizer::from_vocab_merges(&vocab, &merges);
    }
    Err(Error::NotAModel {
        path: dir.to_path_buf(),
        reason: "no tokenizer.json and no vocab.json + merges.txt".into(),
    })
}

fn load_gguf(path: &Path, options: LoadOptions) -> Result<(Transformer, Tokenizer)> {
    let reader = gguf::GgufFile::open(path)?;
    let config = families::config_from_gguf(&reader.file, path)?;
    let tokenizer = Tokenizer::from_gguf(&reader.file, path)?;
    if tokenizer.vocab_size() != config.vocab_size {
        return Err(Error::Config {
            path: path.to_path_buf(),
            reason: format!(
                "tokenizer has {} tokens but the model's vocabulary is {}",
                tokenizer.vocab_size(),
                config.vocab_size
            ),
        });
    }
    let mut source = GgufSource::new(reader);
    let mut loader = Loader::new(&mut source, options.device, options.kind);
    let parts = families::load_gguf(&config, &mut loader)?;
    Ok((
        Transformer::new(config, options.device, options.kind, parts)?,
        tokenizer,
    ))
}
