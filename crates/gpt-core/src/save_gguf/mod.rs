//! Writing an edited model back as GGUF, for llama.cpp, Ollama and LM Studio: the GGUF it was
//! loaded from with only the edited matrices replaced — each re-quantised to its original
//! type (or kept at F16 / F32) — and every other tensor and all metadata (the tokenizer
//! included) carried over byte for byte ([`save_gguf`]); or any model written as a new
//! GGUF from its weights and tokenizer ([`crate::Transformer::export_gguf`], `export.rs`,
//! with the tokenizer's metadata from `vocab.rs`).

mod export;
mod vocab;

pub use export::{ExportedGguf, GgufExport};

use std::collections::BTreeMap;
use std::path::Path;

use gguf::{GgmlType, Replacement};
use tch::{Device, Kind};

use crate::config::Architecture;
use crate::edit::WeightId;
use crate::error::{Error, Result};
use crate::model::EditableModel;

/// How [`save_gguf`] stores an edited matrix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EditedTensorType {
    /// Re-quantised to the type the source file has for it (the file stays as small as it
    /// was; the edit picks up that type's rounding).
    #[default]
    Same,
    /// F16 (about half the rounding of Q8_0; larger).
    F16,
    /// F32: the edited weights exactly.
    F32,
}

/// What [`save_gguf`] did to one edited matrix.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SavedTensor {
    /// The GGUF tensor name.
    pub name: String,
    /// Its type in the source file.
    pub source_type: String,
    /// Its type in the new file.
    pub saved_type: String,
    /// `max |W_saved − W|` over the matrix, `W` the edited weights in the model.
    pub max_abs_error: f64,
    /// `‖W_saved − W‖ / ‖ΔW‖`: the rounding relative to the edit's change (`ΔW` = the
    /// model's matrix minus the source file's), `NaN` when the matrix did not change.
    pub error_over_edit: f64,
}

/// `tensor`'s values (any dtype or device) as f32, in storage order.
fn host_f32(tensor: &tch::Tensor) -> Result<Vec<f32>> {
    let flat = tensor
        .f_detach()?
        .f_to_device(Device::Cpu)?
        .f_to_kind(Kind::Float)?
        .f_contiguous()?
        .f_flatten(0, -1)?;
    Ok(Vec::<f32>::try_from(&flat)?)
}

/// A `gguf` error about the tensor `name`, naming it.
fn in_tensor(name: &str) -> impl Fn(gguf::Error) -> Error + '_ {
    move |e| Error::InvalidInput(format!("`{name}`: {e}"))
}

/// `values` encoded as `ty`, a quantiser's refusal naming the tensor.
fn encode(name: &str, ty: GgmlType, values: &[f32]) -> Result<Vec<u8>> {
    gguf::quantize(ty, values).map_err(in_tensor(name))
}

/// The GGUF tensor of `id` in a model of `arch`, where its `[out, in]` matrix is stored
/// as is (no row permutation).
fn gguf_name(arch: Architecture, id: WeightId) -> Option<String> {
    let layer = |l: crate::hook::Layer, part: &str| format!("blk.{}.{part}.weight", l.0);
    match (arch, id) {
        (Architecture::Llama | Architecture::Gpt2, WeightId::MlpOut(l)) => {
            Some(layer(l, "ffn_down"))
        }
        (Architecture::Llama | Architecture::Gpt2, WeightId::MlpIn(l)) => Some(layer(l, "ffn_up")),
        (Architecture::Llama, WeightId::MlpGate(l)) => Some(layer(l, "ffn_gate")),
        (Architecture::Llama, WeightId::AttnV(l)) => Some(layer(l, "attn_v")),
        (Architecture::Llama | Architecture::Gpt2, WeightId::AttnOut(l)) => {
            Some(layer(l, "attn_output"))
        }
        _ => None,
    }
}

/// Writes `model` to a new GGUF file `out`: the file `source` (the GGUF the model was loaded
/// from) with the matrices of `edited` replaced by the model's, stored as `keep` says, and
/// everything else copied; atomically, never over an existing file. Returns what each
/// edited matrix became.
///
/// Supported: Llama- and GPT-2-family GGUF files, edits of the MLP matrices and of the
/// attention output (and Llama's value projection) — those llama.cpp stores unpermuted;
/// `Same` needs a type this crate quantises (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
/// Q4_K, Q5_K, Q6_K; Q2_K and Q3_K are not written: use `F16`).
///
/// # Errors
/// [`Error::InvalidInput`] for an existing `out`, a source that is not the model's GGUF
/// (a tensor of another shape, a missing tensor), a weight or type that cannot be written;
/// read and write errors naming the file.
pub fn save_gguf<M: EditableModel + ?Sized>(
    model: &M,
    source: &Path,
    out: &Path,
    edited: &[WeightId],
    keep: EditedTensorType,
) -> Result<Vec<SavedTensor>> {
    if out.exists() {
        return Err(Error::InvalidInput(format!(
            "{}: it already exists (the edited model is written to a new file)",
            out.display()
        )));
    }
    let bytes = std::fs::read(source).map_err(|e| Error::io(source, e))?;
    let file = gguf::GgufFile::from_bytes(&bytes)
        .map_err(|e| Error::InvalidInput(format!("{}: {e}", source.display())))?;
    let arch = model.config().arch;
    let mut replace = BTreeMap::new();
    let mut report = Vec::new();
    let mut ids: Vec<WeightId> = edited.to_vec();
    ids.sort();
    ids.dedup();
    for id in ids {
        let name = gguf_name(arch, id).ok_or_else(|| {
            Error::InvalidInput(format!(
                "writing an edited {id} to GGUF is not supported for {arch:?} models"
            ))
        })?;
        let info = file.tensor(&name).ok_or_else(|| {
            Error::InvalidInput(format!(
                "{} has no tensor `{name}` (for {id}): not the GGUF this model was loaded from?",
                source.display()
            ))
        })?;
        let w = model.weight(id)?;
        let shape: Vec<i64> = info.shape_outer_first().iter().map(|&d| d as i64).collect();
        if w.size() != shape {
            return Err(Error::InvalidInput(format!(
                "`{name}` in {} has shape {shape:?}, the model's {id} {:?}: not the GGUF this model was loaded from?",
                source.display(),
                w.size()
            )));
        }
        let values = host_f32(w)?;
        let ty = match keep {
            EditedTensorType::Same => info.ggml_type,
            EditedTensorType::F16 => GgmlType::F16,
            EditedTensorType::F32 => GgmlType::F32,
        };
        let data = encode(&name, ty, &values)?;
        let saved = gguf::dequantize(ty, &data, values.len()).map_err(in_tensor(&name))?;
        let original = file.tensor_f32(&bytes, &name).map_err(in_tensor(&name))?;
        let (mut max_abs, mut err2, mut edit2) = (0.0f64, 0.0f64, 0.0f64);
        for ((&v, &s), &o) in values.iter().zip(&saved).zip(&original) {
            let e = f64::from(s) - f64::from(v);
            max_abs = max_abs.max(e.abs());
            err2 += e * e;
            edit2 += (f64::from(v) - f64::from(o)).powi(2);
        }
        report.push(SavedTensor {
            name: name.clone(),
            source_type: info.ggml_type.to_string(),
            saved_type: ty.to_string(),
            max_abs_error: max_abs,
            error_over_edit: if edit2 > 0.0 {
                (err2 / edit2).sqrt()
            } else {
                f64::NAN
            },
        });
        replace.insert(name, Replacement { ty, data });
    }
    let new = gguf::rewrite(&bytes, &replace)
        .map_err(|e| Error::InvalidInput(format!("{}: {e}", source.display())))?;
    factscope_common::write_atomic(out, &new)?;
    Ok(report)
}
