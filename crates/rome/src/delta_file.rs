//! Saving edits: the weight changes as safetensors (`delta.{i}.u`, `delta.{i}.v` for rank-one
//! changes, `delta.{i}.dense` otherwise) with the requests, hyperparameters and targets as
//! JSON metadata; and reading them back to re-apply.

use std::collections::HashMap;
use std::path::Path;

use gpt_core::tch::{Device, Kind, Tensor};
use gpt_core::{WeightDelta, WeightId};
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::hparams::RomeHparams;
use crate::request::RewriteRequest;

const META_KEY: &str = "factscope.edits";

#[derive(Serialize, Deserialize)]
struct DeltaMeta {
    requests: Vec<RewriteRequest>,
    hparams: RomeHparams,
    /// `mlp_out:{layer}` per delta.
    targets: Vec<String>,
}

fn target_name(id: WeightId) -> Result<String> {
    match id {
        WeightId::MlpOut(l) => Ok(format!("mlp_out:{}", l.0)),
        other => Err(Error::InvalidConfig(format!(
            "saving deltas of {other} is not supported (only MLP output projections)"
        ))),
    }
}

fn bytes_of(t: &Tensor) -> Result<(Vec<usize>, Vec<u8>)> {
    let t = t
        .f_to_device(Device::Cpu)?
        .f_to_kind(Kind::Double)?
        .f_contiguous()?;
    let shape = t.size().iter().map(|&d| d as usize).collect();
    let values = Vec::<f64>::try_from(&t.f_flatten(0, -1)?)?;
    Ok((shape, values.iter().flat_map(|v| v.to_le_bytes()).collect()))
}

/// Writes `deltas` (in the order they were applied) with their requests and
/// hyperparameters to `path`, atomically.
///
/// # Errors
/// Deltas of weights other than MLP output projections; serialisation and write errors.
pub fn save_deltas(
    path: &Path,
    deltas: &[&WeightDelta],
    requests: &[RewriteRequest],
    hparams: &RomeHparams,
) -> Result<()> {
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut targets = Vec::new();
    for (i, d) in deltas.iter().enumerate() {
        targets.push(target_name(d.target())?);
        match d {
            WeightDelta::RankOne { u, v, .. } => {
                let (su, bu) = bytes_of(u)?;
                let (sv, bv) = bytes_of(v)?;
                owned.push((format!("delta.{i}.u"), su, bu));
                owned.push((format!("delta.{i}.v"), sv, bv));
            }
            WeightDelta::Dense { delta, .. } => {
                let (s, b) = bytes_of(delta)?;
                owned.push((format!("delta.{i}.dense"), s, b));
            }
        }
    }
    let stats_err = |reason: String| Error::Stats {
        path: path.to_path_buf(),
        reason,
    };
    let views = owned
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F64, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| stats_err(format!("cannot serialise: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let meta = DeltaMeta {
        requests: requests.to_vec(),
        hparams: hparams.clone(),
        targets,
    };
    let json =
        serde_json::to_string(&meta).map_err(|e| stats_err(format!("cannot serialise: {e}")))?;
    let info = HashMap::from([(META_KEY.to_string(), json)]);
    let file = safetensors::serialize(views, Some(info))
        .map_err(|e| stats_err(format!("cannot serialise: {e}")))?;
    factscope_common::write_atomic(path, &file)?;
    Ok(())
}

/// Edits read back from a file written by [`save_deltas`].
#[derive(Debug)]
pub struct SavedEdits {
    /// The weight changes, in the order they were applied.
    pub deltas: Vec<WeightDelta>,
    /// The requests.
    pub requests: Vec<RewriteRequest>,
    /// The hyperparameters.
    pub hparams: RomeHparams,
}

/// Reads edits written by [`save_deltas`].
///
/// # Errors
/// [`Error::Stats`] for an unreadable, truncated or corrupt file.
pub fn load_deltas(path: &Path) -> Result<SavedEdits> {
    let bad = |reason: String| Error::Stats {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| {
        bad(format!(
            "not a safetensors file (truncated or corrupt?): {e}"
        ))
    })?;
    let json = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .ok_or_else(|| {
            bad(format!(
                "no `{META_KEY}` metadata: not a factscope edit file"
            ))
        })?;
    let meta: DeltaMeta =
        serde_json::from_str(json).map_err(|e| bad(format!("bad metadata: {e}")))?;
    let tensors = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| bad(format!("corrupt tensor data: {e}")))?;
    let read = |name: &str| -> Result<Option<Tensor>> {
        match tensors.tensor(name) {
            Ok(v) => {
                if v.dtype() != Dtype::F64 {
                    return Err(bad(format!("`{name}` is not F64")));
                }
                let shape: Vec<i64> = v.shape().iter().map(|&d| d as i64).collect();
                Ok(Some(Tensor::f_from_data_size(
                    v.data(),
                    &shape,
                    Kind::Double,
                )?))
            }
            Err(_) => Ok(None),
        }
    };
    let mut deltas = Vec::new();
    for (i, t) in meta.targets.iter().enumerate() {
        let layer: usize = t
            .strip_prefix("mlp_out:")
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| bad(format!("unknown target `{t}`")))?;
        let target = WeightId::MlpOut(gpt_core::Layer(layer));
        let delta = match (
            read(&format!("delta.{i}.u"))?,
            read(&format!("delta.{i}.v"))?,
        ) {
            (Some(u), Some(v)) => WeightDelta::RankOne { target, u, v },
            _ => WeightDelta::Dense {
                target,
                delta: read(&format!("delta.{i}.dense"))?
                    .ok_or_else(|| bad(format!("no tensors for delta {i}")))?,
            },
        };
        deltas.push(delta);
    }
    Ok(SavedEdits {
        deltas,
        requests: meta.requests,
        hparams: meta.hparams,
    })
}
