//! A self-contained HTML report of one or more runs: the summary table, figures given as
//! SVG (bars with intervals, causal traces), and the worst cases. No scripts, no network.

use crate::dataset::EditCase;
use crate::record::{CaseRecord, Generation};
use crate::summary::{cell, metric_title, table_metrics, MetricTable, Summary};

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A figure to embed: a title and an SVG document.
#[derive(Clone, Debug)]
pub struct Figure {
    /// The caption.
    pub title: String,
    /// The SVG markup (embedded inline).
    pub svg: String,
}

fn pct(x: Option<f64>) -> String {
    x.map_or("–".into(), |v| format!("{:.1}", 100.0 * v))
}

/// What each column of the tables means, for the glossary under the summary.
const GLOSSARY: [(&str, &str); 14] = [
    ("ES", "Efficacy Score: share of cases whose rewrite prompt gives the new target a higher probability than the true one."),
    ("PS", "Paraphrase Score: the same on paraphrases of the rewrite prompt (generalisation)."),
    ("NS", "Neighbourhood Score: share of prompts about other subjects of the same relation that still prefer the true object (specificity; higher is better)."),
    ("S", "Score: harmonic mean of ES, PS and NS."),
    ("EM", "Efficacy Magnitude: mean p(new) − p(true) on the rewrite prompt, in percentage points."),
    ("PM", "Paraphrase Magnitude: the same on paraphrases, in percentage points."),
    ("NM", "Neighbourhood Magnitude: mean p(true) − p(new) on neighbourhood prompts, in percentage points."),
    ("GE", "Generation Entropy: ×100 weighted bi- and tri-gram entropy of texts generated about the subject (fluency; low means repetitive)."),
    ("ES_gen", "Whether the greedy continuation of the rewrite prompt contains the new target (no teacher forcing)."),
    ("PS_gen", "The same for the paraphrase prompts."),
    ("efficacy", "zsRE Efficacy: top-1 accuracy of the new answer's tokens after the question, under teacher forcing."),
    ("paraphrase", "zsRE Paraphrase: the same after a rephrased question."),
    ("specificity", "zsRE Specificity: top-1 accuracy of an unrelated question's answer (should not change)."),
    ("s/case", "Wall seconds per case: the edit, the scoring and the generation."),
];

/// What a report page shows (see [`report_html`]).
#[derive(Clone, Copy, Debug)]
pub struct Report<'a> {
    /// The page's title.
    pub title: &'a str,
    /// How the run was made: label and value rows (date, command, version, model, data,
    /// hyperparameters).
    pub details: &'a [(String, String)],
    /// The runs, side by side (the first's unedited scores as a row).
    pub summaries: &'a [&'a Summary],
    /// Figures, in order.
    pub figures: &'a [Figure],
    /// The per-case records the worst cases are taken from.
    pub records: &'a [CaseRecord],
    /// How many worst cases to list (0: none).
    pub worst: usize,
    /// The cases the records came from, for the worst cases' paraphrase and neighbourhood
    /// prompts (empty: those are left out).
    pub cases: &'a [EditCase],
}

/// The report page: how the run was made, the summaries in a table with a glossary of its
/// columns, the figures, and the `worst` cases of `records` by efficacy magnitude after the
/// edit (zsRE cases: by efficacy, the new answer's token accuracy) — scores before and after,
/// then each case's prompts, generated texts before and after, and its record. Works at
/// phone width: wide tables scroll, figures shrink.
pub fn report_html(report: &Report<'_>) -> String {
    let Report {
        title,
        details,
        summaries,
        figures,
        records,
        worst,
        cases,
    } = *report;
    let mut h = String::new();
    head(&mut h, title);
    if !details.is_empty() {
        details_table(&mut h, details);
    }
    let columns = table_metrics(summaries);
    summary_table(&mut h, summaries, &columns);
    glossary(&mut h, &columns);
    for f in figures {
        h.push_str(&format!(
            "<figure role=\"img\" aria-label=\"{}\"><figcaption>{}</figcaption>{}</figure>",
            escape(&f.title),
            escape(&f.title),
            f.svg
        ));
    }
    let mut edited: Vec<&CaseRecord> = records.iter().filter(|r| r.post.is_some()).collect();
    if !edited.is_empty() && worst > 0 {
        if edited.iter().any(|r| r.pre.top1.is_some()) {
            worst_zsre(&mut h, &mut edited, worst);
        } else {
            worst_counterfact(&mut h, &mut edited, worst);
        }
        case_details(&mut h, &edited[..worst.min(edited.len())], cases);
    }
    h.push_str("</body></html>\n");
    h
}

/// The page's head (its style sheet: no scripts, no external files) and its heading.
fn head(h: &mut String, title: &str) {
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    h.push_str(&format!("<title>{}</title>", escape(title)));
    h.push_str(
        "<style>body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222}\
.scroll{overflow-x:auto}table{border-collapse:collapse;margin:1em 0;font-size:14px}caption{text-align:left;font-weight:600;padding:.3em 0}\
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right;white-space:nowrap}\
th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}td.text{text-align:left;max-width:420px;white-space:normal}\
table.details{table-layout:fixed;width:100%}table.details th{width:9em}table.details td{text-align:left;white-space:normal;overflow-wrap:anywhere}dl.glossary{font-size:13px;color:#333}dl.glossary dt{font-weight:600;float:left;clear:left;width:6em}dl.glossary dd{margin:0 0 .3em 6.5em}\
figure{margin:1.5em 0}figure svg{max-width:100%;height:auto}details{margin:.4em 0;font-size:14px}summary{cursor:pointer}dl.case dt{font-weight:600;margin-top:.4em}dl.case dd{margin-left:1.5em}dl.case pre{white-space:pre-wrap;overflow-wrap:anywhere;font-size:12px;background:#f7f7f7;padding:.5em}figcaption{font-weight:600;margin-bottom:.5em}.note{color:#555;font-size:13px}</style></head><body>",
    );
    h.push_str(&format!("<h1>{}</h1>", escape(title)));
}

/// "How this run was made": one row per detail.
fn details_table(h: &mut String, details: &[(String, String)]) {
    h.push_str("<h2>How this run was made</h2><div class=\"scroll\"><table class=\"details\"><caption>Run details</caption><tbody>");
    for (label, value) in details {
        h.push_str(&format!(
            "<tr><th scope=\"row\">{}</th><td>{}</td></tr>",
            escape(label),
            escape(value)
        ));
    }
    h.push_str("</tbody></table></div>");
}

/// Opens a scrolling table with `caption` and column `headers` (both markup), up to its
/// body.
fn open_table<'a>(h: &mut String, caption: &str, headers: impl IntoIterator<Item = &'a str>) {
    h.push_str(&format!(
        "<div class=\"scroll\"><table><caption>{caption}</caption><thead><tr>"
    ));
    for header in headers {
        h.push_str(&format!("<th scope=\"col\">{header}</th>"));
    }
    h.push_str("</tr></thead><tbody>");
}

/// The summary: the unedited row (of the first summary), one row per summary in the
/// `columns`, then the models and the tables' notes.
fn summary_table(h: &mut String, summaries: &[&Summary], columns: &[&str]) {
    h.push_str("<h2>Summary</h2>");
    let titles = columns.iter().map(|m| metric_title(m));
    open_table(
        h,
        "Scores after the edit, with the unedited model on the same cases as the first row",
        ["run", "n"].into_iter().chain(titles).chain(["s/case"]),
    );
    if let Some(first) = summaries.first() {
        summary_row(h, columns, ("unedited", first.n), &first.pre, None);
    }
    for s in summaries {
        summary_row(
            h,
            columns,
            (s.display_name(), s.n),
            &s.metrics,
            Some(s.seconds_per_case),
        );
    }
    let mut models: Vec<&str> = summaries.iter().map(|s| s.model.as_str()).collect();
    models.sort_unstable();
    models.dedup();
    h.push_str(&format!(
        "</tbody></table></div><p class=\"note\">Model: {}.</p>",
        escape(&models.join(", "))
    ));
    for note in crate::summary::table_notes(summaries) {
        h.push_str(&format!("<p class=\"note\">{}</p>", escape(note)));
    }
}

/// One row of the summary: the run's name and case count, `table`'s cell of each column,
/// the seconds per case.
fn summary_row(
    h: &mut String,
    columns: &[&str],
    (name, n): (&str, usize),
    table: &MetricTable,
    seconds: Option<f64>,
) {
    h.push_str(&format!("<tr><td>{}</td><td>{n}</td>", escape(name)));
    for m in columns {
        // "mean [lo, hi]": the interval on a second, smaller line.
        let c = cell(table, m);
        match c.split_once(" [") {
            Some((mean, ci)) => h.push_str(&format!(
                "<td>{}<br><small>[{}</small></td>",
                escape(mean),
                escape(ci)
            )),
            None => h.push_str(&format!("<td>{}</td>", escape(&c))),
        }
    }
    h.push_str(&format!(
        "<td>{}</td></tr>",
        seconds.map_or("–".into(), |s| format!("{s:.2}"))
    ));
}

/// What the summary's `columns` (and seconds per case) mean.
fn glossary(h: &mut String, columns: &[&str]) {
    h.push_str("<dl class=\"glossary\">");
    for (name, meaning) in GLOSSARY
        .iter()
        .filter(|(name, _)| columns.contains(name) || *name == "s/case")
    {
        h.push_str(&format!(
            "<dt>{}</dt><dd>{}</dd>",
            escape(metric_title(name)),
            escape(meaning)
        ));
    }
    h.push_str("</dl>");
}

/// The `worst` CounterFact cases of `edited` by efficacy magnitude after the edit, with
/// the start of the first generated text.
fn worst_counterfact(h: &mut String, edited: &mut [&CaseRecord], worst: usize) {
    let em = |r: &CaseRecord| r.post.as_ref().and_then(|m| m.em).unwrap_or(f64::INFINITY);
    edited.sort_by(|a, b| em(a).total_cmp(&em(b)));
    h.push_str(&format!(
        "<h2>The {} worst cases (lowest p(new) − p(true) after the edit)</h2>",
        worst.min(edited.len())
    ));
    h.push_str("<p class=\"note\">Scores before the edit are given beside those after it: a neighbourhood that already failed before the edit is not the method's doing. The generated texts are the start of the first fluency sample before and after the edit (all of it on hover); each case's prompts, all its texts and its record follow the table (click a case).</p>");
    open_table(
        h,
        "Worst cases by efficacy magnitude (EM) after the edit",
        [
            "case",
            "subject",
            "prompt",
            "new",
            "true",
            "EM pre",
            "EM post",
            "PS pre",
            "PS post",
            "NS pre",
            "NS post",
            "generated before the edit",
            "generated after the edit",
        ],
    );
    for r in edited.iter().take(worst) {
        let post = r.post.as_ref();
        let first = |g: &Option<Generation>| {
            g.as_ref()
                .and_then(|g| g.texts.first())
                .map_or("–".to_string(), |t| text_start(t))
        };
        let (before, text) = (first(&r.pre_generation), first(&r.generation));
        h.push_str(&format!(
            "<tr id=\"case-{id}\"><td><a href=\"#case-{id}-details\">{id}</a></td><td class=\"text\">{}</td><td class=\"text\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"text\">{before}</td><td class=\"text\">{text}</td></tr>",
            escape(&r.request.subject),
            escape(&r.request.filled()),
            escape(&r.request.target),
            escape(&r.target_true),
            pct(r.pre.em),
            pct(post.and_then(|m| m.em)),
            pct(r.pre.ps),
            pct(post.and_then(|m| m.ps)),
            pct(r.pre.ns),
            pct(post.and_then(|m| m.ns)),
            id = r.case_id,
        ));
    }
    h.push_str("</tbody></table></div>");
}

/// The first 160 characters of `text` (the whole text on hover): the table stays readable.
fn text_start(text: &str) -> String {
    let short: String = text.chars().take(160).collect();
    let more = if short.len() < text.len() { "…" } else { "" };
    format!(
        "<span title=\"{}\">{}{more}</span>",
        escape(text),
        escape(&short)
    )
}

/// The `worst` zsRE cases of `edited` by efficacy after the edit.
fn worst_zsre(h: &mut String, edited: &mut [&CaseRecord], worst: usize) {
    let efficacy = |r: &CaseRecord| {
        r.post
            .as_ref()
            .and_then(|m| m.efficacy)
            .unwrap_or(f64::INFINITY)
    };
    edited.sort_by(|a, b| efficacy(a).total_cmp(&efficacy(b)));
    h.push_str(&format!(
        "<h2>The {} worst cases (lowest Efficacy after the edit)</h2>",
        worst.min(edited.len())
    ));
    open_table(
        h,
        "Worst cases by Efficacy after the edit",
        [
            "case",
            "question",
            "new",
            "true",
            "Efficacy pre",
            "Efficacy post",
            "Paraphrase post",
            "Specificity pre",
            "Specificity post",
        ],
    );
    for r in edited.iter().take(worst) {
        let post = r.post.as_ref();
        h.push_str(&format!(
            "<tr id=\"case-{id}\"><td><a href=\"#case-{id}-details\">{id}</a></td><td class=\"text\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&r.request.filled()),
            escape(&r.request.target),
            escape(&r.target_true),
            pct(r.pre.efficacy),
            pct(post.and_then(|m| m.efficacy)),
            pct(post.and_then(|m| m.paraphrase)),
            pct(r.pre.specificity),
            pct(post.and_then(|m| m.specificity)),
            id = r.case_id,
        ));
    }
    h.push_str("</tbody></table></div>");
}

/// One folding block per listed case (`id="case-{id}-details"`, the tables link to it): the
/// rewrite, the paraphrase and neighbourhood prompts of its case in `cases` (for zsRE: the
/// rephrased question and the unrelated question with its answer), every generated text
/// before and after the edit, and the record as JSON.
fn case_details(h: &mut String, shown: &[&CaseRecord], cases: &[EditCase]) {
    let by_id: std::collections::HashMap<u64, &EditCase> =
        cases.iter().map(|c| (c.case_id, c)).collect();
    h.push_str("<h3>The cases in detail</h3>");
    for r in shown {
        let id = r.case_id;
        h.push_str(&format!(
            "<details id=\"case-{id}-details\"><summary>case {id}: {} → {} (was {})</summary><dl class=\"case\"><dt>rewrite</dt><dd>{}</dd>",
            escape(&r.request.subject),
            escape(&r.request.target),
            escape(&r.target_true),
            escape(&r.request.filled()),
        ));
        if let Some(case) = by_id.get(&id) {
            list(
                h,
                "paraphrases",
                case.paraphrase_prompts.iter().map(|p| escape(p)),
            );
            list(
                h,
                "neighbourhood (true object)",
                case.neighborhood
                    .iter()
                    .map(|n| format!("{} → {}", escape(&n.prompt), escape(&n.true_target))),
            );
        }
        let texts = |g: &Option<Generation>| -> Vec<String> {
            g.as_ref()
                .map(|g| g.texts.iter().map(|t| escape(t)).collect())
                .unwrap_or_default()
        };
        let before = texts(&r.pre_generation);
        if before.is_empty() {
            h.push_str("<dt>generated before the edit</dt><dd>not generated in this run (the unedited model generates only when asked to: pre-generation)</dd>");
        } else {
            list(h, "generated before the edit", before.into_iter());
        }
        list(
            h,
            "generated after the edit",
            texts(&r.generation).into_iter(),
        );
        let json = serde_json::to_string_pretty(r).unwrap_or_default();
        h.push_str(&format!(
            "<dt>record</dt><dd><pre>{}</pre></dd></dl></details>",
            escape(&json)
        ));
    }
}

/// A `<dt>` with its items as a list (`–` for none); items are markup.
fn list(h: &mut String, label: &str, items: impl Iterator<Item = String>) {
    let items: Vec<String> = items.map(|i| format!("<li>{i}</li>")).collect();
    if items.is_empty() {
        h.push_str(&format!("<dt>{label}</dt><dd>–</dd>"));
    } else {
        h.push_str(&format!(
            "<dt>{label}</dt><dd><ul>{}</ul></dd>",
            items.concat()
        ));
    }
}

/// What the quantisation named in a GGUF file name means (`…Q4_1.gguf` → Q4_1's blocks),
/// for readers who do not know llama.cpp's type names; `None` when the name says none.
pub fn quantisation_note(model: &str) -> Option<&'static str> {
    const TYPES: [(&str, &str); 10] = [
        (
            "Q4_0",
            "Q4_0: llama.cpp's 4-bit weights, in blocks of 32 with one f16 scale each",
        ),
        (
            "Q4_1",
            "Q4_1: llama.cpp's 4-bit weights, in blocks of 32 with an f16 scale and minimum each",
        ),
        (
            "Q5_0",
            "Q5_0: llama.cpp's 5-bit weights, in blocks of 32 with one f16 scale each",
        ),
        (
            "Q5_1",
            "Q5_1: llama.cpp's 5-bit weights, in blocks of 32 with an f16 scale and minimum each",
        ),
        (
            "Q8_0",
            "Q8_0: llama.cpp's 8-bit weights, in blocks of 32 with one f16 scale each",
        ),
        (
            "Q4_K",
            "Q4_K: llama.cpp's 4-bit k-quant (super-blocks of 256 with 6-bit sub-block scales)",
        ),
        (
            "Q6_K",
            "Q6_K: llama.cpp's 6-bit k-quant (super-blocks of 256)",
        ),
        ("BF16", "BF16: bfloat16 weights"),
        ("F16", "F16: half-precision weights"),
        ("F32", "F32: full-precision weights"),
    ];
    let upper = model.to_ascii_uppercase();
    if !upper.ends_with(".GGUF") {
        return None;
    }
    TYPES
        .iter()
        .find(|(name, _)| upper.contains(name))
        .map(|&(_, note)| note)
}

/// The rows of "How this run was made" that a run folder itself records: method, model
/// (with what its quantisation means), cases, hyperparameters, seeds, bootstrap and edit
/// time. Callers add what only they know (date, command line, version, dtype).
pub fn run_details(settings: &crate::RunSettings, summary: &Summary) -> Vec<(String, String)> {
    let mut rows = vec![("method".to_string(), settings.method.clone())];
    let mut model = format!(
        "{} (weights fingerprint {})",
        settings.model, settings.model_fingerprint
    );
    if let Some(note) = quantisation_note(&settings.model) {
        model.push_str(&format!("; {note}, dequantised on load"));
    }
    rows.push(("model".into(), model));
    let which = match settings.limit {
        Some(n) => format!("the first {n} usable records"),
        None => "every usable record".into(),
    };
    rows.push((
        "cases".into(),
        format!(
            "{} ({which}; {} in this summary; file fingerprint {})",
            settings.cases, summary.n, settings.cases_fingerprint
        ),
    ));
    rows.push((
        "edits".into(),
        match &settings.sequential {
            Some(_) => format!(
                "sequential: {} case(s) per edit call, every edit kept",
                settings.batch
            ),
            None if settings.batch > 1 => format!(
                "{} case(s) per edit call, the model restored after each call",
                settings.batch
            ),
            None => "one case at a time, the model restored after each".into(),
        },
    ));
    if !settings.hparams.is_null() {
        rows.push(("hyperparameters".into(), settings.hparams.to_string()));
    }
    rows.push((
        "fluency".into(),
        if settings.generation {
            format!("generated texts, sampling seed {}", settings.seed)
        } else {
            "not measured".into()
        },
    ));
    rows.push((
        "intervals".into(),
        format!(
            "95%: {} bootstrap resamples of the cases (seed {}); rates widened to at least the Wilson interval",
            summary.bootstrap.resamples, summary.bootstrap.seed
        ),
    ));
    rows.push((
        "time".into(),
        match summary.edit_seconds_per_case {
            Some(e) => format!(
                "{:.2} s per case in all, {e:.2} s of it the edit",
                summary.seconds_per_case
            ),
            None => format!("{:.2} s per case", summary.seconds_per_case),
        },
    ));
    rows
}
