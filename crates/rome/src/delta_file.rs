//! Saving edits: the weight changes as safetensors (`delta.{i}.u`, `delta.{i}.v` for rank-one
//! changes, `delta.{i}.dense` otherwise) with the requests, hyperparameters and targets as
//! JSON metadata; and reading them back to re-apply.

use std::collections::HashMap;
use std::path::Path;

use gpt_core::tch::Tensor;
use gpt_core::{WeightDelta, WeightId};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::request::RewriteRequest;
use crate::st_file;

const META_KEY: &str = "factscope.edits";

#[derive(Serialize, Deserialize)]
struct DeltaMeta {
    requests: Vec<RewriteRequest>,
    /// The method's hyperparameters ([`crate::RomeHparams`], [`crate::MemitHparams`], ...).
    hparams: serde_json::Value,
    /// `mlp_out:{layer}` per delta.
    targets: Vec<String>,
}

fn target_name(id: WeightId) -> Result<String> {
    match id {
        WeightId::MlpOut(l) => Ok(format!("mlp_out:{}", l.0)),
        other => Err(Error::InvalidInput(format!(
            "saving deltas of {other} is not supported (only MLP output projections)"
        ))),
    }
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
    hparams: &impl Serialize,
) -> Result<()> {
    let mut tensors: Vec<(String, &Tensor)> = Vec::new();
    let mut targets = Vec::new();
    for (i, d) in deltas.iter().enumerate() {
        targets.push(target_name(d.target())?);
        match d {
            WeightDelta::RankOne { u, v, .. } => {
                tensors.push((format!("delta.{i}.u"), u));
                tensors.push((format!("delta.{i}.v"), v));
            }
            WeightDelta::Dense { delta, .. } => tensors.push((format!("delta.{i}.dense"), delta)),
        }
    }
    let hparams = serde_json::to_value(hparams).map_err(|e| Error::Stats {
        path: path.to_path_buf(),
        reason: format!("cannot serialise the hyperparameters: {e}"),
    })?;
    let meta = DeltaMeta {
        requests: requests.to_vec(),
        hparams,
        targets,
    };
    let json = serde_json::to_string(&meta).map_err(|e| Error::Stats {
        path: path.to_path_buf(),
        reason: format!("cannot serialise: {e}"),
    })?;
    st_file::write(
        path,
        &tensors,
        HashMap::from([(META_KEY.to_string(), json)]),
    )
}

/// Edits read back from a file written by [`save_deltas`].
#[derive(Debug)]
pub struct SavedEdits {
    /// The weight changes, in the order they were applied.
    pub deltas: Vec<WeightDelta>,
    /// The requests.
    pub requests: Vec<RewriteRequest>,
    /// The hyperparameters, as saved (deserialise with the method's type, e.g.
    /// `serde_json::from_value::<rome::RomeHparams>`).
    pub hparams: serde_json::Value,
}

/// Reads edits written by [`save_deltas`].
///
/// # Errors
/// [`Error::Stats`] for an unreadable, truncated or corrupt file.
pub fn load_deltas(path: &Path) -> Result<SavedEdits> {
    let file = st_file::read(path)?;
    let json = file.meta(META_KEY).map_err(|_| {
        file.error(format!(
            "no `{META_KEY}` metadata: not a factscope edit file"
        ))
    })?;
    let meta: DeltaMeta =
        serde_json::from_str(json).map_err(|e| file.error(format!("bad metadata: {e}")))?;
    let mut deltas = Vec::new();
    for (i, t) in meta.targets.iter().enumerate() {
        let layer: usize = t
            .strip_prefix("mlp_out:")
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| file.error(format!("unknown target `{t}`")))?;
        let target = WeightId::MlpOut(gpt_core::Layer(layer));
        let delta = match (
            file.tensor(&format!("delta.{i}.u"))?,
            file.tensor(&format!("delta.{i}.v"))?,
        ) {
            (Some(u), Some(v)) => WeightDelta::RankOne { target, u, v },
            _ => WeightDelta::Dense {
                target,
                delta: file
                    .tensor(&format!("delta.{i}.dense"))?
                    .ok_or_else(|| file.error(format!("no tensors for delta {i}")))?,
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
