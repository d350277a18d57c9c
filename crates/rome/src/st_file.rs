//! The file format of statistics and edits: safetensors holding f64 tensors, with string
//! metadata (JSON provenance), written atomically.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use gpt_core::tch::{Device, Kind, Tensor};
use safetensors::tensor::{Dtype, TensorView};

use crate::error::{Error, Result};

fn bad(path: &Path, reason: String) -> Error {
    Error::Stats {
        path: path.to_path_buf(),
        reason,
    }
}

/// Writes `tensors` (stored as f64) and `metadata` to `path` atomically.
pub(crate) fn write(
    path: &Path,
    tensors: &[(String, &Tensor)],
    metadata: HashMap<String, String>,
) -> Result<()> {
    let mut owned = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let t = t
            .f_to_device(Device::Cpu)?
            .f_to_kind(Kind::Double)?
            .f_contiguous()?;
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        let values = Vec::<f64>::try_from(&t.f_flatten(0, -1)?)?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        owned.push((name.clone(), shape, bytes));
    }
    let views = owned
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F64, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| bad(path, format!("cannot serialise `{name}`: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let file = safetensors::serialize(views, Some(metadata))
        .map_err(|e| bad(path, format!("cannot serialise: {e}")))?;
    factscope_common::write_atomic(path, &file)?;
    Ok(())
}

/// A safetensors file read into memory, with its metadata.
pub(crate) struct StFile {
    path: PathBuf,
    bytes: Vec<u8>,
    /// The string metadata.
    pub metadata: HashMap<String, String>,
}

/// Reads `path`, checking that it is a whole safetensors file.
pub(crate) fn read(path: &Path) -> Result<StFile> {
    let bytes = std::fs::read(path).map_err(|e| bad(path, format!("cannot read it: {e}")))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| {
        bad(
            path,
            format!("not a safetensors file (truncated or corrupt?): {e}"),
        )
    })?;
    let metadata = header.metadata().clone().unwrap_or_default();
    safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| bad(path, format!("corrupt tensor data: {e}")))?;
    Ok(StFile {
        path: path.to_path_buf(),
        bytes,
        metadata,
    })
}

impl StFile {
    /// A metadata entry, or an error naming it.
    pub fn meta(&self, key: &str) -> Result<&str> {
        self.metadata
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| bad(&self.path, format!("no `{key}` metadata")))
    }

    /// The f64 tensor `name`, if present.
    pub fn tensor(&self, name: &str) -> Result<Option<Tensor>> {
        let tensors = safetensors::SafeTensors::deserialize(&self.bytes)
            .map_err(|e| bad(&self.path, format!("corrupt tensor data: {e}")))?;
        let Ok(view) = tensors.tensor(name) else {
            return Ok(None);
        };
        if view.dtype() != Dtype::F64 {
            return Err(bad(
                &self.path,
                format!("`{name}` is {:?}, not F64", view.dtype()),
            ));
        }
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        Ok(Some(Tensor::f_from_data_size(
            view.data(),
            &shape,
            Kind::Double,
        )?))
    }

    /// An error about this file.
    pub fn error(&self, reason: String) -> Error {
        bad(&self.path, reason)
    }
}
