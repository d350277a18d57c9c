//! The editor of each `evaluate` method with its statistics and hyperparameters (shared with
//! the explorer).

use std::path::Path;

use gpt_core::{Editor, HookableModel};
use rome::{AlphaEditEditor, EmmetEditor, FtEditor, MemitEditor, RomeEditor, RomeVariant};

use super::{EvalMethod, EvaluateArgs};
use crate::cli::edit::{
    alphaedit_setup, emmet_setup, ft_hparams, key_stats_for, memit_setup, rome_hparams,
};

/// The editor for `method` with its statistics, and its hyperparameters as JSON.
pub(super) fn editor_for(
    args: &EvaluateArgs,
    loaded: &gpt_core::LoadedModel,
) -> anyhow::Result<(Option<Box<dyn Editor>>, serde_json::Value)> {
    build_editor(
        args.method,
        &EditorSettings {
            preset: &args.preset,
            layer: args.layer,
            stats: args.stats.as_deref(),
            target_cache: target_cache(args),
            // Independent batches are scored and undone before the next: no key history
            // carries over (it would protect keys of edits no longer in the model, and make
            // a batch's result depend on the order of shards and resumes). Sequential runs
            // keep every edit, so each batch's keys join the history, as the reference does.
            history_updates: args.sequential,
        },
        loaded,
    )
}

/// What an editor is built from besides its method.
pub struct EditorSettings<'a> {
    /// The hyperparameter preset (`auto`: the one made for the model).
    pub preset: &'a str,
    /// The layer, overriding the preset's.
    pub layer: Option<usize>,
    /// Key statistics from this file instead of the per-user cache.
    pub stats: Option<&'a Path>,
    /// The target-residual cache of MEMIT, AlphaEdit and EMMET.
    pub target_cache: Option<rome::TargetCache>,
    /// AlphaEdit: whether each computation's keys join the protected history (when edits
    /// stay in the model).
    pub history_updates: bool,
}

/// The editor for `method` (`None` for `none`) with its statistics, and its hyperparameters
/// as JSON.
pub fn build_editor(
    method: EvalMethod,
    settings: &EditorSettings<'_>,
    loaded: &gpt_core::LoadedModel,
) -> anyhow::Result<(Option<Box<dyn Editor>>, serde_json::Value)> {
    let (preset, layer, stats) = (settings.preset, settings.layer, settings.stats);
    let cache = || settings.target_cache.clone();
    Ok(match method {
        EvalMethod::None => (None, serde_json::Value::Null),
        EvalMethod::Rome | EvalMethod::RRome => {
            let variant = if method == EvalMethod::RRome {
                RomeVariant::RRome
            } else {
                RomeVariant::Original
            };
            let hp = rome_hparams(preset, layer, variant, loaded.model.config())?;
            let c = key_stats_for(loaded, hp.layer, stats)?.c()?;
            let value = serde_json::to_value(&hp)?;
            (Some(Box::new(RomeEditor::new(hp, Some(c)))), value)
        }
        EvalMethod::Memit => {
            let (hp, cs) = memit_setup(loaded, preset, layer, stats)?;
            let value = serde_json::to_value(&hp)?;
            let editor = MemitEditor::new(hp, cs).with_target_cache(cache());
            (Some(Box::new(editor)), value)
        }
        EvalMethod::AlphaEdit => {
            let (hp, cs) = alphaedit_setup(loaded, preset, layer, stats)?;
            let value = serde_json::to_value(&hp)?;
            let editor = AlphaEditEditor::new(hp, &cs)?
                .with_history_updates(settings.history_updates)
                .with_target_cache(cache());
            (Some(Box::new(editor)), value)
        }
        EvalMethod::Emmet => {
            let (hp, cs) = emmet_setup(loaded, preset, layer, stats)?;
            let value = serde_json::to_value(&hp)?;
            let editor = EmmetEditor::new(hp, cs).with_target_cache(cache());
            (Some(Box::new(editor)), value)
        }
        EvalMethod::Ft => {
            let hp = ft_hparams(preset, layer, loaded.model.config())?;
            let value = serde_json::to_value(&hp)?;
            (Some(Box::new(FtEditor { hparams: hp })), value)
        }
    })
}

/// The target-residual cache of a run: the per-user one, except with --no-target-cache and
/// in sequential runs (where no model state repeats).
fn target_cache(args: &EvaluateArgs) -> Option<rome::TargetCache> {
    (!args.no_target_cache && !args.sequential).then(rome::TargetCache::default_location)
}
