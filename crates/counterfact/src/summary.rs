//! Aggregates over cases (reference §4.4): means with seeded 95% bootstrap intervals (rates widened to at least the Wilson interval), the
//! score S = harmonic mean of ES, PS and NS, per relation where the data gives one, and a
//! Markdown table (zsRE runs: efficacy, paraphrase and specificity, reference §4.6).

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::metrics::CaseMetrics;
use crate::record::{CaseRecord, RunSettings};
use crate::sequential::{CurvePoint, Retention, SequentialInfo};

/// A mean with its 95% interval (bootstrap; for [`RATE_METRICS`] at least Wilson's).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The mean over cases.
    pub mean: f64,
    /// 2.5th percentile of the bootstrap means.
    pub lo: f64,
    /// 97.5th percentile.
    pub hi: f64,
}

/// Metric name → interval, in a stable order.
pub type MetricTable = BTreeMap<String, Interval>;

/// The public summary of a run (`summary.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Cases summarised.
    pub n: usize,
    /// The method.
    pub method: String,
    /// The model.
    pub model: String,
    /// After the edit (for `none`: the unedited model).
    pub metrics: MetricTable,
    /// The unedited model on the same cases.
    pub pre: MetricTable,
    /// Wall seconds per case (edit, scoring and generation).
    pub seconds_per_case: f64,
    /// Seconds per edit alone (`None` for `none`).
    pub edit_seconds_per_case: Option<f64>,
    /// Metrics that cannot be computed here, with the reason (e.g. RS).
    pub unavailable: BTreeMap<String, String>,
    /// The same metrics per relation id (when records carry one).
    pub per_relation: BTreeMap<String, MetricTable>,
    /// Bootstrap resamples and seed behind the intervals.
    pub bootstrap: Bootstrap,
    /// What tables and figures call this run when it is not simply its method (e.g. the run
    /// folder, when several runs are compared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Sequential runs: edits in the model at the end and cases per edit call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequential: Option<SequentialInfo>,
    /// Sequential runs: the metrics against the number of edits (from 0: unedited, to all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub curve: Vec<CurvePoint>,
    /// Sequential runs with a retention probe: held-out perplexity and known-facts accuracy
    /// before and after all edits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
}

impl Summary {
    /// The name of the run in tables and figures: its [`Summary::label`], else its method.
    pub fn display_name(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.method)
    }

    /// Whether the run has zsRE metrics (after the edit or unedited).
    pub fn has_zsre(&self) -> bool {
        ZSRE_METRICS
            .iter()
            .any(|m| self.metrics.contains_key(*m) || self.pre.contains_key(*m))
    }
}

/// How intervals were drawn.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bootstrap {
    /// Resamples.
    pub resamples: usize,
    /// Seed.
    pub seed: u64,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Self {
            resamples: 1000,
            seed: 1,
        }
    }
}

type Getter = fn(&CaseMetrics) -> Option<f64>;

/// The summarised metrics in table order.
pub const METRICS: [&str; 8] = ["ES", "PS", "NS", "S", "EM", "PM", "NM", "GE"];

/// The summarised metrics of zsRE runs in table order (token accuracies).
pub const ZSRE_METRICS: [&str; 3] = ["efficacy", "paraphrase", "specificity"];

/// A metric's column heading: zsRE's names spelled out, the others as the paper abbreviates
/// them.
pub fn metric_title(name: &str) -> &str {
    match name {
        "efficacy" => "Efficacy",
        "paraphrase" => "Paraphrase",
        "specificity" => "Specificity",
        other => other,
    }
}

/// The columns of a table of `summaries`: CounterFact's [`METRICS`] unless every run is a
/// zsRE run, then [`ZSRE_METRICS`] where any run has them.
pub fn table_metrics(summaries: &[&Summary]) -> Vec<&'static str> {
    let zsre = summaries.iter().filter(|s| s.has_zsre()).count();
    let mut out = Vec::new();
    if zsre < summaries.len() || summaries.is_empty() {
        out.extend(METRICS);
    }
    if zsre > 0 {
        out.extend(ZSRE_METRICS);
    }
    // Generation-based success where measured.
    for m in GENERATION_METRICS {
        if summaries
            .iter()
            .any(|s| s.metrics.contains_key(m) || s.pre.contains_key(m))
        {
            out.push(m);
        }
    }
    out
}

/// Success judged on greedy generations instead of teacher-forced probabilities: whether the
/// continuation of the rewrite prompt (`ES_gen`) and of the paraphrases (`PS_gen`) contains
/// the new target ("The Mirage of Model Editing", 2025: teacher forcing overstates edits).
pub const GENERATION_METRICS: [&str; 2] = ["ES_gen", "PS_gen"];

fn getters() -> [(&'static str, Getter); 13] {
    [
        ("ES", |m| m.es),
        ("PS", |m| m.ps),
        ("NS", |m| m.ns),
        ("EM", |m| m.em),
        ("PM", |m| m.pm),
        ("NM", |m| m.nm),
        ("GE", |m| m.ge),
        ("ES_gen", |m| m.es_gen),
        ("PS_gen", |m| m.ps_gen),
        ("K", |m| m.known),
        ("efficacy", |m| m.efficacy),
        ("paraphrase", |m| m.paraphrase),
        ("specificity", |m| m.specificity),
    ]
}

/// Metrics that are rates in `[0, 1]` (per case a success or a share of successes): their
/// intervals are widened to at least the Wilson interval (see [`wilson`]).
pub const RATE_METRICS: [&str; 8] = [
    "ES",
    "PS",
    "NS",
    "ES_gen",
    "PS_gen",
    "efficacy",
    "paraphrase",
    "specificity",
];

/// The 95% Wilson score interval of a rate `p` observed over `n` trials:
/// `(p + z²/2n ± z·√(p(1−p)/n + z²/4n²)) / (1 + z²/n)` with z = 1.96. Unlike the bootstrap
/// percentile interval it is not `[1, 1]` when every one of a few cases succeeded (12 of
/// 12: [75.8, 100]). `(NaN, NaN)` for `n = 0`.
pub fn wilson(p: f64, n: usize) -> (f64, f64) {
    if n == 0 || !p.is_finite() {
        return (f64::NAN, f64::NAN);
    }
    let (z, n) = (1.959_963_984_540_054, n as f64);
    let z2 = z * z;
    let centre = p + z2 / (2.0 * n);
    let spread = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).max(0.0).sqrt();
    let scale = 1.0 + z2 / n;
    (
        ((centre - spread) / scale).clamp(0.0, 1.0),
        ((centre + spread) / scale).clamp(0.0, 1.0),
    )
}

fn harmonic(xs: &[f64]) -> f64 {
    if xs.iter().any(|&x| x <= 0.0) {
        return 0.0;
    }
    xs.len() as f64 / xs.iter().map(|x| 1.0 / x).sum::<f64>()
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos.fract());
    let next = sorted[(i + 1).min(sorted.len() - 1)];
    sorted[i] + frac * (next - sorted[i])
}

/// Means and bootstrap intervals of every metric present in `cases` (plus S when ES, PS and
/// NS all are): resampling cases with replacement `boot.resamples` times.
pub fn summarize(cases: &[&CaseMetrics], boot: Bootstrap) -> MetricTable {
    let mut table = MetricTable::new();
    let n = cases.len();
    if n == 0 {
        return table;
    }
    // Per metric: the cases that have it, as values.
    let columns: Vec<(&str, Vec<Option<f64>>)> = getters()
        .iter()
        .map(|(name, get)| (*name, cases.iter().map(|c| get(c)).collect()))
        .filter(|(_, v): &(&str, Vec<Option<f64>>)| v.iter().any(Option::is_some))
        .collect();
    let mean_of = |col: &[Option<f64>], idx: &mut dyn Iterator<Item = usize>| -> f64 {
        let (s, k) = idx.fold((0.0, 0usize), |(s, k), i| match col[i] {
            Some(x) => (s + x, k + 1),
            None => (s, k),
        });
        if k == 0 {
            f64::NAN
        } else {
            s / k as f64
        }
    };
    let mut rng = ChaCha8Rng::seed_from_u64(boot.seed);
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(boot.resamples); columns.len()];
    for _ in 0..boot.resamples {
        let idx: Vec<usize> = (0..n).map(|_| rng.gen_range(0..n)).collect();
        for (k, (_, col)) in columns.iter().enumerate() {
            samples[k].push(mean_of(col, &mut idx.iter().copied()));
        }
    }
    let mut s_samples: Option<Vec<f64>> = None;
    let find = |name: &str| columns.iter().position(|(c, _)| *c == name);
    if let (Some(e), Some(p), Some(ns)) = (find("ES"), find("PS"), find("NS")) {
        s_samples = Some(
            (0..boot.resamples)
                .map(|r| harmonic(&[samples[e][r], samples[p][r], samples[ns][r]]))
                .collect(),
        );
    }
    let mut means = BTreeMap::new();
    for (k, (name, col)) in columns.iter().enumerate() {
        let mean = mean_of(col, &mut (0..n));
        means.insert(*name, mean);
        let mut sorted: Vec<f64> = samples[k]
            .iter()
            .copied()
            .filter(|x| x.is_finite())
            .collect();
        sorted.sort_by(f64::total_cmp);
        let (mut lo, mut hi) = (percentile(&sorted, 0.025), percentile(&sorted, 0.975));
        if RATE_METRICS.contains(name) {
            // A bootstrap of 12 cases that all succeeded is [100, 100]: certainty it has
            // not earned. The Wilson interval of the rate over the cases that have it does.
            let k = col.iter().flatten().count();
            let (w_lo, w_hi) = wilson(mean, k);
            (lo, hi) = (lo.min(w_lo), hi.max(w_hi));
        }
        table.insert(name.to_string(), Interval { mean, lo, hi });
    }
    if let (Some(mut s), Some(e), Some(p), Some(ns)) =
        (s_samples, means.get("ES"), means.get("PS"), means.get("NS"))
    {
        s.sort_by(f64::total_cmp);
        table.insert(
            "S".into(),
            Interval {
                mean: harmonic(&[*e, *p, *ns]),
                lo: percentile(&s, 0.025),
                hi: percentile(&s, 0.975),
            },
        );
    }
    table
}

/// The summary of a run's records.
pub fn summarize_run(settings: &RunSettings, records: &[CaseRecord], boot: Bootstrap) -> Summary {
    let post: Vec<&CaseMetrics> = records
        .iter()
        .map(|r| r.post.as_ref().unwrap_or(&r.pre))
        .collect();
    let pre: Vec<&CaseMetrics> = records.iter().map(|r| &r.pre).collect();
    let mut relations: BTreeMap<String, Vec<&CaseMetrics>> = BTreeMap::new();
    for r in records {
        if let Some(rel) = &r.relation_id {
            relations
                .entry(rel.clone())
                .or_default()
                .push(r.post.as_ref().unwrap_or(&r.pre));
        }
    }
    let n = records.len().max(1) as f64;
    let edit: Vec<f64> = records.iter().filter_map(|r| r.edit_seconds).collect();
    let mut unavailable = BTreeMap::new();
    // RS is a CounterFact metric: a zsRE run has no use for it.
    let zsre = !records.is_empty() && records.iter().all(|r| r.pre.top1.is_some());
    if !zsre {
        unavailable.insert(
        "RS".to_string(),
        "reference score needs the Wikipedia snippets of the target (attribute_snippets.json), which are not available here"
            .to_string(),
    );
    }
    Summary {
        n: records.len(),
        method: settings.method.clone(),
        model: settings.model.clone(),
        metrics: summarize(&post, boot),
        pre: summarize(&pre, boot),
        seconds_per_case: records.iter().map(|r| r.case_seconds).sum::<f64>() / n,
        edit_seconds_per_case: (!edit.is_empty())
            .then(|| edit.iter().sum::<f64>() / edit.len() as f64),
        unavailable,
        per_relation: relations
            .into_iter()
            .map(|(k, v)| (k, summarize(&v, boot)))
            .collect(),
        bootstrap: boot,
        label: None,
        sequential: None,
        curve: Vec::new(),
        retention: None,
    }
}

/// The summary of the run in folder `dir` (every shard's records), with a sequential run's
/// `sequential`, `curve` and `retention`; and the records.
///
/// # Errors
/// As [`crate::read_run`] and [`crate::SequentialState::read`].
pub fn summarize_dir(
    dir: &std::path::Path,
    boot: Bootstrap,
) -> crate::Result<(Summary, Vec<CaseRecord>)> {
    let (settings, records) = crate::record::read_run(dir)?;
    let mut summary = summarize_run(&settings, &records, boot);
    if let Some(state) = crate::sequential::SequentialState::read(dir)? {
        state.annotate(&mut summary);
    }
    Ok((summary, records))
}

/// `mean [lo, hi]` of a metric, rates in percent (as the paper's tables), GE as is.
pub fn cell(table: &MetricTable, name: &str) -> String {
    match table.get(name) {
        Some(i) if name == "GE" => format!("{:.1} [{:.1}, {:.1}]", i.mean, i.lo, i.hi),
        Some(i) => format!(
            "{:.1} [{:.1}, {:.1}]",
            100.0 * i.mean,
            100.0 * i.lo,
            100.0 * i.hi
        ),
        None => "–".into(),
    }
}

/// What the columns of a table of `summaries` mean, one sentence per kind of run shown.
pub fn table_notes(summaries: &[&Summary]) -> Vec<&'static str> {
    let columns = table_metrics(summaries);
    let mut notes = Vec::new();
    if columns.contains(&"ES") {
        notes.push("ES, PS, NS (and S, their harmonic mean) are rates in percent; EM, PM, NM are mean differences p(new) − p(true) in percentage points; intervals are 95%: bootstrap over cases, for rates widened to at least the Wilson interval; GE is the paper's ×100 n-gram entropy; RS is not available (no Wikipedia snippets).");
    }
    let ge_after = summaries.iter().any(|s| s.metrics.contains_key("GE"));
    let ge_before = summaries.first().is_some_and(|s| s.pre.contains_key("GE"));
    if columns.contains(&"GE") && ge_after && !ge_before {
        notes.push("The unedited row has no GE: the unedited model's texts are generated only with `evaluate --pre-generation` (or by a `--method none` run of the same cases).");
    }
    if columns.contains(&"efficacy") {
        notes.push("zsRE: token-level top-1 accuracy under teacher forcing, in percent with 95% intervals (bootstrap, widened to at least Wilson's): Efficacy of the new answer after the question, Paraphrase after its rephrasing, Specificity of an unrelated question's answer after it.");
    }
    notes
}

/// A Markdown table of several summaries (one row per run, and the unedited model first
/// when `with_pre`).
pub fn markdown_table(summaries: &[&Summary], with_pre: bool) -> String {
    let columns = table_metrics(summaries);
    let mut out = String::from("| run | n |");
    for m in &columns {
        out.push_str(&format!(" {} |", metric_title(m)));
    }
    out.push_str(" s/case |\n|---|---|");
    for _ in &columns {
        out.push_str("---|");
    }
    out.push_str("---|\n");
    let mut row = |name: &str, n: usize, table: &MetricTable, secs: Option<f64>| {
        out.push_str(&format!("| {name} | {n} |"));
        for m in &columns {
            out.push_str(&format!(" {} |", cell(table, m)));
        }
        out.push_str(&match secs {
            Some(s) => format!(" {s:.2} |\n"),
            None => " – |\n".into(),
        });
    };
    if with_pre {
        if let Some(first) = summaries.first() {
            row("unedited", first.n, &first.pre, None);
        }
    }
    for s in summaries {
        row(s.display_name(), s.n, &s.metrics, Some(s.seconds_per_case));
    }
    for note in table_notes(summaries) {
        out.push('\n');
        out.push_str(note);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod wilson_tests {
    use super::wilson;

    #[test]
    fn wilson_matches_known_values_and_is_not_certain_at_small_n() {
        // 12 of 12: the textbook Wilson interval is [0.7575, 1].
        let (lo, hi) = wilson(1.0, 12);
        assert!((lo - 0.7575).abs() < 1e-3 && hi == 1.0, "{lo} {hi}");
        // 50 of 100: 0.5 ± 0.0960 (to 1e-3).
        let (lo, hi) = wilson(0.5, 100);
        assert!(
            (lo - 0.4038).abs() < 1e-3 && (hi - 0.5962).abs() < 1e-3,
            "{lo} {hi}"
        );
        assert!(wilson(0.3, 0).0.is_nan());
    }
}
