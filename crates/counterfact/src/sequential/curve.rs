//! The curve of a sequential run: the metrics (and retention) against the number of edits.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metrics::CaseMetrics;
use crate::retention::RetentionScores;
use crate::summary::{summarize, Bootstrap};

/// One point of the curve: the mean of each metric over the cases edited so far (at 0
/// edits: the unedited model on all the run's edited cases), with retention.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Edits in the model.
    pub edits: usize,
    /// Means by metric name (`ES`, `PS`, `NS`, `S`, …, rates in `[0, 1]`; `GE` where texts
    /// are generated: after all edits, and at 0 edits with `pre_generation`).
    #[serde(flatten)]
    pub metrics: BTreeMap<String, f64>,
    /// Held-out perplexity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perplexity: Option<f64>,
    /// Known-facts top-1 accuracy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_facts: Option<f64>,
}

impl CurvePoint {
    /// The point at `edits` edits of the cases' `metrics` and the model's `retention`.
    pub(super) fn new(
        edits: usize,
        metrics: &[&CaseMetrics],
        retention: Option<RetentionScores>,
    ) -> Self {
        // Only the means are plotted: no resamples.
        let table = summarize(
            metrics,
            Bootstrap {
                resamples: 0,
                seed: 0,
            },
        );
        let retention = retention.unwrap_or_default();
        Self {
            edits,
            metrics: table
                .into_iter()
                .filter(|(_, i)| i.mean.is_finite())
                .map(|(k, i)| (k, i.mean))
                .collect(),
            perplexity: retention.perplexity,
            known_facts: retention.known_facts,
        }
    }
}
