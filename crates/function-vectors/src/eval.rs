//! Evaluation: top-1 accuracy on the first answer token, zero-shot and with shuffled
//! labels, with and without the function vector, at one layer or every layer (the sweep).

use gpt_core::progress::{self, Progress, ProgressFn};
use gpt_core::tch::Tensor;
use gpt_core::{ForwardOptions, ResumableModel, TokenBatch};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::prompt::{draw_demos, PromptBuilder};
use crate::resume::{top1_hits, BaseRun};
use crate::rng::RandomState;
use crate::task::Splits;
use crate::vector::add_at_layers;

/// What the evaluation runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvalOptions {
    /// Demonstrations of the ICL and shuffled-label prompts.
    pub shots: usize,
    /// Layers at which the vector is added (each gives one `+FV` result per item).
    pub layers: Vec<usize>,
    /// Seed of the demonstrations' draws (a numpy `RandomState`).
    pub seed: u32,
    /// Evaluate at most this many test items (in split order); `None`: all.
    pub max_items: Option<usize>,
    /// Most lanes per batch of the fast schedule.
    pub max_rows: usize,
}

/// The stage [`evaluate_items`] reports, in test items.
pub const EVALUATION_STAGE: &str = "evaluation";

/// The outcome on one test item: top-1 hit of `y0` in each condition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemResult {
    /// Index of the query pair in the task.
    pub query: usize,
    /// Clean `shots`-shot ICL.
    pub icl: bool,
    /// Zero-shot.
    pub zero_shot: bool,
    /// Shuffled-label `shots`-shot.
    pub shuffled: bool,
    /// Zero-shot with the vector added, one per evaluated layer.
    pub zero_shot_fv: Vec<bool>,
    /// Shuffled labels with the vector added, one per evaluated layer.
    pub shuffled_fv: Vec<bool>,
}

/// Runs the conditions on the test split: per item, one `shots`-shot draw of
/// demonstrations (shared by the clean and the shuffled prompt), then clean, shuffled and
/// zero-shot passes, and the vector added at each layer of `options.layers` (fast
/// schedule, on the shuffled and zero-shot base passes). `progress` hears of
/// [`EVALUATION_STAGE`] before the first item and after each.
///
/// # Errors
/// Too few pairs, a layer out of range, model errors; [`Error::Cancelled`] when `progress`
/// stops it.
pub fn evaluate_items(
    model: &dyn ResumableModel,
    builder: &PromptBuilder<'_>,
    splits: &Splits,
    vector: &Tensor,
    options: &EvalOptions,
    progress: &mut ProgressFn<'_>,
) -> Result<Vec<ItemResult>> {
    splits.check(builder.task(), options.shots)?;
    let n_layers = model.config().n_layers;
    if let Some(&layer) = options.layers.iter().find(|&&l| l >= n_layers) {
        return Err(Error::LayerOutOfRange {
            what: "FV layer",
            layer,
            n_layers,
        });
    }
    let _guard = gpt_core::tch::no_grad_guard();
    let mut rng = RandomState::new(options.seed);
    let items: Vec<usize> = splits
        .test
        .iter()
        .copied()
        .take(options.max_items.unwrap_or(usize::MAX))
        .collect();
    let at = |done: usize| {
        Progress::new(
            EVALUATION_STAGE,
            done as u64,
            Some(items.len() as u64),
            "items",
        )
    };
    progress::report(progress, at(0))?;
    let mut out = Vec::with_capacity(items.len());
    for (i, &query) in items.iter().enumerate() {
        let demos = draw_demos(&splits.train, options.shots, &mut rng);
        let clean = builder.clean(&demos, query)?;
        let batch = TokenBatch::single(&clean.ids, model.device())?;
        let logits = model
            .forward_with(&batch, ForwardOptions::last(), &mut gpt_core::NoHooks)?
            .logits()?;
        let icl = top1_hits(&logits, clean.answer)?[0];
        let with_fv = |ids: &[i64], answer: i64| -> Result<(bool, Vec<bool>)> {
            let base = BaseRun::new(model, ids, false)?;
            let hit = top1_hits(&base.logits, answer)?[0];
            let hits = if options.layers.is_empty() {
                Vec::new()
            } else {
                let logits =
                    add_at_layers(model, &base, vector, &options.layers, options.max_rows)?;
                top1_hits(&logits, answer)?
            };
            Ok((hit, hits))
        };
        let shuffled_prompt = builder.shuffled(&demos, query, &mut rng)?;
        let (shuffled, shuffled_fv) = with_fv(&shuffled_prompt.ids, shuffled_prompt.answer)?;
        let zero = builder.zero_shot(query)?;
        let (zero_shot, zero_shot_fv) = with_fv(&zero.ids, zero.answer)?;
        out.push(ItemResult {
            query,
            icl,
            zero_shot,
            shuffled,
            zero_shot_fv,
            shuffled_fv,
        });
        progress::report(progress, at(i + 1))?;
    }
    Ok(out)
}

/// A proportion with its 95% Wilson score interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// Hits.
    pub correct: usize,
    /// Items.
    pub n: usize,
    /// `correct / n` (NaN without items).
    pub rate: f64,
    /// Lower end of the Wilson interval.
    pub ci_low: f64,
    /// Upper end of the Wilson interval.
    pub ci_high: f64,
}

impl Accuracy {
    /// The accuracy of `hits` with the Wilson interval
    /// `(p̂ + z²/2n ± z·√(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n)`, `z = 1.96`.
    pub fn of(hits: impl IntoIterator<Item = bool>) -> Self {
        let (mut correct, mut n) = (0usize, 0usize);
        for h in hits {
            n += 1;
            correct += usize::from(h);
        }
        if n == 0 {
            return Self {
                correct,
                n,
                rate: f64::NAN,
                ci_low: f64::NAN,
                ci_high: f64::NAN,
            };
        }
        let z = factscope_common::Z95;
        let (nf, p) = (n as f64, correct as f64 / n as f64);
        let denom = 1.0 + z * z / nf;
        let centre = (p + z * z / (2.0 * nf)) / denom;
        let half = z * (p * (1.0 - p) / nf + z * z / (4.0 * nf * nf)).sqrt() / denom;
        Self {
            correct,
            n,
            rate: p,
            ci_low: (centre - half).max(0.0),
            ci_high: (centre + half).min(1.0),
        }
    }
}

/// The five conditions' accuracies over one set of items.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccuracyTable {
    /// Clean `shots`-shot ICL.
    pub icl: Accuracy,
    /// Zero-shot.
    pub zero_shot: Accuracy,
    /// Zero-shot + FV at the chosen layer.
    pub zero_shot_fv: Accuracy,
    /// Shuffled labels.
    pub shuffled: Accuracy,
    /// Shuffled labels + FV at the chosen layer.
    pub shuffled_fv: Accuracy,
}

/// Accuracy of the `+FV` conditions at every evaluated layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerSweep {
    /// The layers.
    pub layers: Vec<usize>,
    /// Zero-shot + FV, all test items.
    pub zero_shot_fv: Vec<Accuracy>,
    /// Shuffled + FV, all test items.
    pub shuffled_fv: Vec<Accuracy>,
    /// Zero-shot + FV, ICL-correct items.
    pub zero_shot_fv_icl_correct: Vec<Accuracy>,
    /// Shuffled + FV, ICL-correct items.
    pub shuffled_fv_icl_correct: Vec<Accuracy>,
}

/// The accuracy summary of one task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskAccuracy {
    /// The task.
    pub task: String,
    /// The layer of the headline `+FV` numbers.
    pub layer: usize,
    /// Demonstrations in the ICL and shuffled-label prompts.
    pub shots: usize,
    /// Over every evaluated test item.
    pub all: AccuracyTable,
    /// Over the test items the model answers correctly with clean ICL (the paper's
    /// protocol: `n_shot_eval` on the filter set); `icl` is 1 there by construction.
    pub icl_correct: AccuracyTable,
    /// Every evaluated layer.
    pub sweep: LayerSweep,
}

/// Summarises items evaluated at `layers` with `shots`-shot prompts; the headline uses
/// `layer`.
///
/// # Errors
/// `layer` not among `layers`; items with another number of layers.
pub fn summarize(
    task: &str,
    items: &[ItemResult],
    layers: &[usize],
    layer: usize,
    shots: usize,
) -> Result<TaskAccuracy> {
    let at = layers.iter().position(|&l| l == layer).ok_or_else(|| {
        Error::InvalidInput(format!(
            "layer {layer} is not among the evaluated layers {layers:?}"
        ))
    })?;
    if items
        .iter()
        .any(|i| i.zero_shot_fv.len() != layers.len() || i.shuffled_fv.len() != layers.len())
    {
        return Err(Error::InvalidInput(
            "items evaluated at another number of layers".into(),
        ));
    }
    let table = |set: &[&ItemResult]| AccuracyTable {
        icl: Accuracy::of(set.iter().map(|i| i.icl)),
        zero_shot: Accuracy::of(set.iter().map(|i| i.zero_shot)),
        zero_shot_fv: Accuracy::of(set.iter().map(|i| i.zero_shot_fv[at])),
        shuffled: Accuracy::of(set.iter().map(|i| i.shuffled)),
        shuffled_fv: Accuracy::of(set.iter().map(|i| i.shuffled_fv[at])),
    };
    let all: Vec<&ItemResult> = items.iter().collect();
    let good: Vec<&ItemResult> = items.iter().filter(|i| i.icl).collect();
    let per_layer = |set: &[&ItemResult], zero: bool| -> Vec<Accuracy> {
        (0..layers.len())
            .map(|k| {
                Accuracy::of(set.iter().map(|i| {
                    if zero {
                        i.zero_shot_fv[k]
                    } else {
                        i.shuffled_fv[k]
                    }
                }))
            })
            .collect()
    };
    Ok(TaskAccuracy {
        task: task.to_string(),
        layer,
        shots,
        all: table(&all),
        icl_correct: table(&good),
        sweep: LayerSweep {
            layers: layers.to_vec(),
            zero_shot_fv: per_layer(&all, true),
            shuffled_fv: per_layer(&all, false),
            zero_shot_fv_icl_correct: per_layer(&good, true),
            shuffled_fv_icl_correct: per_layer(&good, false),
        },
    })
}
