//! Writing a model as a new Hugging Face folder (`config.json`, `model.safetensors`,
//! `tokenizer.json`): e.g. an edited model, loadable by factscope and by transformers. What
//! is family-specific (the config's format, the tensors' names) is each family's `save.rs`
//! in `crate::families`; this file writes the folder.

use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
use tch::{Device, Kind};

use crate::error::{Error, Result};
use crate::families;
use crate::tokenizer::Tokenizer;
use crate::transformer::Transformer;

fn write_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::io(path, std::io::Error::other(e.to_string()))
}

impl Transformer {
    /// The `config.json` of this model in transformers' format (its family's writer in
    /// `crate::families`).
    pub fn hf_config(&self) -> serde_json::Value {
        families::hf_config(&self.config)
    }

    /// Writes this model (its current weights, edits included) and `tokenizer` as a new
    /// Hugging Face folder `dir`: `config.json`, `model.safetensors` (f32), `tokenizer.json`.
    /// The folder is written beside `dir` under a temporary name and renamed into place, so
    /// `dir` appears whole or not at all; an existing `dir` is never touched.
    ///
    /// # Errors
    /// [`Error::Io`] if `dir` exists or cannot be written; libtorch errors.
    pub fn save_hf(&self, dir: &Path, tokenizer: &Tokenizer) -> Result<()> {
        if dir.exists() {
            return Err(Error::io(
                dir,
                std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "it already exists (an edited model is written to a new folder)",
                ),
            ));
        }
        let name = dir
            .file_name()
            .ok_or_else(|| write_err(dir, "the path names no folder"))?
            .to_string_lossy()
            .into_owned();
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
        let tmp = parent.join(format!(".{name}.{}.tmp", std::process::id()));
        let result = self
            .write_folder(&tmp, tokenizer)
            .and_then(|()| std::fs::rename(&tmp, dir).map_err(|e| Error::io(dir, e)));
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        // Name what the user asked for (`dir/model.safetensors`), not the temporary folder,
        // and say that it was a write (a full disk is the usual cause).
        result.map_err(|e| match e {
            Error::Io { path, error } => Error::Write {
                path: match path.strip_prefix(&tmp) {
                    Ok(rest) => dir.join(rest),
                    Err(_) => path,
                },
                error,
            },
            other => other,
        })
    }

    fn write_folder(&self, dir: &Path, tokenizer: &Tokenizer) -> Result<()> {
        std::fs::create_dir(dir).map_err(|e| Error::io(dir, e))?;
        let config = serde_json::to_vec_pretty(&self.hf_config()).map_err(|e| write_err(dir, e))?;
        let path = dir.join("config.json");
        std::fs::write(&path, config).map_err(|e| Error::io(&path, e))?;
        let tensors = families::hf_tensors(self)?;
        let mut owned = Vec::with_capacity(tensors.len());
        for (name, t) in tensors {
            let t = t
                .f_to_device(Device::Cpu)?
                .f_to_kind(Kind::Float)?
                .f_contiguous()?;
            let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
            let values = Vec::<f32>::try_from(&t.f_flatten(0, -1)?)?;
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            owned.push((name, shape, bytes));
        }
        let path = dir.join("model.safetensors");
        let views = owned
            .iter()
            .map(|(name, shape, bytes)| {
                TensorView::new(Dtype::F32, shape.clone(), bytes)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| write_err(&path, e))
            })
            .collect::<Result<Vec<_>>>()?;
        let bytes = safetensors::serialize(views, None).map_err(|e| write_err(&path, e))?;
        std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))?;
        let path = dir.join("tokenizer.json");
        tokenizer
            .for_hf()?
            .save(&path, false)
            .map_err(|e| write_err(&path, e))?;
        Ok(())
    }
}
