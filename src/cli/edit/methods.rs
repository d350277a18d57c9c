//! The edit step of `factscope edit`: each method's hyperparameters and statistics, its
//! changes computed and applied between the predictions before and after.

use std::path::Path;

use anyhow::Context as _;
use gpt_core::HookableModel;
use rome::{RomeVariant, StatsMethod};

use super::compare::{edit_and_compare, ft_and_compare, layered_and_compare, Outcome};
use super::setup::{
    alphaedit_setup, emmet_setup, ft_hparams, key_stats_for, memit_setup, rome_hparams,
};
use super::{Context, Method};

/// What the edit step did.
pub(super) struct Edited {
    /// The changes (applied to the model) and the predictions before and after.
    pub(super) outcome: Outcome,
    /// The edited layers.
    pub(super) layers: Vec<usize>,
    /// The method's hyperparameters as JSON (saved with `--save-delta`).
    pub(super) hparams: serde_json::Value,
    /// AlphaEdit: the directions each layer's null-space projector keeps.
    pub(super) kept: Option<Vec<usize>>,
}

/// Edits the model with `--method`.
pub(super) fn edit(cx: &Context<'_>, loaded: &mut gpt_core::LoadedModel) -> anyhow::Result<Edited> {
    match cx.args.method {
        Method::Ft => edit_ft(cx, loaded),
        Method::Memit => edit_memit(cx, loaded),
        Method::AlphaEdit => edit_alphaedit(cx, loaded),
        Method::Emmet => edit_emmet(cx, loaded),
        Method::Rome | Method::RRome => edit_rome(cx, loaded),
    }
}

/// ROME or r-ROME: the requests edited one after another at one layer.
fn edit_rome(cx: &Context<'_>, loaded: &mut gpt_core::LoadedModel) -> anyhow::Result<Edited> {
    let args = cx.args;
    let variant = if args.method == Method::RRome {
        RomeVariant::RRome
    } else {
        RomeVariant::Original
    };
    let hp = rome_hparams(&args.preset, args.layer, variant, loaded.model.config())?;
    let stats = key_stats_for(loaded, hp.layer, args.stats.as_deref())?;
    Ok(Edited {
        outcome: edit_and_compare(loaded, cx.requests, &hp, &stats, &args.check)?,
        layers: vec![hp.layer],
        hparams: serde_json::to_value(&hp)?,
        kept: None,
    })
}

/// FT-L: one matrix fine-tuned on all requests at once.
fn edit_ft(cx: &Context<'_>, loaded: &mut gpt_core::LoadedModel) -> anyhow::Result<Edited> {
    let args = cx.args;
    let hp = ft_hparams(&args.preset, args.layer, loaded.model.config())?;
    Ok(Edited {
        outcome: ft_and_compare(loaded, cx.requests, &hp, &args.check)?,
        layers: vec![hp.layer],
        hparams: serde_json::to_value(&hp)?,
        kept: None,
    })
}

/// MEMIT: all requests at once over several layers.
fn edit_memit(cx: &Context<'_>, loaded: &mut gpt_core::LoadedModel) -> anyhow::Result<Edited> {
    let args = cx.args;
    let (hp, cs) = memit_setup(loaded, &args.preset, args.layer, args.stats.as_deref())?;
    edit_with_stats(cx, loaded, &hp, &cs)
}

/// EMMET: all requests at once with equality constraints.
fn edit_emmet(cx: &Context<'_>, loaded: &mut gpt_core::LoadedModel) -> anyhow::Result<Edited> {
    let args = cx.args;
    let (hp, cs) = emmet_setup(loaded, &args.preset, args.layer, args.stats.as_deref())?;
    edit_with_stats(cx, loaded, &hp, &cs)
}

/// A joint method of key statistics `cs` (MEMIT, EMMET): all requests at once.
fn edit_with_stats<H: StatsMethod + serde::Serialize>(
    cx: &Context<'_>,
    loaded: &mut gpt_core::LoadedModel,
    hp: &H,
    cs: &[gpt_core::tch::Tensor],
) -> anyhow::Result<Edited> {
    let outcome = layered_and_compare(
        loaded,
        cx.requests,
        hp.z(),
        &cx.args.check,
        |loaded, templates, progress| {
            let e = hp.compute(
                &mut loaded.model,
                &loaded.tokenizer,
                cx.requests,
                cs,
                templates,
                None,
                progress,
            )?;
            Ok((e.deltas, e.losses))
        },
    )?;
    Ok(Edited {
        outcome,
        layers: hp.layers().to_vec(),
        hparams: serde_json::to_value(hp)?,
        kept: None,
    })
}

/// AlphaEdit: MEMIT with each layer's change in the null space of its key statistics and
/// of the key history of earlier edits (`--key-history`, read when it exists and written
/// back with this edit's keys).
fn edit_alphaedit(cx: &Context<'_>, loaded: &mut gpt_core::LoadedModel) -> anyhow::Result<Edited> {
    let args = cx.args;
    let (hp, cs) = alphaedit_setup(loaded, &args.preset, args.layer, args.stats.as_deref())?;
    // The key histories of the edits written before (--key-history), else empty.
    let mut editor = rome::AlphaEditEditor::new(hp.clone(), &cs)?;
    if let Some(dir) = args.key_history.as_deref().filter(|d| d.exists()) {
        editor
            .load_histories(dir)
            .with_context(|| format!("--key-history {}", dir.display()))?;
    }
    let kept = Some(editor.kept());
    let mut keys_after = Vec::new();
    let outcome = layered_and_compare(
        loaded,
        cx.requests,
        &hp.z,
        &args.check,
        |loaded, templates, progress| {
            let e = rome::compute_alphaedit(
                &mut loaded.model,
                &loaded.tokenizer,
                cx.requests,
                &hp,
                &editor.projectors,
                &editor.histories,
                templates,
                progress,
            )?;
            keys_after = e.keys_after;
            Ok((e.deltas, e.losses))
        },
    )?;
    if let Some(dir) = &args.key_history {
        save_key_history(&mut editor, &keys_after, dir)?;
    }
    Ok(Edited {
        outcome,
        layers: hp.layers.clone(),
        hparams: serde_json::to_value(&hp)?,
        kept,
    })
}

/// Adds this edit's keys to the key history and writes it to `dir`, for the next edit of
/// this edited model.
fn save_key_history(
    editor: &mut rome::AlphaEditEditor,
    keys_after: &[gpt_core::tch::Tensor],
    dir: &Path,
) -> anyhow::Result<()> {
    for (h, k) in editor.histories.iter_mut().zip(keys_after) {
        h.add(k)?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("--key-history {}", dir.display()))?;
    editor
        .save_histories(dir)
        .with_context(|| format!("--key-history {}", dir.display()))?;
    Ok(())
}
