//! A self-contained HTML report of one or more runs: the summary table, figures given as
//! SVG (bars with intervals, causal traces), and the worst cases. No scripts, no network.

use crate::record::CaseRecord;
use crate::summary::{cell, metric_title, table_metrics, Summary};

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

/// The report page: `summaries` in a table (the first's unedited scores as a row), the
/// figures, and the `worst` cases of `records` by efficacy magnitude after the edit (zsRE
/// cases: by efficacy, the new answer's token accuracy).
pub fn report_html(
    title: &str,
    summaries: &[&Summary],
    figures: &[Figure],
    records: &[CaseRecord],
    worst: usize,
) -> String {
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str(&format!("<title>{}</title>", escape(title)));
    h.push_str(
        "<style>body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}\
table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right;white-space:nowrap}\
th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}td.text{text-align:left;max-width:420px;white-space:normal}\
figure{margin:1.5em 0}figcaption{font-weight:600;margin-bottom:.5em}.note{color:#555;font-size:13px}</style></head><body>",
    );
    h.push_str(&format!("<h1>{}</h1>", escape(title)));
    let columns = table_metrics(summaries);
    h.push_str("<h2>Summary</h2><table><tr><th>run</th><th>n</th>");
    for m in &columns {
        h.push_str(&format!("<th>{}</th>", metric_title(m)));
    }
    h.push_str("<th>s/case</th></tr>");
    let row =
        |h: &mut String, name: &str, n: usize, t: &crate::summary::MetricTable, s: Option<f64>| {
            h.push_str(&format!("<tr><td>{}</td><td>{n}</td>", escape(name)));
            for m in &columns {
                // "mean [lo, hi]": the interval on a second, smaller line.
                let c = cell(t, m);
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
                s.map_or("–".into(), |s| format!("{s:.2}"))
            ));
        };
    if let Some(first) = summaries.first() {
        row(&mut h, "unedited", first.n, &first.pre, None);
    }
    for s in summaries {
        row(
            &mut h,
            s.display_name(),
            s.n,
            &s.metrics,
            Some(s.seconds_per_case),
        );
    }
    let mut models: Vec<&str> = summaries.iter().map(|s| s.model.as_str()).collect();
    models.sort_unstable();
    models.dedup();
    h.push_str(&format!(
        "</table><p class=\"note\">Model: {}.</p>",
        escape(&models.join(", "))
    ));
    if columns.contains(&"ES") {
        h.push_str("<p class=\"note\">Rates in percent, mean [95% bootstrap interval]. S = harmonic mean of ES, PS, NS. GE: the paper's ×100 bi/tri-gram entropy of generated text. RS (reference score) is unavailable: it needs Wikipedia snippets of each target.</p>");
    }
    if columns.contains(&"efficacy") {
        h.push_str("<p class=\"note\">zsRE: token-level top-1 accuracy under teacher forcing in percent, mean [95% bootstrap interval]. Efficacy: the new answer after the question; Paraphrase: after its rephrasing; Specificity: an unrelated question's answer after it (unedited and edited).</p>");
    }
    for f in figures {
        h.push_str(&format!(
            "<figure><figcaption>{}</figcaption>{}</figure>",
            escape(&f.title),
            f.svg
        ));
    }
    let mut edited: Vec<&CaseRecord> = records.iter().filter(|r| r.post.is_some()).collect();
    if edited.iter().any(|r| r.pre.top1.is_some()) {
        worst_zsre(&mut h, &mut edited, worst);
    } else if !edited.is_empty() && worst > 0 {
        let em = |r: &CaseRecord| r.post.as_ref().and_then(|m| m.em).unwrap_or(f64::INFINITY);
        edited.sort_by(|a, b| em(a).total_cmp(&em(b)));
        h.push_str(&format!(
            "<h2>The {} worst cases (lowest p(new) − p(true) after the edit)</h2>",
            worst.min(edited.len())
        ));
        h.push_str("<table><tr><th>case</th><th>prompt</th><th>new</th><th>true</th><th>EM pre</th><th>EM post</th><th>PS post</th><th>NS post</th></tr>");
        for r in edited.iter().take(worst) {
            let post = r.post.as_ref();
            h.push_str(&format!(
                "<tr><td>{}</td><td class=\"text\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                r.case_id,
                escape(&r.request.filled()),
                escape(&r.request.target),
                escape(&r.target_true),
                pct(r.pre.em),
                pct(post.and_then(|m| m.em)),
                pct(post.and_then(|m| m.ps)),
                pct(post.and_then(|m| m.ns)),
            ));
        }
        h.push_str("</table>");
    }
    h.push_str("</body></html>\n");
    h
}

/// The `worst` zsRE cases of `edited` by efficacy after the edit.
fn worst_zsre(h: &mut String, edited: &mut [&CaseRecord], worst: usize) {
    if worst == 0 {
        return;
    }
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
    h.push_str("<table><tr><th>case</th><th>question</th><th>new</th><th>true</th><th>Efficacy pre</th><th>Efficacy post</th><th>Paraphrase post</th><th>Specificity pre</th><th>Specificity post</th></tr>");
    for r in edited.iter().take(worst) {
        let post = r.post.as_ref();
        h.push_str(&format!(
            "<tr><td>{}</td><td class=\"text\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            r.case_id,
            escape(&r.request.filled()),
            escape(&r.request.target),
            escape(&r.target_true),
            pct(r.pre.efficacy),
            pct(post.and_then(|m| m.efficacy)),
            pct(post.and_then(|m| m.paraphrase)),
            pct(r.pre.specificity),
            pct(post.and_then(|m| m.specificity)),
        ));
    }
    h.push_str("</table>");
}
