//! The summary of an `evaluate` run and the files it is written to (`summary.*`,
//! `report.html`); [`write_outputs`] also writes `compare`'s.

use std::path::Path;

use anyhow::Context as _;
use counterfact::report::{report_html, Figure as ReportFigure, Report};
use counterfact::{markdown_table, summarize_dir, Bootstrap, Summary};
use viz::{BarPlot, BarSeries, Figure};

use super::sequential::{curve_figures, sequential_markdown};

/// Summarises every shard's records in `dir` into `summary.json`, `summary.md`, bars and
/// `report.html` (the worst cases with their prompts from `cases`).
pub fn write_summary(
    dir: &Path,
    boot: Bootstrap,
    worst: usize,
    extra: &[ReportFigure],
    cases: &[counterfact::EditCase],
) -> anyhow::Result<Summary> {
    let (summary, records) = summarize_dir(dir, boot)?;
    factscope_common::write_json_atomic(&dir.join("summary.json"), &summary)?;
    let settings = counterfact::read_settings(dir)?;
    let mut details = crate::cli::common::invocation_details();
    details.extend(counterfact::report::run_details(&settings, &summary));
    let mut figures = curve_figures(&summary)?;
    figures.extend(extra.iter().cloned());
    let dataset = if summary.has_zsre() {
        "zsRE"
    } else {
        "CounterFact"
    };
    write_outputs(
        dir,
        &Outputs {
            stem: "summary",
            page: "report.html",
            title: &format!("{dataset}: {} on {}", summary.method, summary.model),
            details: &details,
            summaries: &[&summary],
            extra: &figures,
            records: &records,
            worst,
            cases,
            extra_markdown: &sequential_markdown(&summary),
        },
    )?;
    Ok(summary)
}

/// What [`write_outputs`] writes: a table, bars and an HTML report of some summaries.
pub struct Outputs<'a> {
    /// The stem of the table (`{stem}.md`) and the bars (`{stem}.svg`, `{stem}.png`).
    pub stem: &'a str,
    /// The HTML report's file name.
    pub page: &'a str,
    /// The report's title.
    pub title: &'a str,
    /// How the run was made (name, value), shown in the report.
    pub details: &'a [(String, String)],
    /// The runs shown, side by side.
    pub summaries: &'a [&'a Summary],
    /// Figures shown after the bars.
    pub extra: &'a [ReportFigure],
    /// The per-case records the worst cases are taken from.
    pub records: &'a [counterfact::CaseRecord],
    /// How many worst cases the report lists.
    pub worst: usize,
    /// The cases of the records, for the worst cases' prompts (empty: left out).
    pub cases: &'a [counterfact::EditCase],
    /// Markdown appended to the table.
    pub extra_markdown: &'a str,
}

/// Writes `{stem}.md` (the table), `{stem}.svg` / `.png` (bars with intervals, rendered
/// once) and the HTML report `page` of `summaries` into `dir`, with how the run was made
/// (`details`), `extra` figures and the `worst` cases of `records`.
pub fn write_outputs(dir: &Path, o: &Outputs<'_>) -> anyhow::Result<()> {
    let write = |name: String, bytes: &[u8]| {
        let path = dir.join(name);
        factscope_common::write_atomic(&path, bytes)
            .with_context(|| format!("writing {}", path.display()))
    };
    let stem = o.stem;
    write(
        format!("{stem}.md"),
        format!("{}{}", markdown_table(o.summaries, true), o.extra_markdown).as_bytes(),
    )?;
    let mut figures: Vec<ReportFigure> = Vec::new();
    if let Some(plot) = bars(o.summaries, true) {
        let svg = plot.to_svg()?;
        write(format!("{stem}.svg"), svg.as_bytes())?;
        write(
            format!("{stem}.png"),
            &viz::svg_to_png(&svg, viz::DEFAULT_PNG_SCALE)?,
        )?;
        figures.push(ReportFigure {
            title: "Scores with 95% intervals (bootstrap over cases; rates at least Wilson's)"
                .into(),
            svg,
        });
    }
    figures.extend(o.extra.iter().cloned());
    let html = report_html(&Report {
        title: o.title,
        details: o.details,
        summaries: o.summaries,
        figures: &figures,
        records: o.records,
        worst: o.worst,
        cases: o.cases,
    });
    write(o.page.to_string(), html.as_bytes())
}

/// Bars of the headline metrics (ES, PS, NS and S; zsRE runs: Efficacy, Paraphrase,
/// Specificity) in percent per run with their intervals, the first run's unedited scores as
/// the first series when `with_pre`; `None` when no summary has a finite value of any (a run
/// of no case, or of records without those metrics): figures draw what exists and never fail
/// a run for what it does not measure.
fn bars(summaries: &[&Summary], with_pre: bool) -> Option<BarPlot> {
    let zsre = !summaries.is_empty() && summaries.iter().all(|s| s.has_zsre());
    let mut tables: Vec<(String, &counterfact::summary::MetricTable)> = Vec::new();
    if with_pre {
        if let Some(first) = summaries.first() {
            tables.push(("unedited".into(), &first.pre));
        }
    }
    for s in summaries {
        tables.push((s.display_name().to_string(), &s.metrics));
    }
    // The benchmark's headline metrics first, then whatever else the runs measured.
    let headline: &[&str] = if zsre {
        &counterfact::summary::ZSRE_METRICS
    } else {
        &["ES", "PS", "NS", "S"]
    };
    let mut metrics: Vec<String> = headline.iter().map(|m| m.to_string()).collect();
    for (_, t) in &tables {
        for k in t.keys() {
            if !metrics.contains(k) && !matches!(k.as_str(), "GE" | "RS") {
                metrics.push(k.clone());
            }
        }
    }
    metrics.retain(|m| {
        tables
            .iter()
            .any(|(_, t)| t.get(m).is_some_and(|i| i.mean.is_finite()))
    });
    if metrics.is_empty() {
        return None;
    }
    let series = tables
        .into_iter()
        .map(|(name, table)| {
            let get = |m: &str, f: fn(&counterfact::Interval) -> f64| {
                table.get(m).map_or(f64::NAN, |i| 100.0 * f(i))
            };
            BarSeries::new(name, metrics.iter().map(|m| get(m, |i| i.mean)).collect()).with_band(
                metrics.iter().map(|m| get(m, |i| i.lo)).collect(),
                metrics.iter().map(|m| get(m, |i| i.hi)).collect(),
            )
        })
        .collect();
    Some(BarPlot {
        categories: metrics
            .iter()
            .map(|m| counterfact::summary::metric_title(m).to_string())
            .collect(),
        series,
        title: format!(
            "{} ({} cases)",
            if zsre { "zsRE" } else { "CounterFact" },
            summaries.first().map_or(0, |s| s.n)
        ),
        x_label: "metric".into(),
        y_label: "percent".into(),
    })
}
