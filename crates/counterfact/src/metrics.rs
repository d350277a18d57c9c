//! Per-case metrics (reference §4.4): efficacy, paraphrase and neighbourhood success and
//! magnitude from the probability tests, plus fluency; for zsRE cases (reference §4.6)
//! efficacy, paraphrase and specificity as token-level top-1 accuracies under teacher
//! forcing.

use gpt_core::{target_tokens, ResumableModel, Tokenizer};
use serde::{Deserialize, Serialize};

use crate::dataset::{CaseKind, EditCase};
use crate::error::Result;
use crate::probability::{score_items, BatchLimits, ItemScore, ScoreItem};

/// Mean per-token NLLs of the new and the true target after one prompt.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairNll {
    /// NLL of `" " + target_new`.
    pub new: f64,
    /// NLL of `" " + target_true`.
    pub truth: f64,
}

/// The metrics of one case in one model state. Rates are fractions in `[0, 1]` (the mean
/// over the case's prompts); `None` where the case has no such prompts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CaseMetrics {
    /// Efficacy success: `[p(new) > p(true)]` on the rewrite prompt.
    #[serde(rename = "ES")]
    pub es: Option<f64>,
    /// Efficacy magnitude: `p(new) − p(true)` (per-token geometric-mean probabilities).
    #[serde(rename = "EM")]
    pub em: Option<f64>,
    /// Paraphrase success.
    #[serde(rename = "PS")]
    pub ps: Option<f64>,
    /// Paraphrase magnitude.
    #[serde(rename = "PM")]
    pub pm: Option<f64>,
    /// Neighbourhood success: `[p(true) > p(new)]` on prompts about other subjects.
    #[serde(rename = "NS")]
    pub ns: Option<f64>,
    /// Neighbourhood magnitude: `p(true) − p(new)` there.
    #[serde(rename = "NM")]
    pub nm: Option<f64>,
    /// Generation entropy (×100, the paper's scale: ≈ 620 for fluent text).
    #[serde(rename = "GE")]
    pub ge: Option<f64>,
    /// Whether the greedy continuation of the rewrite prompt contains the new target
    /// (`[0, 1]`; generation runs only).
    #[serde(rename = "ES_gen", default, skip_serializing_if = "Option::is_none")]
    pub es_gen: Option<f64>,
    /// The fraction of paraphrase prompts whose greedy continuation contains the new target.
    #[serde(rename = "PS_gen", default, skip_serializing_if = "Option::is_none")]
    pub ps_gen: Option<f64>,
    /// Known-facts records: whether the true object's first token is the top prediction.
    #[serde(rename = "K", default, skip_serializing_if = "Option::is_none")]
    pub known: Option<f64>,
    /// zsRE: the fraction of the new answer's tokens that are the top prediction after the
    /// request prompt (teacher forced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub efficacy: Option<f64>,
    /// zsRE: the same after the rephrased question.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paraphrase: Option<f64>,
    /// zsRE: the fraction of an unrelated question's answer tokens that are the top
    /// prediction after that question (not compared with the unedited model's predictions,
    /// as in ROME's evaluation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specificity: Option<f64>,
    /// zsRE: the token counts behind the accuracies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top1: Option<CaseTop1>,
    /// The NLL pairs behind the rates (rewrite, paraphrases, neighbours).
    pub nll: CaseNll,
}

/// Teacher-forced top-1 hits of one answer after one prompt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenHits {
    /// Answer tokens that are the most probable token at their position.
    pub hits: usize,
    /// The answer's tokens.
    pub tokens: usize,
}

/// The raw token-accuracy results of one zsRE case.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseTop1 {
    /// The new answer after the request prompt.
    pub rewrite: Vec<TokenHits>,
    /// The new answer after each paraphrase.
    pub paraphrase: Vec<TokenHits>,
    /// Each unrelated question's answer after it.
    pub neighborhood: Vec<TokenHits>,
}

impl CaseTop1 {
    /// The accuracies of these results: per test, hits over tokens of all its prompts
    /// together (ROME's mean over the concatenated per-token results; `None` without
    /// prompts or tokens).
    pub fn metrics(&self) -> CaseMetrics {
        let accuracy = |v: &[TokenHits]| {
            let (hits, tokens) = v
                .iter()
                .fold((0, 0), |(h, t), x| (h + x.hits, t + x.tokens));
            (tokens > 0).then(|| hits as f64 / tokens as f64)
        };
        CaseMetrics {
            efficacy: accuracy(&self.rewrite),
            paraphrase: accuracy(&self.paraphrase),
            specificity: accuracy(&self.neighborhood),
            top1: Some(self.clone()),
            ..CaseMetrics::default()
        }
    }
}

/// The raw probability-test results of one case.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CaseNll {
    /// On the rewrite prompt.
    pub rewrite: Vec<PairNll>,
    /// On each paraphrase.
    pub paraphrase: Vec<PairNll>,
    /// On each neighbourhood prompt.
    pub neighborhood: Vec<PairNll>,
}

fn mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| sum / n as f64)
}

fn indicator(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

impl CaseNll {
    /// The rates and magnitudes of these results (no fluency).
    pub fn metrics(&self) -> CaseMetrics {
        let p = |nll: f64| (-nll).exp();
        let success = |v: &[PairNll]| mean(v.iter().map(|x| indicator(x.truth > x.new)));
        let magnitude = |v: &[PairNll]| mean(v.iter().map(|x| p(x.new) - p(x.truth)));
        CaseMetrics {
            es: success(&self.rewrite),
            em: magnitude(&self.rewrite),
            ps: success(&self.paraphrase),
            pm: magnitude(&self.paraphrase),
            ns: mean(self.neighborhood.iter().map(|x| indicator(x.truth < x.new))),
            nm: mean(self.neighborhood.iter().map(|x| p(x.truth) - p(x.new))),
            ge: None,
            es_gen: None,
            ps_gen: None,
            known: None,
            efficacy: None,
            paraphrase: None,
            specificity: None,
            top1: None,
            nll: self.clone(),
        }
    }
}

/// Which items of the flat list belong to which test of which case.
struct Plan {
    items: Vec<ScoreItem>,
    /// Per case: (test, index of the new-target item, index of the true-target item).
    pairs: Vec<Vec<(Test, usize, usize)>>,
    /// Per case: the index of the true target on the rewrite prompt (known-facts records).
    known: Vec<Option<usize>>,
    /// Per case: (test, index of the item whose tokens are counted) (zsRE records).
    top1: Vec<Option<Vec<(Test, usize)>>>,
}

#[derive(Clone, Copy)]
enum Test {
    Rewrite,
    Paraphrase,
    Neighborhood,
}

fn plan(tokenizer: &Tokenizer, cases: &[&EditCase]) -> Result<Plan> {
    let mut items = Vec::new();
    let mut pairs = Vec::new();
    let mut known = Vec::new();
    let mut top1 = Vec::new();
    for case in cases {
        if case.kind == CaseKind::Zsre {
            // Token accuracy only: the new answer after the question and its paraphrases,
            // each unrelated answer after its question (ROME scores no true answer here).
            let mut add = |test: Test, prompt: &str, target: &[i64]| -> Result<(Test, usize)> {
                items.push(ScoreItem {
                    prompt: tokenizer.encode(prompt)?.ids,
                    target: target.to_vec(),
                });
                Ok((test, items.len() - 1))
            };
            let new = target_tokens(tokenizer, &case.request.target)?;
            let mut mine = vec![add(Test::Rewrite, &case.request.filled(), &new)?];
            for p in &case.paraphrase_prompts {
                mine.push(add(Test::Paraphrase, p, &new)?);
            }
            for probe in &case.neighborhood {
                let answer = target_tokens(tokenizer, &probe.true_target)?;
                mine.push(add(Test::Neighborhood, &probe.prompt, &answer)?);
            }
            pairs.push(Vec::new());
            known.push(None);
            top1.push(Some(mine));
            continue;
        }
        top1.push(None);
        let truth = target_tokens(tokenizer, &case.target_true)?;
        let mut add = |prompt: &str, target: &[i64]| -> Result<usize> {
            items.push(ScoreItem {
                prompt: tokenizer.encode(prompt)?.ids,
                target: target.to_vec(),
            });
            Ok(items.len() - 1)
        };
        let mut case_pairs = Vec::new();
        if case.has_edit() {
            let new = target_tokens(tokenizer, &case.request.target)?;
            let rewrite = case.request.filled();
            case_pairs.push((Test::Rewrite, add(&rewrite, &new)?, add(&rewrite, &truth)?));
            for p in &case.paraphrase_prompts {
                case_pairs.push((Test::Paraphrase, add(p, &new)?, add(p, &truth)?));
            }
            for probe in &case.neighborhood {
                let probe_truth = target_tokens(tokenizer, &probe.true_target)?;
                case_pairs.push((
                    Test::Neighborhood,
                    add(&probe.prompt, &new)?,
                    add(&probe.prompt, &probe_truth)?,
                ));
            }
            known.push(None);
        } else {
            known.push(Some(add(&case.request.filled(), &truth)?));
        }
        pairs.push(case_pairs);
    }
    Ok(Plan {
        items,
        pairs,
        known,
        top1,
    })
}

/// The probability-test metrics of `cases` in the model's current state, all cases' prompts
/// scored together in batches.
///
/// # Errors
/// Targets that tokenise to nothing ([`gpt_core::Error::EmptyTarget`]), model errors.
pub fn score_cases<M: ResumableModel + ?Sized>(
    model: &M,
    tokenizer: &Tokenizer,
    cases: &[&EditCase],
    limits: BatchLimits,
) -> Result<Vec<CaseMetrics>> {
    let plan = plan(tokenizer, cases)?;
    let scores = score_items(model, &plan.items, limits)?;
    Ok(assemble(&plan, &scores))
}

fn assemble(plan: &Plan, scores: &[ItemScore]) -> Vec<CaseMetrics> {
    plan.pairs
        .iter()
        .zip(&plan.known)
        .zip(&plan.top1)
        .map(|((pairs, known), top1)| {
            if let Some(top1) = top1 {
                let mut t = CaseTop1::default();
                for &(test, i) in top1 {
                    let hits = TokenHits {
                        hits: scores[i].top1_hits,
                        tokens: plan.items[i].target.len(),
                    };
                    match test {
                        Test::Rewrite => t.rewrite.push(hits),
                        Test::Paraphrase => t.paraphrase.push(hits),
                        Test::Neighborhood => t.neighborhood.push(hits),
                    }
                }
                return t.metrics();
            }
            let mut nll = CaseNll::default();
            for &(test, new, truth) in pairs {
                let pair = PairNll {
                    new: scores[new].mean_nll,
                    truth: scores[truth].mean_nll,
                };
                match test {
                    Test::Rewrite => nll.rewrite.push(pair),
                    Test::Paraphrase => nll.paraphrase.push(pair),
                    Test::Neighborhood => nll.neighborhood.push(pair),
                }
            }
            let mut m = nll.metrics();
            m.known = known.map(|i| indicator(scores[i].first_token_top1));
            m
        })
        .collect()
}

/// The items a naive loop would score for `cases` (for benchmarks and oracle tests).
///
/// # Errors
/// As [`score_cases`].
pub fn case_items(tokenizer: &Tokenizer, cases: &[&EditCase]) -> Result<Vec<ScoreItem>> {
    Ok(plan(tokenizer, cases)?.items)
}
