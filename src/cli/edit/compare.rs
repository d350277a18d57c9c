//! Editing between two looks at the model: each method's changes computed and applied, with
//! the top-5 predictions of the edited and the check prompts before and after.

use std::time::Instant;

use gpt_core::EditableModel;
use rome::{
    compute_rome, context_templates, KeyStats, RewriteRequest, RomeHparams, RomeVariant, Schedule,
};

use crate::cli::predict::{predict, Prediction};
use crate::cli::progress::ProgressView;

/// What [`edit_and_compare`] did: the edits (applied to the model, with their undo records),
/// and the predictions before and after.
pub struct Outcome {
    /// The weight changes, in order.
    pub deltas: Vec<gpt_core::WeightDelta>,
    /// Their undo records (undo in reverse order to restore the model).
    pub undos: Vec<gpt_core::EditUndo>,
    /// Top-5 before, for each request's prompt and each check prompt.
    pub before: Vec<Prediction>,
    /// Top-5 after.
    pub after: Vec<Prediction>,
    /// Seconds the edits took (templates included).
    pub seconds: f64,
    /// `‖ΔW‖_F` of each edit.
    pub norms: Vec<f64>,
    /// The v* losses of each edit.
    pub losses: Vec<Vec<f64>>,
}

/// The weight changes an edit made (already applied), with their undo records, norms and
/// optimisation losses.
struct Applied {
    deltas: Vec<gpt_core::WeightDelta>,
    undos: Vec<gpt_core::EditUndo>,
    norms: Vec<f64>,
    losses: Vec<Vec<f64>>,
}

/// Runs `edit` (which computes and applies changes to the model) between the top-5
/// predictions for each request's prompt and each check prompt, before and after; the
/// seconds counted are the edit's.
fn compare(
    loaded: &mut gpt_core::LoadedModel,
    requests: &[RewriteRequest],
    checks: &[String],
    edit: impl FnOnce(&mut gpt_core::LoadedModel) -> anyhow::Result<Applied>,
) -> anyhow::Result<Outcome> {
    let shown: Vec<String> = requests
        .iter()
        .map(RewriteRequest::filled)
        .chain(checks.iter().cloned())
        .collect();
    let predict_all = |loaded: &gpt_core::LoadedModel| {
        shown
            .iter()
            .map(|p| predict(loaded, p, 5))
            .collect::<anyhow::Result<Vec<_>>>()
    };
    let before = predict_all(loaded)?;
    let started = Instant::now();
    let applied = edit(loaded)?;
    let seconds = started.elapsed().as_secs_f64();
    let after = predict_all(loaded)?;
    Ok(Outcome {
        deltas: applied.deltas,
        undos: applied.undos,
        before,
        after,
        seconds,
        norms: applied.norms,
        losses: applied.losses,
    })
}

/// Computes and applies ROME edits of `requests` one after another (each on the model
/// edited by the earlier ones), with the top-5 predictions before and after.
pub fn edit_and_compare(
    loaded: &mut gpt_core::LoadedModel,
    requests: &[RewriteRequest],
    hp: &RomeHparams,
    stats: &KeyStats,
    checks: &[String],
) -> anyhow::Result<Outcome> {
    let c = stats.c()?;
    compare(loaded, requests, checks, |loaded| {
        let templates = context_templates(
            &loaded.model,
            &loaded.tokenizer,
            &hp.context_template_length_params,
            hp.template_seed,
        )?;
        let mut applied = Applied {
            deltas: Vec::new(),
            undos: Vec::new(),
            norms: Vec::new(),
            losses: Vec::new(),
        };
        let method = match hp.variant {
            RomeVariant::RRome => "r-ROME",
            _ => "ROME",
        };
        for (i, r) in requests.iter().enumerate() {
            // Each request's v* optimisation, step by step (`rome::V_STAGE`).
            let title = if requests.len() == 1 {
                method.to_string()
            } else {
                format!("{method} request {}/{}", i + 1, requests.len())
            };
            let mut view = ProgressView::new(&title);
            let edit = compute_rome(
                &loaded.model,
                &loaded.tokenizer,
                r,
                hp,
                Some(&c),
                &templates,
                Schedule::Fast,
                &mut view.callback(),
            )?;
            view.finish();
            applied.undos.push(loaded.model.apply(&edit.delta)?);
            applied.norms.push(edit.delta_norm);
            applied.losses.push(edit.losses);
            applied.deltas.push(edit.delta);
        }
        Ok(applied)
    })
}

/// Fine-tunes one matrix on all `requests` at once (FT-L) and applies the change, with the
/// top-5 predictions before and after.
pub(super) fn ft_and_compare(
    loaded: &mut gpt_core::LoadedModel,
    requests: &[RewriteRequest],
    hp: &rome::FtHparams,
    checks: &[String],
) -> anyhow::Result<Outcome> {
    compare(loaded, requests, checks, |loaded| {
        // One optimisation over all the requests, step by step (`rome::FT_STAGE`).
        let mut view = ProgressView::new("FT-L");
        let edit = rome::compute_ft(
            &loaded.model,
            &loaded.tokenizer,
            requests,
            hp,
            &mut view.callback(),
        )?;
        view.finish();
        let undo = loaded.model.apply(&edit.delta)?;
        let dense = edit
            .delta
            .to_dense(&loaded.model.weight(edit.delta.target())?.size())?;
        Ok(Applied {
            norms: vec![dense.f_norm()?.f_double_value(&[])?],
            deltas: vec![edit.delta],
            undos: vec![undo],
            losses: vec![edit.losses],
        })
    })
}

/// Computes a layered method's changes for all `requests` at once (`compute` gets the model,
/// the context templates of `z` and a progress callback, and returns the changes and z
/// losses) and applies them, with the top-5 predictions before and after.
pub(super) fn layered_and_compare(
    loaded: &mut gpt_core::LoadedModel,
    requests: &[RewriteRequest],
    z: &RomeHparams,
    checks: &[String],
    compute: impl FnOnce(
        &mut gpt_core::LoadedModel,
        &[String],
        &mut gpt_core::progress::ProgressFn<'_>,
    ) -> rome::Result<(Vec<gpt_core::WeightDelta>, Vec<Vec<f64>>)>,
) -> anyhow::Result<Outcome> {
    compare(loaded, requests, checks, |loaded| {
        let templates = context_templates(
            &loaded.model,
            &loaded.tokenizer,
            &z.context_template_length_params,
            z.template_seed,
        )?;
        let mut view = ProgressView::new("");
        let (deltas, losses) = compute(loaded, &templates, &mut view.callback())?;
        view.finish();
        let (mut undos, mut norms) = (Vec::new(), Vec::new());
        for d in &deltas {
            undos.push(loaded.model.apply(d)?);
            let dense = d.to_dense(&loaded.model.weight(d.target())?.size())?;
            norms.push(dense.f_norm()?.f_double_value(&[])?);
        }
        Ok(Applied {
            deltas,
            undos,
            norms,
            losses,
        })
    })
}
