//! The Markdown of `factscope fv`'s report (printed, and `accuracy.md`).

use function_vectors::{Accuracy, AccuracyTable};

use super::output::{ArithmeticReport, Report};

/// One accuracy with its interval, or `–` when nothing was measured.
fn cell(a: &Accuracy) -> String {
    if a.n == 0 {
        return "–".into();
    }
    format!("{:.3} [{:.3}, {:.3}]", a.rate, a.ci_low, a.ci_high)
}

/// Appends one accuracy table (a row per task: ICL, zero-shot and shuffled, each without
/// and with the vector) under `title`.
fn table(out: &mut String, title: &str, shots: usize, rows: &[(&str, &AccuracyTable)]) {
    out.push_str(&format!("\n{title}\n\n"));
    out.push_str(&format!(
        "| task | n | {shots}-shot ICL | zero-shot | zero-shot + FV | shuffled | shuffled + FV |\n"
    ));
    out.push_str("|---|---|---|---|---|---|---|\n");
    for (task, t) in rows {
        out.push_str(&format!(
            "| {task} | {} | {} | {} | {} | {} | {} |\n",
            t.icl.n,
            cell(&t.icl),
            cell(&t.zero_shot),
            cell(&t.zero_shot_fv),
            cell(&t.shuffled),
            cell(&t.shuffled_fv)
        ));
    }
}

/// The accuracy tables and top heads as Markdown.
pub(super) fn markdown(report: &Report<'_>) -> String {
    let mut out = format!(
        "# Function vectors\n\nModel `{}`; FV added at `blocks.{}.hook_resid_post` (last token). Top-1 accuracy of the first answer token, 95% Wilson intervals.\n",
        report.model, report.layer
    );
    let all: Vec<(&str, &AccuracyTable)> = report
        .tasks
        .iter()
        .map(|t| (t.task, &t.accuracy.all))
        .collect();
    table(&mut out, "## All test items", report.shots, &all);
    let good: Vec<(&str, &AccuracyTable)> = report
        .tasks
        .iter()
        .map(|t| (t.task, &t.accuracy.icl_correct))
        .collect();
    table(
        &mut out,
        "## Test items the model answers with clean ICL (the paper's protocol)",
        report.shots,
        &good,
    );
    if let Some(a) = &report.arithmetic {
        arithmetic_table(&mut out, report, a);
    }
    out.push_str("\n## Top heads (layer, head, AIE)\n\n");
    for h in report.top_heads {
        out.push_str(&format!("- ({}, {}) {:.4}\n", h.layer, h.head, h.score));
    }
    best_layers(&mut out, report);
    out
}

/// Appends the `--arithmetic` table: BD without a vector, with its own, and with the
/// composed one.
fn arithmetic_table(out: &mut String, report: &Report<'_>, a: &ArithmeticReport) {
    let own = report
        .tasks
        .iter()
        .find(|t| t.task == a.target)
        .map(|t| &t.accuracy.all);
    out.push_str(&format!(
        "\n## Vector arithmetic on {} (all test items, layer {})\n\n| vector | n | zero-shot + FV | shuffled + FV |\n|---|---|---|---|\n",
        a.target, report.layer
    ));
    if let Some(own) = own {
        out.push_str(&format!(
            "| none | {} | {} | {} |\n| v_BD (extracted) | {} | {} | {} |\n",
            own.zero_shot.n,
            cell(&own.zero_shot),
            cell(&own.shuffled),
            own.zero_shot_fv.n,
            cell(&own.zero_shot_fv),
            cell(&own.shuffled_fv)
        ));
    }
    let c = &a.accuracy.all;
    out.push_str(&format!(
        "| v_AD + v_BC − v_AC ({} + {} − {}) | {} | {} | {} |\n",
        a.composed_from[0],
        a.composed_from[1],
        a.composed_from[2],
        c.zero_shot_fv.n,
        cell(&c.zero_shot_fv),
        cell(&c.shuffled_fv)
    ));
}

/// Appends each task's best layer of the sweep (none without one), zero-shot and shuffled.
fn best_layers(out: &mut String, report: &Report<'_>) {
    for t in &report.tasks {
        let sweep = &t.accuracy.sweep;
        if sweep.layers.len() > 1 {
            let best = |acc: &[Accuracy]| {
                acc.iter()
                    .zip(&sweep.layers)
                    .max_by(|a, b| a.0.rate.total_cmp(&b.0.rate))
                    .map(|(a, l)| format!("layer {l}: {}", cell(a)))
                    .unwrap_or_default()
            };
            out.push_str(&format!(
                "\n{}: best layer, zero-shot + FV {}; shuffled + FV {}\n",
                t.task,
                best(&sweep.zero_shot_fv),
                best(&sweep.shuffled_fv)
            ));
        }
    }
}
