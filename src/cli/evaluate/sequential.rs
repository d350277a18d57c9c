//! The sequential part of an `evaluate` summary: retention and the curve of scores against
//! the number of edits, as Markdown and as line plots.

use std::fmt::Write;

use counterfact::report::Figure as ReportFigure;
use counterfact::Summary;
use viz::Figure;

/// A number to two decimals after `scale`, or `–` when it was not measured.
fn num(v: Option<f64>, scale: f64) -> String {
    v.map_or("–".to_string(), |v| format!("{:.2}", v * scale))
}

/// The sequential part of summary.md: edits, retention and the curve (empty for other runs).
pub(super) fn sequential_markdown(summary: &Summary) -> String {
    let Some(seq) = &summary.sequential else {
        return String::new();
    };
    let mut md = format!(
        "\n## Sequential editing\n\n{} edits kept in the model, {} per edit call{}.\n",
        seq.edits,
        seq.batch,
        if seq.failed > 0 {
            format!(" ({} case(s) of failed batches not edited)", seq.failed)
        } else {
            String::new()
        }
    );
    if let Some(r) = &summary.retention {
        let _ = write!(
            md,
            "\n| retention | before | after |\n|---|---|---|\n| held-out perplexity | {} | {} |\n| known facts top-1 (%) | {} | {} |\n",
            num(r.perplexity.before, 1.0),
            num(r.perplexity.after, 1.0),
            num(r.known_facts.before, 100.0),
            num(r.known_facts.after, 100.0)
        );
    }
    if !summary.curve.is_empty() {
        curve_markdown(&mut md, summary);
    }
    md
}

/// Appends the curve's table: a row per checkpoint with every metric, the perplexity and
/// the known-facts accuracy.
fn curve_markdown(md: &mut String, summary: &Summary) {
    // The benchmark's headline metrics first, in their usual order.
    let mut names: Vec<&str> = [
        "ES",
        "PS",
        "NS",
        "S",
        "efficacy",
        "paraphrase",
        "specificity",
    ]
    .into_iter()
    .filter(|m| summary.curve.iter().any(|p| p.metrics.contains_key(*m)))
    .collect();
    for p in &summary.curve {
        for k in p.metrics.keys() {
            if !names.contains(&k.as_str()) && !matches!(k.as_str(), "EM" | "PM" | "NM") {
                names.push(k);
            }
        }
    }
    let _ = write!(
        md,
        "\n| edits | {} | perplexity | known facts |\n|---|",
        names.join(" | ")
    );
    md.push_str(&"---|".repeat(names.len() + 2));
    md.push('\n');
    for p in &summary.curve {
        let cells: Vec<String> = names
            .iter()
            .map(|n| {
                let scale = if *n == "GE" { 1.0 } else { 100.0 };
                num(p.metrics.get(*n).copied(), scale)
            })
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            p.edits,
            cells.join(" | "),
            num(p.perplexity, 1.0),
            num(p.known_facts, 100.0)
        );
    }
    md.push_str(
        "\nRates in percent; GE where texts were generated (all edits; 0 edits with --pre-generation).\n",
    );
}

/// Line plots of a sequential run's curve: the rates (and known-facts accuracy) against the
/// number of edits, and the held-out perplexity; none for other runs.
pub(super) fn curve_figures(summary: &Summary) -> anyhow::Result<Vec<ReportFigure>> {
    if summary.curve.len() < 2 {
        return Ok(Vec::new());
    }
    let x: Vec<f64> = summary.curve.iter().map(|p| p.edits as f64).collect();
    let edits = summary.sequential.as_ref().map_or(0, |s| s.edits);
    let batch = summary.sequential.as_ref().map_or(0, |s| s.batch);
    let mut figures = vec![ReportFigure {
        title: format!(
            "{} after each number of sequential edits (batches of {batch}; every edited case so far)",
            summary.method
        ),
        svg: viz::LinePlot {
            series: rate_series(summary, &x),
            title: format!("{}: {edits} sequential edits", summary.method),
            x_label: "edits in the model".into(),
            y_label: "percent".into(),
        }
        .to_svg()?,
    }];
    if summary.curve.iter().any(|p| p.perplexity.is_some()) {
        figures.push(ReportFigure {
            title: "Held-out perplexity against the number of edits".into(),
            svg: viz::LinePlot {
                series: vec![viz::Series::new(
                    "perplexity",
                    x,
                    summary
                        .curve
                        .iter()
                        .map(|p| p.perplexity.unwrap_or(f64::NAN))
                        .collect(),
                )],
                title: format!("{}: held-out perplexity", summary.method),
                x_label: "edits in the model".into(),
                y_label: "perplexity".into(),
            }
            .to_svg()?,
        });
    }
    Ok(figures)
}

/// The curve's headline rates (and known-facts accuracy, when measured) in percent, one
/// series each, over the edit counts `x`.
fn rate_series(summary: &Summary, x: &[f64]) -> Vec<viz::Series> {
    let headline: &[&str] = if summary.has_zsre() {
        &counterfact::summary::ZSRE_METRICS
    } else {
        &["ES", "PS", "NS", "S"]
    };
    let mut series: Vec<viz::Series> = headline
        .iter()
        .filter(|m| summary.curve.iter().any(|p| p.metrics.contains_key(**m)))
        .map(|m| {
            viz::Series::new(
                counterfact::summary::metric_title(m),
                x.to_vec(),
                summary
                    .curve
                    .iter()
                    .map(|p| p.metrics.get(*m).map_or(f64::NAN, |v| 100.0 * v))
                    .collect(),
            )
        })
        .collect();
    if summary.curve.iter().any(|p| p.known_facts.is_some()) {
        series.push(viz::Series::new(
            "known facts top-1",
            x.to_vec(),
            summary
                .curve
                .iter()
                .map(|p| p.known_facts.map_or(f64::NAN, |v| 100.0 * v))
                .collect(),
        ));
    }
    series
}
