//! Averages of causal traces over a dataset, per token category (ROME §1.5,
//! `notebooks/average_causal_effects.ipynb`), and their figures (feature `viz`).

use serde::{Deserialize, Serialize};

pub use factscope_common::stats::{mean_ci, Estimate, Z95};

use crate::case::TraceRecord;
use crate::trace::{Sever, TraceGrid, TraceKind};

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
pub struct DatasetSummary {
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

fn summarize_severed(cases: &[&TraceRecord]) -> Option<SeveredSummary> {
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

impl DatasetSummary {
    /// The averages of `kind`, if any case has such a grid.
    pub fn kind(&self, kind: TraceKind) -> Option<&KindSummary> {
        self.kinds.iter().find(|k| k.kind == kind)
    }
}

/// Averages `cases` (ROME §1.5): per kind, per token category and layer, the mean of
/// `score − low_score` over samples with its 95% interval; the average total effect; counts.
///
/// Only known cases that did not fail count; each contributes its grid of each kind.
pub fn summarize(cases: &[TraceRecord]) -> DatasetSummary {
    let mut summary = DatasetSummary {
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
