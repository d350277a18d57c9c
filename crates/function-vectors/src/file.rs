//! `fv.safetensors`: function vectors with their provenance, and the check that a file
//! belongs to the model it is used with.

use std::collections::HashMap;
use std::path::Path;

use gpt_core::tch::{Device, Kind, Tensor};
use gpt_core::{EditableModel, Layer, WeightId};
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::scan::HeadScore;

/// The format tag in the metadata.
pub const FORMAT: &str = "factscope-function-vectors/1";

/// What a function-vector file records besides the vectors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FvMeta {
    /// [`model_fingerprint`] of the model the vectors come from.
    pub model_fingerprint: String,
    /// The model's type (`gpt2`, `llama`), for people.
    pub model_type: String,
    /// Residual width.
    pub d_model: usize,
    /// Layers of the model.
    pub n_layers: usize,
    /// The layer the vectors are meant to be added at (`blocks.{layer}.hook_resid_post`).
    pub layer: usize,
    /// The heads summed (layer, head, AIE).
    pub heads: Vec<HeadScore>,
    /// Task names, one per vector, in file order.
    pub tasks: Vec<String>,
    /// Demonstrations per prompt.
    pub shots: usize,
    /// Seed of splits and draws.
    pub seed: u32,
    /// Prompts averaged for the mean activations.
    pub mean_trials: usize,
    /// Prompts of the head scan.
    pub cie_trials: usize,
}

/// A fingerprint of a model: FNV-1a 64 of its config (JSON) and of the bytes of layer 0's
/// attention out-projection as f32 (so another checkpoint of the same shape differs).
///
/// # Errors
/// Model errors.
pub fn model_fingerprint(model: &dyn EditableModel) -> Result<String> {
    Ok(gpt_core::model_fingerprint(
        model,
        WeightId::AttnOut(Layer(0)),
    )?)
}

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::FvFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Writes `vectors` (`[d_model]` each, stored as f64 under `fv.<task>`) with `meta`
/// atomically.
///
/// # Errors
/// A vector count that differs from `meta.tasks`, a vector of the wrong width; write errors.
pub fn save(path: &Path, meta: &FvMeta, vectors: &[Tensor]) -> Result<()> {
    if vectors.len() != meta.tasks.len() {
        return Err(bad(
            path,
            format!("{} vectors for {} tasks", vectors.len(), meta.tasks.len()),
        ));
    }
    let mut owned = Vec::with_capacity(vectors.len());
    for (task, v) in meta.tasks.iter().zip(vectors) {
        if v.size() != [meta.d_model as i64] {
            return Err(bad(
                path,
                format!(
                    "vector of task {task} has shape {:?}, expected [{}]",
                    v.size(),
                    meta.d_model
                ),
            ));
        }
        let v = v
            .f_to_device(Device::Cpu)?
            .f_to_kind(Kind::Double)?
            .f_contiguous()?;
        let bytes: Vec<u8> = Vec::<f64>::try_from(&v)?
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        owned.push((format!("fv.{task}"), bytes));
    }
    let views = owned
        .iter()
        .map(|(name, bytes)| {
            TensorView::new(Dtype::F64, vec![meta.d_model], bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| bad(path, format!("cannot serialise `{name}`: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let json = serde_json::to_string(meta).map_err(|e| bad(path, format!("metadata: {e}")))?;
    let metadata = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("function_vectors".to_string(), json),
    ]);
    let bytes = safetensors::serialize(views, Some(metadata))
        .map_err(|e| bad(path, format!("cannot serialise: {e}")))?;
    factscope_common::write_atomic(path, &bytes)?;
    Ok(())
}

/// Reads a function-vector file: its metadata and one `[d_model]` f64 vector per task.
///
/// # Errors
/// [`Error::FvFile`] for an unreadable, truncated or foreign file.
pub fn load(path: &Path) -> Result<(FvMeta, Vec<Tensor>)> {
    let bytes = std::fs::read(path).map_err(|e| bad(path, format!("cannot read it: {e}")))?;
    let tensors = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| {
        bad(
            path,
            format!("not a safetensors file (truncated or corrupt?): {e}"),
        )
    })?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| bad(path, format!("unreadable header: {e}")))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    if metadata.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(bad(path, format!("no `format: {FORMAT}` metadata")));
    }
    let meta: FvMeta = serde_json::from_str(
        metadata
            .get("function_vectors")
            .ok_or_else(|| bad(path, "no `function_vectors` metadata"))?,
    )
    .map_err(|e| bad(path, format!("bad `function_vectors` metadata: {e}")))?;
    let mut vectors = Vec::with_capacity(meta.tasks.len());
    for task in &meta.tasks {
        let name = format!("fv.{task}");
        let view = tensors
            .tensor(&name)
            .map_err(|_| bad(path, format!("tensor `{name}` is missing")))?;
        if view.dtype() != Dtype::F64 || view.shape() != [meta.d_model] {
            return Err(bad(
                path,
                format!(
                    "tensor `{name}` is {:?} {:?}, expected F64 [{}]",
                    view.dtype(),
                    view.shape(),
                    meta.d_model
                ),
            ));
        }
        vectors.push(Tensor::f_from_data_size(
            view.data(),
            &[meta.d_model as i64],
            Kind::Double,
        )?);
    }
    Ok((meta, vectors))
}

/// [`load`], then checks that the file was made for `model` (same fingerprint) and that its
/// layer and heads lie inside it.
///
/// # Errors
/// [`Error::FvFile`] naming both fingerprints for a file of another model; as [`load`].
pub fn load_for(path: &Path, model: &dyn EditableModel) -> Result<(FvMeta, Vec<Tensor>)> {
    let (meta, vectors) = load(path)?;
    let fingerprint = model_fingerprint(model)?;
    let c = model.config();
    if meta.model_fingerprint != fingerprint || meta.d_model != c.d_model {
        return Err(bad(
            path,
            format!(
                "made for another model ({} {}, fingerprint {}; this model: {} with d_model {}, fingerprint {fingerprint})",
                meta.model_type, meta.d_model, meta.model_fingerprint, c.model_type, c.d_model
            ),
        ));
    }
    if meta.layer >= c.n_layers {
        return Err(Error::LayerOutOfRange {
            what: "FV file layer",
            layer: meta.layer,
            n_layers: c.n_layers,
        });
    }
    crate::vector::check_heads(&meta.heads, c.n_layers, c.n_heads)?;
    Ok((meta, vectors))
}
