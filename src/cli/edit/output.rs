//! What `factscope edit` writes: the output checks before any work, the report, the saved
//! weight changes and models, and the GGUF written and read back.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use rome::RewriteRequest;
use serde::Serialize;

use super::methods::Edited;
use super::{Context, EditArgs, GgufEditedType, GgufType, Method};
use crate::cli::common::folder_gguf_export;
use crate::cli::predict::{predict, Prediction};

/// The edited model written as GGUF and read back (`--save-gguf`).
#[derive(Serialize)]
pub(super) struct GgufReport {
    pub(super) path: PathBuf,
    /// What each edited matrix became, with its rounding (from a .gguf model).
    pub(super) tensors: Vec<gpt_core::SavedTensor>,
    /// What the new file holds (from a Hugging Face folder).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) exported: Option<gpt_core::ExportedGguf>,
    /// The prompts' top-5 from the written file.
    pub(super) predictions: Vec<Prediction>,
}

/// What `--json` prints.
#[derive(Serialize)]
pub(super) struct EditReport {
    pub(super) method: String,
    pub(super) layers: Vec<usize>,
    pub(super) requests: Vec<RewriteRequest>,
    pub(super) before: Vec<Prediction>,
    pub(super) after: Vec<Prediction>,
    pub(super) seconds: f64,
    pub(super) delta_norms: Vec<f64>,
    pub(super) losses: Vec<Vec<f64>>,
    /// AlphaEdit: the directions each layer's null-space projector keeps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) kept: Option<Vec<usize>>,
    /// `--save-gguf`: the written file and what it predicts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) gguf: Option<GgufReport>,
}

/// Checks every place the edit is saved to, and the flags that need another flag, before the
/// model loads: a refused output never costs an edit.
pub(super) fn check_outputs(args: &EditArgs) -> anyhow::Result<()> {
    if let Some(dir) = &args.save_model {
        if dir.exists() {
            bail!(
                "--save-model {}: it already exists (the edited model is written to a new folder)",
                dir.display()
            );
        }
        // The new folder's parent must take it: check now, not after the edit.
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::cli::common::check_out_dir("--save-model", parent)?;
        }
    }
    if let Some(out) = &args.save_delta {
        crate::cli::common::check_out_file("--save-delta", out, false)?;
    }
    if args.key_history.is_some() && args.method != Method::AlphaEdit {
        bail!("--key-history is AlphaEdit's key history: it needs --method alphaedit");
    }
    if let Some(out) = &args.save_gguf {
        let from_gguf = gpt_core::is_gguf_path(&args.model.path()?);
        if from_gguf && (args.gguf_type.is_some() || args.gguf_pre.is_some()) {
            bail!(
                "--gguf-type and --gguf-pre are for a Hugging Face folder --model; a .gguf model keeps its file's types and tokenizer (--gguf-edited-type sets the edited matrices' type)"
            );
        }
        if !from_gguf && args.gguf_edited_type != GgufEditedType::Same {
            bail!(
                "--gguf-edited-type is for a .gguf --model; from a Hugging Face folder every matrix is written as --gguf-type"
            );
        }
        crate::cli::common::check_out_file("--save-gguf", out, false)?;
    }
    Ok(())
}

/// An edit's weight changes with the hyperparameters that made them: what `--save-delta`
/// saves.
pub(super) struct Changes {
    /// The weight changes, in order.
    pub(super) deltas: Vec<gpt_core::WeightDelta>,
    /// The method's hyperparameters as JSON.
    pub(super) hparams: serde_json::Value,
}

/// Splits an edit into its report (without the GGUF part, which [`save_gguf`] adds) and
/// the changes to save.
pub(super) fn report(cx: &Context<'_>, edited: Edited) -> (EditReport, Changes) {
    let outcome = edited.outcome;
    let report = EditReport {
        method: format!("{:?}", cx.args.method)
            .to_lowercase()
            .replace("rrome", "r-rome"),
        layers: edited.layers,
        requests: cx.requests.to_vec(),
        before: outcome.before,
        after: outcome.after,
        seconds: outcome.seconds,
        delta_norms: outcome.norms,
        losses: outcome.losses,
        kept: edited.kept,
        gguf: None,
    };
    let changes = Changes {
        deltas: outcome.deltas,
        hparams: edited.hparams,
    };
    (report, changes)
}

/// `--save-gguf`: writes the edited model as a new GGUF beside the source file's metadata
/// and untouched tensors, loads it back and takes the top-5 of each shown prompt from it (so
/// the report says what the written file predicts, not what it should).
pub(super) fn save_gguf(
    cx: &Context<'_>,
    loaded: &gpt_core::LoadedModel,
    out: &Path,
    deltas: &[gpt_core::WeightDelta],
    shown: &[Prediction],
) -> anyhow::Result<GgufReport> {
    let source = cx.args.model.path()?;
    let (tensors, exported) = if gpt_core::is_gguf_path(&source) {
        let mut edited: Vec<gpt_core::WeightId> = deltas.iter().map(|d| d.target()).collect();
        edited.dedup();
        let keep = match cx.args.gguf_edited_type {
            GgufEditedType::Same => gpt_core::EditedTensorType::Same,
            GgufEditedType::F16 => gpt_core::EditedTensorType::F16,
            GgufEditedType::F32 => gpt_core::EditedTensorType::F32,
        };
        let tensors = gpt_core::save_gguf(&loaded.model, &source, out, &edited, keep)
            .with_context(|| format!("--save-gguf {}", out.display()))?;
        (tensors, None)
    } else {
        let exported = loaded
            .model
            .export_gguf(out, &loaded.tokenizer, &export_options(cx, &source))
            .with_context(|| format!("--save-gguf {}", out.display()))?;
        (Vec::new(), Some(exported))
    };
    let written = gpt_core::load_model(out, gpt_core::LoadOptions::default())
        .with_context(|| format!("reading back {}", out.display()))?;
    let predictions = shown
        .iter()
        .map(|p| predict(&written, &p.prompt, 5))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(GgufReport {
        path: out.to_path_buf(),
        tensors,
        exported,
        predictions,
    })
}

/// How `--save-gguf` writes a Hugging Face folder's model.
fn export_options(cx: &Context<'_>, source: &Path) -> gpt_core::GgufExport {
    gpt_core::GgufExport {
        ty: cx.args.gguf_type.unwrap_or(GgufType::F16).ggml(),
        pre_tokenizer: cx.args.gguf_pre.clone(),
        ..folder_gguf_export(source)
    }
}

/// Refuses, before the edit, a `--save-gguf` of a folder's model that could not be written
/// (its family, its config or its tokenizer): a refused output never costs an edit.
pub(super) fn check_gguf_export(
    cx: &Context<'_>,
    loaded: &gpt_core::LoadedModel,
) -> anyhow::Result<()> {
    let source = cx.args.model.path()?;
    if let (Some(out), false) = (&cx.args.save_gguf, gpt_core::is_gguf_path(&source)) {
        let checked = loaded
            .model
            .check_gguf_export(&loaded.tokenizer, &export_options(cx, &source));
        if let Err(e) = checked {
            let hint = if e.to_string().contains("pre-tokenizer") {
                " (--gguf-pre NAME gives llama.cpp's name of the pre-tokenizer)"
            } else {
                ""
            };
            return Err(
                anyhow::Error::new(e).context(format!("--save-gguf {}{hint}", out.display()))
            );
        }
    }
    Ok(())
}

/// `--save-delta` and `--save-model`: the weight changes (with the requests and
/// hyperparameters) and the edited model as a new Hugging Face folder.
pub(super) fn save(
    cx: &Context<'_>,
    loaded: &gpt_core::LoadedModel,
    changes: &Changes,
) -> anyhow::Result<()> {
    if let Some(out) = &cx.args.save_delta {
        let list: Vec<&gpt_core::WeightDelta> = changes.deltas.iter().collect();
        rome::save_deltas(out, &list, cx.requests, &changes.hparams)
            .with_context(|| format!("--save-delta {}", out.display()))?;
    }
    if let Some(dir) = &cx.args.save_model {
        loaded
            .model
            .save_hf(dir, &loaded.tokenizer)
            .with_context(|| format!("--save-model {}", dir.display()))?;
    }
    Ok(())
}
