//! Averages of causal traces over a dataset, per token category (ROME §1.5,
//! `notebooks/average_causal_effects.ipynb`), and their figures (feature `viz`).

use serde::{Deserialize, Serialize};

use crate::dataset::CaseRecord;
use crate::trace::{Sever, TraceGrid, TraceKind};

/// The normal quantile of a two-sided 95% interval.
pub const Z95: f64 = 1.96;

/// The six token categories ROME averages over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenCategory {
    /// The first subject token (`scores[b]`).
    FirstSubject,
    /// Subject tokens strictly between the first and the last, each a sample
    /// (`scores[b+1 .. e-1]`).
    MiddleSubject,
    /// The last subject token (`scores[e-1]`).
    LastSubject,
    /// The first token after the subject (`scores[e]`).
    FirstSubsequent,
    /// Tokens after the first subsequent one and before the last, each a sample
    /// (`scores[e+1 .. T-1]`).
    Further,
    /// The last token of the prompt (`scores[T-1]`).
    Last,
}

impl TokenCategory {
    /// All six, in ROME's row order.
    pub const ALL: [TokenCategory; 6] = [
        TokenCategory::FirstSubject,
        TokenCategory::MiddleSubject,
        TokenCategory::LastSubject,
        TokenCategory::FirstSubsequent,
        TokenCategory::Further,
        TokenCategory::Last,
    ];

    /// ROME's label, e.g. `Last subject token`.
    pub fn label(self) -> &'static str {
        match self {
            TokenCategory::FirstSubject => "First subject token",
            TokenCategory::MiddleSubject => "Middle subject tokens",
            TokenCategory::LastSubject => "Last subject token",
            TokenCategory::FirstSubsequent => "First subsequent token",
            TokenCategory::Further => "Further tokens",
            TokenCategory::Last => "Last token",
        }
    }

    /// Index in [`TokenCategory::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The token indices of each category for a prompt of `n_tokens` tokens whose subject spans
/// the half-open token range `subject = (b, e)`, in [`TokenCategory::ALL`] order.
///
/// As ROME's `read_knowlege`: a single-token subject puts the same token into first and last
/// subject token (and none into middle); a subject followed by one token makes that token
/// both the first subsequent and the last token (and none further). A subject ending at the
/// last token has no first subsequent token (ROME would fail there) and its last token is the
/// last subject token. Tokens before the subject belong to no category. An empty or
/// out-of-range subject gives no tokens at all.
pub fn category_rows(subject: (usize, usize), n_tokens: usize) -> [(TokenCategory, Vec<usize>); 6] {
    let (b, e) = subject;
    let valid = b < e && e <= n_tokens;
    let pick = |v: Vec<usize>| if valid { v } else { Vec::new() };
    let t = n_tokens;
    [
        (TokenCategory::FirstSubject, pick(vec![b])),
        (
            TokenCategory::MiddleSubject,
            pick((b + 1..e.saturating_sub(1)).collect()),
        ),
        (TokenCategory::LastSubject, pick(vec![e.saturating_sub(1)])),
        (
            TokenCategory::FirstSubsequent,
            pick(if e < t { vec![e] } else { Vec::new() }),
        ),
        (
            TokenCategory::Further,
            pick((e + 1..t.saturating_sub(1)).collect()),
        ),
        (TokenCategory::Last, pick(vec![t.saturating_sub(1)])),
    ]
}

/// Mean with a 95% confidence interval `mean ± 1.96·s/√n` (`s`: sample standard deviation,
/// divisor `n − 1`).
#[derive(Clone, Copy, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct Estimate {
    /// Number of samples.
    pub n: usize,
    /// Mean (`None` without samples).
    pub mean: Option<f64>,
    /// Sample standard deviation (`None` with fewer than 2 samples).
    pub std: Option<f64>,
    /// Lower end of the interval (`None` with fewer than 2 samples).
    pub ci_low: Option<f64>,
    /// Upper end of the interval.
    pub ci_high: Option<f64>,
}

/// The [`Estimate`] of `samples`.
pub fn mean_ci(samples: &[f64]) -> Estimate {
    let n = samples.len();
    if n == 0 {
        return Estimate::default();
    }
    let mean = samples.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return Estimate {
            n,
            mean: Some(mean),
            ..Estimate::default()
        };
    }
    let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let std = var.sqrt();
    let half = Z95 * std / (n as f64).sqrt();
    Estimate {
        n,
        mean: Some(mean),
        std: Some(std),
        ci_low: Some(mean - half),
        ci_high: Some(mean + half),
    }
}

/// The average indirect effect of one token category per layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CategorySummary {
    /// The category.
    pub category: TokenCategory,
    /// Per layer: mean of `score − low_score` over the category's samples (not clipped).
    pub aie: Vec<Option<f64>>,
    /// Per layer: lower end of the 95% interval.
    pub ci_low: Vec<Option<f64>>,
    /// Per layer: upper end of the 95% interval.
    pub ci_high: Vec<Option<f64>>,
    /// Per layer: number of samples.
    pub n: Vec<usize>,
    /// The layer of the largest AIE.
    pub best_layer: Option<usize>,
    /// The largest AIE.
    pub best_aie: Option<f64>,
}

/// Averages of one trace kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KindSummary {
    /// The kind.
    pub kind: TraceKind,
    /// Window of layers (1 for hidden).
    pub window: usize,
    /// Number of layers.
    pub n_layers: usize,
    /// Known cases with a grid of this kind.
    pub cases: usize,
    /// Mean clean score (`high_score`).
    pub high: Option<f64>,
    /// Mean corrupted score (`low_score`).
    pub low: Option<f64>,
    /// Average total effect: `high − low` per case.
    pub total_effect: Estimate,
    /// One entry per [`TokenCategory`], in [`TokenCategory::ALL`] order.
    pub categories: Vec<CategorySummary>,
}

impl KindSummary {
    /// The summary of one category.
    pub fn category(&self, category: TokenCategory) -> &CategorySummary {
        &self.categories[category.index()]
    }
}

/// A case that failed, with the reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Id of the fact.
    pub known_id: u64,
    /// What went wrong.
    pub reason: String,
}

/// The result of a dataset run (`summary.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Records in the run.
    pub total: usize,
    /// Records the model knows (traced and averaged).
    pub known: usize,
    /// Records the model does not know (skipped).
    pub unknown: usize,
    /// Records that failed.
    pub failed: usize,
    /// Why each failed.
    pub failures: Vec<Failure>,
    /// Averages per kind present, in [`TraceKind::ALL`] order.
    pub kinds: Vec<KindSummary>,
    /// The severed comparison, when the run traced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severed: Option<SeveredSummary>,
}

/// The averaged severed comparison (the paper's Figure 7): the effect of restoring the last
/// subject token's hidden state at each layer, `score − low_score`, ordinarily and with the
/// MLP or attention of that token frozen at its corrupted values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeveredSummary {
    /// Known cases averaged.
    pub cases: usize,
    /// Number of layers.
    pub n_layers: usize,
    /// Per layer, ordinary restoration.
    pub ordinary: Vec<Estimate>,
    /// Per layer, with the MLP severed.
    pub mlp_severed: Vec<Estimate>,
    /// Per layer, with attention severed.
    pub attn_severed: Vec<Estimate>,
}

fn summarize_severed(cases: &[&CaseRecord]) -> Option<SeveredSummary> {
    let conditions = [None, Some(Sever::Mlp), Some(Sever::Attn)];
    let with_all: Vec<[&TraceGrid; 3]> = cases
        .iter()
        .filter_map(|c| {
            let g = conditions.map(|s| c.severed_grid(s));
            match g {
                [Some(a), Some(b), Some(c)] => Some([a, b, c]),
                _ => None,
            }
        })
        .collect();
    let n_layers = with_all.iter().map(|g| g[0].n_layers).max()?;
    let per_layer = |i: usize| -> Vec<Estimate> {
        (0..n_layers)
            .map(|l| {
                let samples: Vec<f64> = with_all
                    .iter()
                    .filter_map(|g| {
                        let grid = g[i];
                        grid.scores
                            .first()
                            .and_then(|r| r.get(l))
                            .map(|v| v - grid.corrupted_score)
                    })
                    .filter(|v| v.is_finite())
                    .collect();
                mean_ci(&samples)
            })
            .collect()
    };
    Some(SeveredSummary {
        cases: with_all.len(),
        n_layers,
        ordinary: per_layer(0),
        mlp_severed: per_layer(1),
        attn_severed: per_layer(2),
    })
}

impl Summary {
    /// The averages of `kind`, if any case has such a grid.
    pub fn kind(&self, kind: TraceKind) -> Option<&KindSummary> {
        self.kinds.iter().find(|k| k.kind == kind)
    }
}

/// Averages `cases` (ROME §1.5): per kind, per token category and layer, the mean of
/// `score − low_score` over samples with its 95% interval; the average total effect; counts.
///
/// Only known cases that did not fail count; each contributes its grid of each kind.
pub fn summarize(cases: &[CaseRecord]) -> Summary {
    let mut summary = Summary {
        total: cases.len(),
        known: 0,
        unknown: 0,
        failed: 0,
        failures: Vec::new(),
        kinds: Vec::new(),
        severed: None,
    };
    for c in cases {
        match (&c.error, c.known) {
            (Some(reason), _) => {
                summary.failed += 1;
                summary.failures.push(Failure {
                    known_id: c.known_id,
                    reason: reason.clone(),
                });
            }
            (None, true) => summary.known += 1,
            (None, false) => summary.unknown += 1,
        }
    }
    let counted = || cases.iter().filter(|c| c.known && !c.failed());
    for kind in TraceKind::ALL {
        let grids: Vec<&TraceGrid> = counted().filter_map(|c| c.grid(kind)).collect();
        if !grids.is_empty() {
            summary.kinds.push(summarize_kind(kind, &grids));
        }
    }
    summary.severed = summarize_severed(&counted().collect::<Vec<_>>());
    summary
}

fn summarize_kind(kind: TraceKind, grids: &[&TraceGrid]) -> KindSummary {
    let n_layers = grids.iter().map(|g| g.n_layers).max().unwrap_or(0);
    // samples[category][layer]
    let mut samples = vec![vec![Vec::<f64>::new(); n_layers]; TokenCategory::ALL.len()];
    let mut total = Vec::with_capacity(grids.len());
    let (mut high, mut low) = (Vec::new(), Vec::new());
    for g in grids {
        let lo = g.corrupted_score;
        total.push(g.clean_score - lo);
        high.push(g.clean_score);
        low.push(lo);
        for (cat, tokens) in category_rows(g.subject_range, g.token_ids.len()) {
            for t in tokens {
                let Some(r) = g.rows.iter().position(|&x| x == t) else {
                    continue;
                };
                let Some(row) = g.scores.get(r) else { continue };
                for (l, &s) in row.iter().enumerate().take(n_layers) {
                    samples[cat.index()][l].push(s - lo);
                }
            }
        }
    }
    let categories = TokenCategory::ALL
        .iter()
        .map(|&category| {
            let est: Vec<Estimate> = samples[category.index()]
                .iter()
                .map(|s| mean_ci(s))
                .collect();
            let aie: Vec<Option<f64>> = est.iter().map(|e| e.mean).collect();
            let best = aie
                .iter()
                .enumerate()
                .filter_map(|(l, v)| v.filter(|v| v.is_finite()).map(|v| (l, v)))
                .fold(None, |acc: Option<(usize, f64)>, (l, v)| match acc {
                    Some((_, b)) if b >= v => acc,
                    _ => Some((l, v)),
                });
            CategorySummary {
                category,
                ci_low: est.iter().map(|e| e.ci_low).collect(),
                ci_high: est.iter().map(|e| e.ci_high).collect(),
                n: est.iter().map(|e| e.n).collect(),
                aie,
                best_layer: best.map(|b| b.0),
                best_aie: best.map(|b| b.1),
            }
        })
        .collect();
    KindSummary {
        kind,
        window: grids[0].window,
        n_layers,
        cases: grids.len(),
        high: mean_ci(&high).mean,
        low: mean_ci(&low).mean,
        total_effect: mean_ci(&total),
        categories,
    }
}

#[cfg(feature = "viz")]
mod figures {
    use std::path::{Path, PathBuf};

    use viz::{BarPlot, BarSeries, Figure, Heatmap, LinePlot, Series};

    use super::{Estimate, KindSummary, SeveredSummary, Summary, TokenCategory};
    use crate::error::{Error, Result};
    use crate::trace::TraceKind;

    fn what(k: &KindSummary) -> String {
        match k.kind {
            TraceKind::Hidden => "hidden states".into(),
            TraceKind::Mlp => format!("MLP outputs (window {})", k.window),
            TraceKind::Attn => format!("attention outputs (window {})", k.window),
        }
    }

    fn x_label(k: &KindSummary, model_name: &str) -> String {
        match k.kind {
            TraceKind::Hidden => format!("single restored layer within {model_name}"),
            _ => format!(
                "center of interval of {} restored {} layers within {model_name}",
                k.window,
                k.kind.name()
            ),
        }
    }

    fn opt(v: &[Option<f64>]) -> Vec<f64> {
        v.iter().map(|x| x.unwrap_or(f64::NAN)).collect()
    }

    impl KindSummary {
        /// The averaged trace as a heatmap (ROME's average-effect figure): the six token
        /// categories down, layers across, values = AIE; colours from 0 (as ROME, which
        /// clips the AIE at 0 for this picture) to the largest value.
        pub fn heatmap(&self, model_name: &str) -> Heatmap {
            let te = self.total_effect.mean.unwrap_or(f64::NAN);
            Heatmap {
                values: self.categories.iter().map(|c| opt(&c.aie)).collect(),
                row_labels: TokenCategory::ALL.iter().map(|c| c.label().to_string()).collect(),
                col_labels: (0..self.n_layers).map(|l| l.to_string()).collect(),
                starred_rows: Vec::new(),
                title: format!(
                    "Average indirect effect of restoring {}, n = {} prompts\naverage total effect {te:.3}: clean {:.3}, corrupted {:.3}",
                    what(self),
                    self.cases,
                    self.high.unwrap_or(f64::NAN),
                    self.low.unwrap_or(f64::NAN),
                ),
                x_label: x_label(self, model_name),
                colorbar_label: "AIE".into(),
                palette: self.kind.palette(),
                vmin: Some(0.0),
                vmax: None,
            }
        }

        /// AIE per layer at the last subject token and the last token, with 95% bands.
        pub fn line_plot(&self, model_name: &str) -> LinePlot {
            let palette = self.kind.palette();
            let x: Vec<f64> = (0..self.n_layers).map(|l| l as f64).collect();
            let series = [
                (TokenCategory::LastSubject, palette.color_at(0.85)),
                (TokenCategory::Last, viz::Rgb::from_hex(0x7f7f7f)),
            ]
            .into_iter()
            .map(|(cat, color)| {
                let c = self.category(cat);
                Series::new(cat.label(), x.clone(), opt(&c.aie))
                    .with_band(opt(&c.ci_low), opt(&c.ci_high))
                    .with_color(color)
            })
            .collect();
            LinePlot {
                series,
                title: format!(
                    "Average indirect effect of restoring {}, n = {} prompts\nmean ± 95% confidence interval",
                    what(self),
                    self.cases
                ),
                x_label: x_label(self, model_name),
                y_label: "AIE on p(answer)".into(),
            }
        }
    }

    fn save(figure: &dyn Figure, path: PathBuf, out: &mut Vec<PathBuf>) -> Result<()> {
        figure.save(&path).map_err(|e| Error::Write {
            path: path.clone(),
            error: std::io::Error::other(e.to_string()),
        })?;
        out.push(path);
        Ok(())
    }

    /// Writes `avg_{kind}.{ext}` (heatmap) and `lines_{kind}.{ext}` (line plot) into `dir`
    /// for every kind with at least one case and one finite AIE and every extension of
    /// `formats` (`svg`, `png`); returns the paths.
    ///
    /// # Errors
    /// [`Error::Write`] naming the file that could not be drawn or written (an unknown
    /// extension included).
    pub fn save_figures(
        summary: &Summary,
        dir: &Path,
        model_name: &str,
        formats: &[&str],
    ) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for k in &summary.kinds {
            let any = k
                .categories
                .iter()
                .flat_map(|c| &c.aie)
                .any(|v| v.is_some_and(f64::is_finite));
            if k.cases == 0 || !any {
                continue;
            }
            let name = k.kind.name();
            let map = k.heatmap(model_name);
            let lines = k.line_plot(model_name);
            for ext in formats {
                save(&map, dir.join(format!("avg_{name}.{ext}")), &mut out)?;
                save(&lines, dir.join(format!("lines_{name}.{ext}")), &mut out)?;
            }
        }
        if let Some(sev) = summary.severed.as_ref().filter(|s| s.cases > 0) {
            let plot = sev.bar_plot();
            for ext in formats {
                save(&plot, dir.join(format!("severed.{ext}")), &mut out)?;
            }
        }
        Ok(out)
    }

    impl SeveredSummary {
        /// Bars per layer for the three conditions, with 95% error bars.
        pub fn bar_plot(&self) -> BarPlot {
            let value = |e: &Estimate| e.mean.unwrap_or(f64::NAN);
            let series = [
                ("ordinary", &self.ordinary),
                ("MLP severed", &self.mlp_severed),
                ("attention severed", &self.attn_severed),
            ]
            .into_iter()
            .map(|(name, est)| {
                let lo = est.iter().map(|e| e.ci_low.unwrap_or(f64::NAN)).collect();
                let hi = est.iter().map(|e| e.ci_high.unwrap_or(f64::NAN)).collect();
                BarSeries::new(name, est.iter().map(value).collect()).with_band(lo, hi)
            })
            .collect();
            BarPlot {
                categories: (0..self.n_layers).map(|l| l.to_string()).collect(),
                series,
                title: format!(
                    "Average effect of restoring the last subject token, n = {} prompts\nordinary, and with MLP or attention severed (mean ± 95% CI)",
                    self.cases
                ),
                x_label: "layer of the restored hidden state".into(),
                y_label: "AIE on p(answer)".into(),
            }
        }
    }
}

#[cfg(feature = "viz")]
pub use figures::save_figures;
