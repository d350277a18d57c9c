//! The extraction recipe for one task (reference `evaluate_function_vector.py`, steps 1–5):
//! split; keep the valid queries the model answers with clean ICL; average head outputs
//! over clean prompts; scan every head's indirect effect on shuffled-label prompts.

use gpt_core::progress::{self, Progress, ProgressFn};
use gpt_core::{ForwardOptions, ResumableModel, TokenBatch};
use serde::{Deserialize, Serialize};

use crate::activations::{mean_head_activations, MeanActivations};
use crate::error::Result;
use crate::prompt::{draw_demos, IclPrompt, PromptBuilder};
use crate::resume::top1_hits;
use crate::rng::RandomState;
use crate::scan::{head_scan, HeadScan, Schedule};
use crate::task::Splits;

/// Settings of an extraction (defaults: the reference's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractSettings {
    /// Demonstrations per prompt (10).
    pub shots: usize,
    /// Clean prompts averaged for `z̄` (100).
    pub mean_trials: usize,
    /// Shuffled-label prompts of the head scan (25).
    pub cie_trials: usize,
    /// Seed: splits use it as is; the draws use numpy `RandomState`s seeded with
    /// `seed + 42` (valid filter), `seed + 1` (mean activations), `seed + 2` (head scan).
    pub seed: u32,
    /// Schedule of the head scan.
    pub schedule: Schedule,
    /// Most lanes per batch of the fast schedule.
    pub max_rows: usize,
}

impl Default for ExtractSettings {
    fn default() -> Self {
        Self {
            shots: 10,
            mean_trials: 100,
            cie_trials: 25,
            seed: 42,
            schedule: Schedule::Fast,
            max_rows: 512,
        }
    }
}

/// The stage [`icl_correct`] reports: clean ICL on each valid query, in queries.
pub const VALID_ICL_STAGE: &str = "valid ICL";

/// What the recipe computes for one task.
#[derive(Debug)]
pub struct Extraction {
    /// The task's name.
    pub task: String,
    /// The splits.
    pub splits: Splits,
    /// Valid queries answered correctly (top-1) with clean ICL.
    pub icl_correct_valid: Vec<usize>,
    /// Whether the queries of the mean activations and the scan were those (`false`: none
    /// was, so every valid query was used).
    pub queries_filtered: bool,
    /// `z̄` over clean prompts.
    pub mean: MeanActivations,
    /// The CIE of every head on the shuffled-label prompts.
    pub scan: HeadScan,
}

/// Items of `items` whose clean `shots`-shot prompt (fresh demonstrations each) the model
/// answers correctly at top-1. `progress` hears of [`VALID_ICL_STAGE`] before the first
/// item and after each.
///
/// # Errors
/// Model errors; [`Error::Cancelled`](crate::Error::Cancelled) when `progress` stops it.
pub fn icl_correct(
    model: &dyn ResumableModel,
    builder: &PromptBuilder<'_>,
    train: &[usize],
    items: &[usize],
    shots: usize,
    rng: &mut RandomState,
    progress: &mut ProgressFn<'_>,
) -> Result<Vec<usize>> {
    let at = |done: usize| {
        Progress::new(
            VALID_ICL_STAGE,
            done as u64,
            Some(items.len() as u64),
            "queries",
        )
    };
    progress::report(progress, at(0))?;
    let _guard = gpt_core::tch::no_grad_guard();
    let mut keep = Vec::new();
    for (i, &q) in items.iter().enumerate() {
        let demos = draw_demos(train, shots, rng);
        let p = builder.clean(&demos, q)?;
        let batch = TokenBatch::single(&p.ids, model.device())?;
        let logits = model
            .forward_with(&batch, ForwardOptions::last(), &mut gpt_core::NoHooks)?
            .logits()?;
        if top1_hits(&logits, p.answer)?[0] {
            keep.push(q);
        }
        progress::report(progress, at(i + 1))?;
    }
    Ok(keep)
}

/// `n` prompts of `shots` demonstrations from `train` and a query drawn uniformly from
/// `queries`; labels shuffled when `shuffled`.
///
/// # Errors
/// No queries; tokenizer errors.
pub fn draw_prompts(
    builder: &PromptBuilder<'_>,
    train: &[usize],
    queries: &[usize],
    shots: usize,
    n: usize,
    shuffled: bool,
    rng: &mut RandomState,
) -> Result<Vec<IclPrompt>> {
    if queries.is_empty() {
        return Err(crate::Error::InvalidInput("no queries to draw from".into()));
    }
    (0..n)
        .map(|_| {
            let demos = draw_demos(train, shots, rng);
            let q = queries[rng.interval((queries.len() - 1) as u32) as usize];
            if shuffled {
                builder.shuffled(&demos, q, rng)
            } else {
                builder.clean(&demos, q)
            }
        })
        .collect()
}

/// Runs the recipe on one task. `progress` hears of three stages in turn:
/// [`VALID_ICL_STAGE`], [`MEAN_ACTIVATIONS_STAGE`](crate::MEAN_ACTIVATIONS_STAGE) and
/// [`HEAD_SCAN_STAGE`](crate::HEAD_SCAN_STAGE) (the long one),
/// each before its first unit and after each.
///
/// # Errors
/// Too few pairs for `shots`; model errors; [`Error::Cancelled`](crate::Error::Cancelled)
/// when `progress` stops it.
pub fn extract(
    model: &dyn ResumableModel,
    builder: &PromptBuilder<'_>,
    settings: &ExtractSettings,
    progress: &mut ProgressFn<'_>,
) -> Result<Extraction> {
    let task = builder.task();
    let splits = Splits::new(task.len(), settings.seed);
    splits.check(task, settings.shots)?;
    let shots = settings.shots;

    let mut rng = RandomState::new(settings.seed.wrapping_add(42));
    let good = icl_correct(
        model,
        builder,
        &splits.train,
        &splits.valid,
        shots,
        &mut rng,
        progress,
    )?;
    let queries_filtered = !good.is_empty();
    let queries: &[usize] = if queries_filtered {
        &good
    } else {
        &splits.valid
    };

    let mut rng = RandomState::new(settings.seed.wrapping_add(1));
    let clean = draw_prompts(
        builder,
        &splits.train,
        queries,
        shots,
        settings.mean_trials,
        false,
        &mut rng,
    )?;
    let mean = mean_head_activations(model, &clean, progress)?;

    let mut rng = RandomState::new(settings.seed.wrapping_add(2));
    let corrupted = draw_prompts(
        builder,
        &splits.train,
        queries,
        shots,
        settings.cie_trials,
        true,
        &mut rng,
    )?;
    let scan = head_scan(
        model,
        &corrupted,
        &mean,
        settings.schedule,
        settings.max_rows,
        progress,
    )?;
    Ok(Extraction {
        task: task.name.clone(),
        splits,
        icl_correct_valid: good,
        queries_filtered,
        mean,
        scan,
    })
}
