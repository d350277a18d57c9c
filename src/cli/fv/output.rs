//! The output step of `factscope fv`: the report, the files of `--out` and what is printed.

use std::path::Path;

use anyhow::Context as _;
use function_vectors::file::{self, FvMeta};
use function_vectors::{model_fingerprint, HeadScore, TaskAccuracy};
use gpt_core::HookableModel;
use viz::Figure;

use super::evaluation::Evaluated;
use super::extraction::Extracted;
use super::markdown::markdown;
use super::setup::sweep_stem;
use super::{Context, FvArgs};

/// The composed vector's evaluation (`--arithmetic`).
#[derive(serde::Serialize)]
pub(super) struct ArithmeticReport {
    /// The task the composed vector is evaluated on (BD).
    pub(super) target: String,
    /// `v_AD + v_BC − v_AC` from these tasks.
    pub(super) composed_from: [String; 3],
    /// Accuracy on BD's test items with the composed vector (its `+FV` columns; the other
    /// columns equal BD's own).
    pub(super) accuracy: TaskAccuracy,
}

/// What `--json` prints and `accuracy.json` holds.
#[derive(serde::Serialize)]
pub(super) struct Report<'a> {
    pub(super) model: String,
    pub(super) layer: usize,
    /// Demonstrations per ICL / shuffled prompt (`--shots`).
    pub(super) shots: usize,
    pub(super) top_heads: &'a [HeadScore],
    pub(super) tasks: Vec<TaskReport<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) arithmetic: Option<ArithmeticReport>,
}

/// One task's line of the [`Report`].
#[derive(serde::Serialize)]
pub(super) struct TaskReport<'a> {
    pub(super) task: &'a str,
    pub(super) file: &'a Path,
    pub(super) splits: [usize; 3],
    pub(super) valid_icl_correct: usize,
    pub(super) queries_filtered: bool,
    pub(super) scan_seconds: f64,
    pub(super) accuracy: &'a TaskAccuracy,
}

/// Gathers the report: the settings, the top heads and each task's splits, extraction
/// figures and accuracy.
pub(super) fn report<'a>(
    cx: &Context<'a>,
    extracted: &'a Extracted,
    accuracies: &'a [TaskAccuracy],
    arithmetic: Option<ArithmeticReport>,
) -> Report<'a> {
    Report {
        model: cx.loaded.path.display().to_string(),
        layer: cx.layer,
        shots: cx.args.shots,
        top_heads: &extracted.top,
        arithmetic,
        tasks: cx
            .builders
            .iter()
            .zip(&extracted.runs)
            .zip(accuracies)
            .map(|((b, (run, secs)), acc)| TaskReport {
                task: &b.task().name,
                file: &b.task().source,
                splits: [
                    run.splits.train.len(),
                    run.splits.valid.len(),
                    run.splits.test.len(),
                ],
                valid_icl_correct: run.icl_correct_valid.len(),
                queries_filtered: run.queries_filtered,
                scan_seconds: *secs,
                accuracy: acc,
            })
            .collect(),
    }
}

/// Writes every output into `out` (claimed before any work): the heads (JSON, heatmap), the
/// vectors (`fv.safetensors`), the accuracy (JSON, Markdown) and the layer-sweep plots.
pub(super) fn write_out(
    cx: &Context<'_>,
    out: &Path,
    extracted: &Extracted,
    evaluated: &Evaluated,
    report: &Report<'_>,
) -> anyhow::Result<()> {
    let model_name = crate::cli::trace::model_name(&cx.loaded.path);
    write_heads(cx, out, extracted, &report.model, &model_name)?;
    let c = cx.loaded.model.config();
    let args = cx.args;
    let meta = FvMeta {
        model_fingerprint: model_fingerprint(&cx.loaded.model)?,
        model_type: c.model_type.clone(),
        d_model: c.d_model,
        n_layers: c.n_layers,
        layer: cx.layer,
        heads: extracted.top.clone(),
        tasks: cx.builders.iter().map(|b| b.task().name.clone()).collect(),
        shots: args.shots,
        seed: args.seed,
        mean_trials: args.mean_trials,
        cie_trials: args.trials,
    };
    file::save(&out.join("fv.safetensors"), &meta, &evaluated.vectors)?;
    factscope_common::write_json_atomic(&out.join("accuracy.json"), report)?;
    factscope_common::write_atomic(&out.join("accuracy.md"), markdown(report).as_bytes())?;
    if !args.no_sweep {
        for acc in &evaluated.accuracies {
            let plot = function_vectors::figures::layer_sweep_plot(acc, &model_name);
            let stem = sweep_stem(cx, &acc.task);
            for ext in ["svg", "png"] {
                plot.save(&out.join(format!("{stem}.{ext}")))
                    .context("layer sweep plot")?;
            }
        }
    }
    Ok(())
}

/// Writes `heads.json` (the scan's settings, the mean and per-task AIE, the top heads) and
/// the heatmap `heads.{svg,png}`.
fn write_heads(
    cx: &Context<'_>,
    out: &Path,
    extracted: &Extracted,
    model: &str,
    model_name: &str,
) -> anyhow::Result<()> {
    let (args, c) = (cx.args, cx.loaded.model.config());
    let tasks: Vec<&str> = cx.builders.iter().map(|b| b.task().name.as_str()).collect();
    let what = if tasks.len() == 1 {
        tasks[0].to_string()
    } else {
        format!("mean over {} tasks", tasks.len())
    };
    let heads_json = serde_json::json!({
        "model": model,
        "n_layers": c.n_layers,
        "n_heads": c.n_heads,
        "trials": args.trials,
        "mean_trials": args.mean_trials,
        "shots": args.shots,
        "seed": args.seed,
        "aie": extracted.aie,
        "aie_per_task": tasks.iter().map(|t| t.to_string()).zip(extracted.aies.iter()).collect::<std::collections::BTreeMap<_, _>>(),
        "top_heads": extracted.top,
    });
    factscope_common::write_json_atomic(&out.join("heads.json"), &heads_json)?;
    let map =
        function_vectors::figures::heads_heatmap(&extracted.aie, &extracted.top, model_name, &what);
    for ext in ["svg", "png"] {
        map.save(&out.join(format!("heads.{ext}")))
            .context("heads heatmap")?;
    }
    Ok(())
}

/// Prints the report: JSON with `--json`, else the Markdown tables and where they were
/// written.
pub(super) fn print(args: &FvArgs, report: &Report<'_>) -> anyhow::Result<()> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", markdown(report));
        if let Some(out) = &args.out {
            println!("\nwrote {}", out.display());
        }
    }
    Ok(())
}
