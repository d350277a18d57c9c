//! The evaluation step of `factscope fv`: each task's vector and its accuracy (at every
//! layer unless `--no-sweep`), and the composed vector of `--arithmetic`.

use function_vectors::{
    evaluate_items, function_vector, summarize, EvalOptions, ExtractSettings, PromptBuilder,
    TaskAccuracy,
};
use gpt_core::tch::Tensor;
use gpt_core::HookableModel;

use super::extraction::Extracted;
use super::output::ArithmeticReport;
use super::Context;
use crate::cli::progress::ProgressView;

/// What the evaluation step measured.
pub(super) struct Evaluated {
    /// The evaluation settings (their `layers`: the sweep, or `--layer` alone).
    pub(super) options: EvalOptions,
    /// Each task's function vector (`[d_model]`), in task order.
    pub(super) vectors: Vec<Tensor>,
    /// Each task's accuracy, in task order.
    pub(super) accuracies: Vec<TaskAccuracy>,
}

/// Builds each task's vector from the shared top heads and evaluates it on the task's test
/// items, at every layer (the sweep) or at `--layer` only.
pub(super) fn evaluate_tasks(
    cx: &Context<'_>,
    extracted: &Extracted,
    settings: &ExtractSettings,
) -> anyhow::Result<Evaluated> {
    let args = cx.args;
    let layers: Vec<usize> = if args.no_sweep {
        vec![cx.layer]
    } else {
        (0..cx.loaded.model.config().n_layers).collect()
    };
    let options = EvalOptions {
        shots: args.shots,
        layers: layers.clone(),
        seed: args.seed,
        max_items: args.max_eval,
        max_rows: settings.max_rows,
    };
    let mut vectors = Vec::new();
    let mut accuracies = Vec::new();
    for (builder, (run, _)) in cx.builders.iter().zip(&extracted.runs) {
        let name = &builder.task().name;
        let v = function_vector(&cx.loaded.model, &run.mean, &extracted.top)?;
        let mut view = ProgressView::shown_if(!args.json, name);
        let items = evaluate_items(
            &cx.loaded.model,
            builder,
            &run.splits,
            &v,
            &options,
            &mut view.callback(),
        )?;
        view.finish();
        accuracies.push(summarize(name, &items, &layers, cx.layer, args.shots)?);
        vectors.push(v);
    }
    Ok(Evaluated {
        options,
        vectors,
        accuracies,
    })
}

/// `--arithmetic`: evaluates `v_AD + v_BC − v_AC` on BD's test items at `--layer` (the
/// tasks and vectors are in the order AD, BC, AC, BD).
pub(super) fn evaluate_arithmetic(
    cx: &Context<'_>,
    extracted: &Extracted,
    evaluated: &Evaluated,
) -> anyhow::Result<ArithmeticReport> {
    let (layer, vectors) = (cx.layer, &evaluated.vectors);
    let [ad, bc, ac, bd] = [0, 1, 2, 3].map(|i| &cx.builders[i]);
    let composed =
        function_vectors::arithmetic::compose_vectors(&vectors[0], &vectors[1], &vectors[2])?;
    let at_layer = EvalOptions {
        layers: vec![layer],
        ..evaluated.options.clone()
    };
    let mut view = ProgressView::shown_if(
        !cx.args.json,
        &format!("{} (v_AD + v_BC − v_AC)", bd.task().name),
    );
    let items = evaluate_items(
        &cx.loaded.model,
        bd,
        &extracted.runs[3].0.splits,
        &composed,
        &at_layer,
        &mut view.callback(),
    )?;
    view.finish();
    let name = |b: &PromptBuilder<'_>| b.task().name.clone();
    Ok(ArithmeticReport {
        target: name(bd),
        composed_from: [name(ad), name(bc), name(ac)],
        accuracy: summarize(
            &format!("{} (v_AD + v_BC − v_AC)", name(bd)),
            &items,
            &[layer],
            layer,
            cx.args.shots,
        )?,
    })
}
