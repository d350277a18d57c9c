//! Probability tests (reference §4.3): the mean per-token negative log-likelihood of a
//! target after a prompt, teacher forced, for many (prompt, target) pairs at once; and
//! beside it, from the same pass, how many target tokens are the top prediction at their
//! position (zsRE's token accuracy, reference §4.6).

use gpt_core::intervention::StopAt;
use gpt_core::tch::{Kind, Tensor};
use gpt_core::{CacheHook, ForwardOptions, HookPoint, Padding, ResumableModel, TokenBatch};

use crate::error::Result;

/// One (prompt, target) pair as token ids: the target's tokens are scored after the prompt's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScoreItem {
    /// The prompt's tokens (non-empty).
    pub prompt: Vec<i64>,
    /// The target's tokens (non-empty; usually those of `" " + target`).
    pub target: Vec<i64>,
}

/// The score of one [`ScoreItem`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ItemScore {
    /// `−(1/T) Σⱼ log p(targetⱼ | prompt, target<ⱼ)`.
    pub mean_nll: f64,
    /// Whether the target's first token is the most probable next token after the prompt.
    pub first_token_top1: bool,
    /// Target tokens that are the most probable token at their position under teacher
    /// forcing: `Σⱼ [argmax p(· | prompt, target<ⱼ) = targetⱼ]` (at most the target's length).
    pub top1_hits: usize,
}

/// Rows of one batched pass at most, and padded tokens (rows × longest) at most.
#[derive(Clone, Copy, Debug)]
pub struct BatchLimits {
    /// Rows per pass.
    pub rows: usize,
    /// Padded tokens per pass.
    pub tokens: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            rows: 64,
            tokens: 2048,
        }
    }
}

/// Scores `items` in length-sorted batches (little padding): one pass per batch that stops
/// before the final norm, then only the positions that predict target tokens are unembedded.
/// Results are in `items` order.
///
/// # Errors
/// Empty prompts or targets, model errors.
pub fn score_items<M: ResumableModel + ?Sized>(
    model: &M,
    items: &[ScoreItem],
    limits: BatchLimits,
) -> Result<Vec<ItemScore>> {
    let _guard = gpt_core::tch::no_grad_guard();
    for item in items {
        if item.prompt.is_empty() || item.target.is_empty() {
            return Err(gpt_core::Error::EmptyPrompt.into());
        }
    }
    let len = |i: usize| items[i].prompt.len() + items[i].target.len() - 1;
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(len(i)));
    let mut scores = vec![
        ItemScore {
            mean_nll: f64::NAN,
            first_token_top1: false,
            top1_hits: 0,
        };
        items.len()
    ];
    let mut start = 0;
    while start < order.len() {
        // The first (longest) row sets the padded length.
        let longest = len(order[start]).max(1);
        let fit = (limits.tokens / longest).clamp(1, limits.rows.max(1));
        let chunk = &order[start..(start + fit).min(order.len())];
        score_chunk(model, items, chunk, &mut scores)?;
        start += chunk.len();
    }
    Ok(scores)
}

fn score_chunk<M: ResumableModel + ?Sized>(
    model: &M,
    items: &[ScoreItem],
    chunk: &[usize],
    scores: &mut [ItemScore],
) -> Result<()> {
    let device = model.device();
    let seqs: Vec<Vec<i64>> = chunk
        .iter()
        .map(|&i| {
            let it = &items[i];
            [&it.prompt[..], &it.target[..it.target.len() - 1]].concat()
        })
        .collect();
    let batch = TokenBatch::pad(&seqs, Padding::Right, 0, device)?;
    let last = HookPoint::resid_post(model.config().n_layers.saturating_sub(1));
    let mut hooks = (CacheHook::new(|p| p == last), StopAt(HookPoint::LnFinal));
    let _ = model.forward_hooked(&batch, &mut hooks)?;
    let resid = hooks.0.into_cache().try_get(last)?.shallow_clone();
    let (mut rows, mut pos, mut ids) = (Vec::new(), Vec::new(), Vec::new());
    for (r, &i) in chunk.iter().enumerate() {
        let it = &items[i];
        for (j, &t) in it.target.iter().enumerate() {
            rows.push(r as i64);
            pos.push((it.prompt.len() - 1 + j) as i64);
            ids.push(t);
        }
    }
    let rows_t = Tensor::f_from_slice(&rows)?.f_to_device(device)?;
    let pos_t = Tensor::f_from_slice(&pos)?.f_to_device(device)?;
    let picked = resid.f_index(&[Some(&rows_t), Some(&pos_t)])?;
    let logp = model.unembed(&picked)?.f_log_softmax(-1, Kind::Double)?;
    let ids_t = Tensor::f_from_slice(&ids)?
        .f_to_device(device)?
        .f_unsqueeze(1)?;
    let nll: Vec<f64> = Vec::<f64>::try_from(
        logp.f_gather(1, &ids_t, false)?
            .f_neg()?
            .f_flatten(0, -1)?
            .f_to_device(gpt_core::tch::Device::Cpu)?,
    )?;
    let argmax: Vec<i64> = Vec::<i64>::try_from(
        logp.f_argmax(-1, false)?
            .f_to_device(gpt_core::tch::Device::Cpu)?,
    )?;
    let mut at = 0;
    for &i in chunk {
        let target = &items[i].target;
        let t = target.len();
        let sum: f64 = nll[at..at + t].iter().sum();
        scores[i] = ItemScore {
            mean_nll: sum / t as f64,
            first_token_top1: argmax[at] == target[0],
            // The argmax of every read position is already here (one per target token).
            top1_hits: argmax[at..at + t]
                .iter()
                .zip(target)
                .filter(|(a, b)| a == b)
                .count(),
        };
        at += t;
    }
    Ok(())
}

/// The oracle of [`score_items`]: one full forward pass per item, logits at every position.
///
/// # Errors
/// As [`score_items`].
pub fn score_items_naive<M: ResumableModel + ?Sized>(
    model: &M,
    items: &[ScoreItem],
) -> Result<Vec<ItemScore>> {
    let _guard = gpt_core::tch::no_grad_guard();
    items
        .iter()
        .map(|it| {
            if it.prompt.is_empty() || it.target.is_empty() {
                return Err(gpt_core::Error::EmptyPrompt.into());
            }
            let ids = [&it.prompt[..], &it.target[..it.target.len() - 1]].concat();
            let batch = TokenBatch::single(&ids, model.device())?;
            let options = ForwardOptions::all();
            let logits = model
                .forward_with(&batch, options, &mut gpt_core::NoHooks)?
                .logits()?
                .f_select(0, 0)?
                .f_log_softmax(-1, Kind::Double)?;
            let mut sum = 0.0;
            let mut hits = 0;
            for (j, &t) in it.target.iter().enumerate() {
                let at = (it.prompt.len() - 1 + j) as i64;
                sum -= logits.f_double_value(&[at, t])?;
                let top = logits
                    .f_select(0, at)?
                    .f_argmax(-1, false)?
                    .f_int64_value(&[])?;
                hits += usize::from(top == t);
            }
            let first = logits
                .f_select(0, (it.prompt.len() - 1) as i64)?
                .f_argmax(-1, false)?
                .f_int64_value(&[])?;
            Ok(ItemScore {
                mean_nll: sum / it.target.len() as f64,
                first_token_top1: first == it.target[0],
                top1_hits: hits,
            })
        })
        .collect()
}
