//! The extraction step of `factscope fv`: each task's mean head activations and head scan,
//! then the top heads of the indirect effect averaged over the tasks.

use std::time::Instant;

use function_vectors::{
    extract, mean_grid, top_heads, ExtractSettings, Extraction, HeadScore, PromptBuilder,
    HEAD_SCAN_STAGE,
};

use super::Context;
use crate::cli::progress::ProgressView;

/// What the extraction step found.
pub(super) struct Extracted {
    /// Each task's extraction with the seconds its head scan took, in task order.
    pub(super) runs: Vec<(Extraction, f64)>,
    /// Each task's average indirect effect per head (`[layer][head]`).
    pub(super) aies: Vec<Vec<Vec<f64>>>,
    /// Their mean over the tasks (`[layer][head]`): what the heads are chosen by.
    pub(super) aie: Vec<Vec<f64>>,
    /// The `--heads` top heads of `aie`.
    pub(super) top: Vec<HeadScore>,
}

/// Extracts every task in turn, then picks the top heads of their mean indirect effect (one
/// head set for all tasks, so several tasks share the heads).
pub(super) fn extract_tasks(
    cx: &Context<'_>,
    settings: &ExtractSettings,
) -> anyhow::Result<Extracted> {
    let runs = cx
        .builders
        .iter()
        .map(|builder| extract_task(cx, builder, settings))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let aies: Vec<Vec<Vec<f64>>> = runs.iter().map(|(r, _)| r.scan.aie()).collect();
    let aie = mean_grid(&aies)?;
    let top = top_heads(&aie, cx.args.heads);
    Ok(Extracted {
        runs,
        aies,
        aie,
        top,
    })
}

/// Extracts one task with progress shown (unless `--json`), and says on stderr how many
/// valid queries clean ICL answers and how long the extraction and its head scan took.
fn extract_task(
    cx: &Context<'_>,
    builder: &PromptBuilder<'_>,
    settings: &ExtractSettings,
) -> anyhow::Result<(Extraction, f64)> {
    let name = &builder.task().name;
    let mut view = ProgressView::shown_if(!cx.args.json, name);
    let started = Instant::now();
    // The head scan's time is reported on its own: it is the part the schedule changes.
    let mut scan_started = None;
    let mut show = view.callback();
    let run = extract(&cx.loaded.model, builder, settings, &mut |p| {
        if p.stage == HEAD_SCAN_STAGE && scan_started.is_none() {
            scan_started = Some(Instant::now());
        }
        show(p)
    })?;
    drop(show);
    view.finish();
    let scan_seconds = scan_started.map_or(0.0, |t| t.elapsed().as_secs_f64());
    if !cx.args.json {
        eprintln!(
            "{name}: {} of {} valid queries right with {}-shot ICL; extraction {:.1} s (head scan {:.1} s)",
            run.icl_correct_valid.len(),
            run.splits.valid.len(),
            cx.args.shots,
            started.elapsed().as_secs_f64(),
            scan_seconds
        );
        if !run.queries_filtered {
            eprintln!("{name}: warning: the model answers no valid query with ICL; using every valid query");
        }
    }
    Ok((run, scan_seconds))
}
