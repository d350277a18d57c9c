//! The head scan: the causal indirect effect (CIE) of every `(layer, head)`.
//!
//! For a shuffled-label prompt `p̃` with answer `y0`: `P0 = softmax(logits_last)[y0]`; set
//! only `z_{l,h}[last] := z̄[l, h]` and rerun: `CIE(l, h) = softmax(logits_last)[y0] − P0`
//! (a full-vocabulary probability difference). The mean over prompts is the task's average
//! indirect effect (AIE); the mean over tasks gives the universal head set.
//!
//! Two schedules: [`Schedule::Fast`] (one base pass per prompt, then every head's lane runs
//! only the last position from its layer up, batched; see [`crate::resume`]) and
//! [`Schedule::Naive`] (one full pass per head, the reference's way and the oracle).
//! **Invariant:** both give the same CIE (tested to 1e-4).

use gpt_core::intervention::{SiteWrite, Sites};
use gpt_core::progress::{self, Progress, ProgressFn};
use gpt_core::{ForwardOptions, HookPoint, LaneWrite, ResumableModel, TokenBatch};
use serde::{Deserialize, Serialize};

use crate::activations::MeanActivations;
use crate::error::{Error, Result};
use crate::prompt::IclPrompt;
use crate::resume::{answer_probs, BaseRun};

pub use gpt_core::Schedule;

/// The CIE of every head on every prompt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadScan {
    /// Layers of the model.
    pub n_layers: usize,
    /// Query heads per layer.
    pub n_heads: usize,
    /// `P0` of each prompt (the unpatched probability of `y0`).
    pub base_probs: Vec<f64>,
    /// Per prompt, `CIE[l][h]`.
    pub cie: Vec<Vec<Vec<f64>>>,
}

impl HeadScan {
    /// The average indirect effect `AIE[l][h]` = mean over prompts of the CIE.
    pub fn aie(&self) -> Vec<Vec<f64>> {
        let n = self.cie.len().max(1) as f64;
        (0..self.n_layers)
            .map(|l| {
                (0..self.n_heads)
                    .map(|h| self.cie.iter().map(|t| t[l][h]).sum::<f64>() / n)
                    .collect()
            })
            .collect()
    }
}

/// One head with a score (its AIE).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadScore {
    /// Layer.
    pub layer: usize,
    /// Query head.
    pub head: usize,
    /// Score (AIE).
    pub score: f64,
}

/// The `k` heads of largest score (ties: lower layer, then lower head first); NaN scores
/// are never chosen.
pub fn top_heads(scores: &[Vec<f64>], k: usize) -> Vec<HeadScore> {
    let mut all: Vec<HeadScore> = scores
        .iter()
        .enumerate()
        .flat_map(|(layer, row)| {
            row.iter()
                .enumerate()
                .map(move |(head, &score)| HeadScore { layer, head, score })
        })
        .filter(|h| !h.score.is_nan())
        .collect();
    all.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.layer.cmp(&b.layer))
            .then(a.head.cmp(&b.head))
    });
    all.truncate(k);
    all
}

/// The element-wise mean of several `[L][H]` score grids (e.g. per-task AIE → the
/// cross-task AIE of the universal head set).
///
/// # Errors
/// No grids, or grids of different shapes.
pub fn mean_grid(grids: &[Vec<Vec<f64>>]) -> Result<Vec<Vec<f64>>> {
    let first = grids
        .first()
        .ok_or_else(|| Error::InvalidInput("no score grids to average".into()))?;
    let shape = |g: &Vec<Vec<f64>>| g.iter().map(Vec::len).collect::<Vec<_>>();
    if grids.iter().any(|g| shape(g) != shape(first)) {
        return Err(Error::InvalidInput(
            "score grids of different shapes".into(),
        ));
    }
    let n = grids.len() as f64;
    Ok((0..first.len())
        .map(|l| {
            (0..first[l].len())
                .map(|h| grids.iter().map(|g| g[l][h]).sum::<f64>() / n)
                .collect()
        })
        .collect())
}

fn check_mean(model: &dyn ResumableModel, mean: &MeanActivations) -> Result<()> {
    let c = model.config();
    let want = [c.n_layers as i64, c.n_heads as i64, c.d_head as i64];
    if mean.mean.size() != want {
        return Err(Error::InvalidInput(format!(
            "mean activations of shape {:?} for a model with [layers, heads, d_head] = {want:?}",
            mean.mean.size()
        )));
    }
    Ok(())
}

/// `(P0, CIE[l][h])` of one prompt.
///
/// # Errors
/// Mean activations of another shape; model errors.
pub fn scan_prompt(
    model: &dyn ResumableModel,
    prompt: &IclPrompt,
    mean: &MeanActivations,
    schedule: Schedule,
    max_rows: usize,
) -> Result<(f64, Vec<Vec<f64>>)> {
    check_mean(model, mean)?;
    let _guard = gpt_core::tch::no_grad_guard();
    let c = model.config();
    let (n_layers, n_heads) = (c.n_layers, c.n_heads);
    let heads: Vec<(usize, usize)> = (0..n_layers)
        .flat_map(|l| (0..n_heads).map(move |h| (l, h)))
        .collect();
    let (p0, probs) = match schedule {
        Schedule::Fast => {
            let base = BaseRun::new(model, &prompt.ids, false)?;
            let p0 = answer_probs(&base.logits, prompt.answer)?[0];
            let lanes = heads
                .iter()
                .map(|&(l, h)| {
                    let write = LaneWrite::set(HookPoint::z(l), 0, mean.head(l, h)?).head(h);
                    base.lane(l, &base.entering(l)?, vec![write])
                })
                .collect::<Result<Vec<_>>>()?;
            let logits = base.run_lanes(model, &lanes, max_rows)?;
            (p0, answer_probs(&logits, prompt.answer)?)
        }
        Schedule::Naive => {
            let batch = TokenBatch::single(&prompt.ids, model.device())?;
            let run = |hooks: &mut dyn gpt_core::Intervention| -> Result<f64> {
                let logits = model
                    .forward_with(&batch, ForwardOptions::last(), hooks)?
                    .logits()?;
                Ok(answer_probs(&logits, prompt.answer)?[0])
            };
            let p0 = run(&mut gpt_core::NoHooks)?;
            let mut probs = Vec::with_capacity(heads.len());
            for &(l, h) in &heads {
                let mut write = SiteWrite::set(
                    HookPoint::z(l),
                    Sites::position(-1).head(h),
                    mean.head(l, h)?,
                );
                probs.push(run(&mut write)?);
            }
            (p0, probs)
        }
    };
    let cie = probs
        .chunks(n_heads)
        .map(|row| row.iter().map(|p| p - p0).collect())
        .collect();
    Ok((p0, cie))
}

/// The stage [`head_scan`] reports, in prompts.
pub const HEAD_SCAN_STAGE: &str = "head scan";

/// The CIE of every head on every prompt (the prompts are the corrupted, shuffled-label
/// ones). `progress` hears of [`HEAD_SCAN_STAGE`] before the first prompt and after each.
///
/// # Errors
/// As [`scan_prompt`]; [`Error::Cancelled`] when `progress` stops
/// it.
pub fn head_scan(
    model: &dyn ResumableModel,
    prompts: &[IclPrompt],
    mean: &MeanActivations,
    schedule: Schedule,
    max_rows: usize,
    progress: &mut ProgressFn<'_>,
) -> Result<HeadScan> {
    let c = model.config();
    let mut scan = HeadScan {
        n_layers: c.n_layers,
        n_heads: c.n_heads,
        base_probs: Vec::with_capacity(prompts.len()),
        cie: Vec::with_capacity(prompts.len()),
    };
    let at = |done: usize| {
        Progress::new(
            HEAD_SCAN_STAGE,
            done as u64,
            Some(prompts.len() as u64),
            "prompts",
        )
    };
    progress::report(progress, at(0))?;
    for (i, p) in prompts.iter().enumerate() {
        let (p0, cie) = scan_prompt(model, p, mean, schedule, max_rows)?;
        scan.base_probs.push(p0);
        scan.cie.push(cie);
        progress::report(progress, at(i + 1))?;
    }
    Ok(scan)
}
