//! The edited matrices in canonical form and the checkpoint files that hold them.

use std::collections::BTreeMap;
use std::path::Path;

use gpt_core::tch::{Device, Kind, Tensor};
use gpt_core::{undo_all, EditModel, EditUndo, Editor, WeightDelta, WeightId};

use super::{io, state_dir, SequentialState};
use crate::error::{Error, Result};

/// The edited matrices in canonical form `W₀ + ΔW`: the undo records of the `ΔW`s applied
/// to the original weights, in `weights` order.
pub(super) struct Canonical {
    pub(super) weights: Vec<WeightId>,
    pub(super) undos: Vec<EditUndo>,
}

impl Canonical {
    /// Applies the deltas of the checkpoint `name` in `dir` to the unedited `model`.
    pub(super) fn load<M: EditModel>(
        model: &mut M,
        dir: &Path,
        state: &SequentialState,
    ) -> Result<Self> {
        let Some(name) = &state.checkpoint else {
            return Ok(Self {
                weights: Vec::new(),
                undos: Vec::new(),
            });
        };
        let path = dir.join(format!("deltas-{name}.safetensors"));
        let bad = |reason: String| Error::Run {
            path: path.clone(),
            reason,
        };
        let tensors: BTreeMap<String, Tensor> = Tensor::read_safetensors(&path)
            .map_err(|e| bad(format!("cannot read the checkpoint's deltas: {e}")))?
            .into_iter()
            .collect();
        let mut undos = Vec::new();
        let result = (|| -> Result<()> {
            for (i, &w) in state.weights.iter().enumerate() {
                let delta = tensors
                    .get(&format!("w{i}"))
                    .ok_or_else(|| bad(format!("no tensor `w{i}` (the change of {w})")))?;
                undos.push(model.apply(&WeightDelta::Dense {
                    target: w,
                    delta: delta.shallow_clone(),
                })?);
            }
            Ok(())
        })();
        if let Err(e) = result {
            undo_all(model, &undos)?;
            return Err(e);
        }
        Ok(Self {
            weights: state.weights.clone(),
            undos,
        })
    }

    /// Folds the undo records of one batch (applied after the canonical ones) into the
    /// canonical form; returns the new `ΔW`s in `weights` order.
    pub(super) fn absorb<M: EditModel>(
        &mut self,
        model: &mut M,
        batch: Vec<EditUndo>,
    ) -> Result<Vec<Tensor>> {
        // The original of each matrix: from the canonical record, else from the first
        // record of this batch that touched it.
        let mut originals: BTreeMap<WeightId, Tensor> = BTreeMap::new();
        for u in self.undos.iter().chain(&batch) {
            originals
                .entry(u.target())
                .or_insert_with(|| u.original().shallow_clone());
            if !self.weights.contains(&u.target()) {
                self.weights.push(u.target());
            }
        }
        let deltas = self
            .weights
            .iter()
            .map(|&w| -> Result<Tensor> {
                let original = originals
                    .get(&w)
                    .ok_or_else(|| Error::InvalidInput(format!("no original weights of {w}")))?;
                Ok(model.weight(w)?.f_sub(original)?)
            })
            .collect::<Result<Vec<_>>>()?;
        undo_all(model, &batch)?;
        undo_all(model, &self.undos)?;
        self.undos.clear();
        for (&w, d) in self.weights.iter().zip(&deltas) {
            self.undos.push(model.apply(&WeightDelta::Dense {
                target: w,
                delta: d.shallow_clone(),
            })?);
        }
        Ok(deltas)
    }
}

/// Writes a new checkpoint beside the old, then the state naming it, then removes the old.
pub(super) fn checkpoint(
    dir: &Path,
    state: &mut SequentialState,
    deltas: &[Tensor],
    editor: &dyn Editor,
) -> Result<()> {
    let name = format!("b{}", state.batches);
    let deltas_path = dir.join(format!("deltas-{name}.safetensors"));
    factscope_common::write_atomic(&deltas_path, &deltas_file(deltas, &deltas_path)?)?;
    let editor_dir = dir.join(format!("editor-{name}"));
    if editor_dir.exists() {
        std::fs::remove_dir_all(&editor_dir).map_err(io(&editor_dir))?;
    }
    std::fs::create_dir_all(&editor_dir).map_err(io(&editor_dir))?;
    editor.save_state(&editor_dir)?;
    let old = state.checkpoint.replace(name.clone());
    state.write(dir)?;
    if let Some(old) = old.filter(|o| *o != name) {
        let _ = std::fs::remove_file(dir.join(format!("deltas-{old}.safetensors")));
        let _ = std::fs::remove_dir_all(dir.join(format!("editor-{old}")));
    }
    Ok(())
}

/// The safetensors bytes of `deltas` (f32, tensor `w{i}` for delta `i`).
fn deltas_file(deltas: &[Tensor], path: &Path) -> Result<Vec<u8>> {
    let mut owned = Vec::with_capacity(deltas.len());
    for (i, d) in deltas.iter().enumerate() {
        let d = d
            .f_to_device(Device::Cpu)?
            .f_to_kind(Kind::Float)?
            .f_contiguous()?;
        let shape: Vec<usize> = d.size().iter().map(|&n| n as usize).collect();
        let values = Vec::<f32>::try_from(&d.f_flatten(0, -1)?)?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        owned.push((format!("w{i}"), shape, bytes));
    }
    let bad = |reason: String| Error::Run {
        path: path.to_path_buf(),
        reason,
    };
    let views = owned
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| bad(format!("cannot serialise `{name}`: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, None)
        .map_err(|e| bad(format!("cannot serialise the checkpoint's deltas: {e}")))
}

/// Applies the edits of the sequential run in `run_dir` (as of its last checkpoint) to the
/// unedited `model` and returns the undo records: how to get the edited model of a run.
///
/// # Errors
/// No sequential run there, a corrupt checkpoint, or deltas that do not fit the model.
pub fn apply_checkpoint<M: EditModel>(model: &mut M, run_dir: &Path) -> Result<Vec<EditUndo>> {
    let state = SequentialState::read(run_dir)?.ok_or_else(|| Error::Run {
        path: run_dir.to_path_buf(),
        reason: "it holds no sequential run".into(),
    })?;
    Ok(Canonical::load(model, &state_dir(run_dir), &state)?.undos)
}
