//! The evaluation loop: for each group of cases, score the unedited model, write the group's
//! facts with an [`Editor`], score again, generate, restore the weights bit for bit, and
//! append each case's record as it finishes.

use std::collections::BTreeSet;
use std::time::Instant;

use gpt_core::progress::{Progress, ProgressFn};
use gpt_core::{apply_edits, undo_all, EditModel, Editor, Tokenizer};

use crate::dataset::EditCase;
use crate::error::{Error, Result};
use crate::fluency::{
    contains_target, fluency, generate_texts, greedy_continuations, GREEDY_TOKENS,
};
use crate::metrics::{score_cases, CaseMetrics};
use crate::probability::BatchLimits;
use crate::record::{CaseRecord, Generation, RunDir};

/// How a run goes.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Cases edited together (MEMIT writes them jointly; one-at-a-time methods in sequence)
    /// before they are scored; the weights are restored after each group.
    pub batch: usize,
    /// Measure fluency (generation is most of a `none` run's time).
    pub generation: bool,
    /// Also measure the unedited model's fluency in edit runs (the reference does; it
    /// doubles the generation time, and a `none` run over the same cases gives the same
    /// numbers).
    pub pre_generation: bool,
    /// Seed of the generation sampling (case `c`'s prompt `i` uses `seed + 1000·c + i`).
    pub seed: u64,
    /// Generated texts per batched generation.
    pub generation_rows: usize,
    /// Length of generated texts in tokens, prompt included (the reference: 100).
    pub generation_length: usize,
    /// Batching of the probability tests.
    pub limits: BatchLimits,
    /// Cases whose unedited scores are computed in one batched go.
    pub pre_chunk: usize,
    /// Go on past a case that fails (it is reported, not recorded, so `--resume` retries
    /// it) instead of stopping.
    pub skip_failed: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            batch: 1,
            generation: true,
            pre_generation: false,
            seed: 1,
            generation_rows: 64,
            generation_length: 100,
            limits: BatchLimits::default(),
            pre_chunk: 32,
            skip_failed: false,
        }
    }
}

/// The stage [`run_cases`] reports: cases finished in this call (recorded or failed) of
/// those it has to do, with the item `case_id` of the case just recorded and the count
/// `failed`.
pub const CASES_STAGE: &str = "cases";

/// What a call to [`run_cases`] did.
#[derive(Clone, Debug, Default)]
pub struct RunOutcome {
    /// Cases finished and recorded now.
    pub finished: usize,
    /// Cases skipped because an earlier call had recorded them.
    pub already_done: usize,
    /// Cases that failed (with `skip_failed`): id and error.
    pub failed: Vec<(u64, String)>,
    /// Whether the caller stopped the run.
    pub stopped: bool,
}

/// Runs `cases` (all but those in `done`) and appends a record per case to `out`. With no
/// editor, the unedited model is scored (method `none`). `progress` hears of
/// [`CASES_STAGE`] before the first case and after each recorded case; stopping it there
/// ends the run early with [`RunOutcome::stopped`] set (not an error: everything recorded
/// so far stays, and the outcome says what was done).
///
/// # Errors
/// Model and editing errors (named with the case id; the weights are restored first),
/// write errors.
#[allow(clippy::too_many_arguments)]
pub fn run_cases<'e, M: EditModel>(
    model: &mut M,
    tokenizer: &Tokenizer,
    mut editor: Option<&mut (dyn Editor + 'e)>,
    cases: &[EditCase],
    done: &BTreeSet<u64>,
    options: &RunOptions,
    out: &RunDir,
    progress: &mut ProgressFn<'_>,
) -> Result<RunOutcome> {
    check_run(cases, options, editor.is_some())?;
    let todo: Vec<&EditCase> = cases
        .iter()
        .filter(|c| !done.contains(&c.case_id))
        .collect();
    let mut outcome = RunOutcome {
        already_done: cases.len() - todo.len(),
        ..RunOutcome::default()
    };
    let chunk = options.batch * options.pre_chunk.div_ceil(options.batch).max(1);
    let total = todo.len();
    let at = |outcome: &RunOutcome| {
        Progress::new(
            CASES_STAGE,
            (outcome.finished + outcome.failed.len()) as u64,
            Some(total as u64),
            "cases",
        )
        .with_count("failed", outcome.failed.len() as u64)
    };
    if progress(&at(&outcome)).is_break() {
        outcome.stopped = true;
        return Ok(outcome);
    }
    for cases in todo.chunks(chunk) {
        let started = Instant::now();
        let generate = editor.is_none() || options.pre_generation;
        let (pre_all, pre_texts) = score_before(&*model, tokenizer, cases, options, generate)?;
        let pre_seconds = started.elapsed().as_secs_f64() / cases.len() as f64;
        for ((group, pre), texts) in cases
            .chunks(options.batch)
            .zip(pre_all.chunks(options.batch))
            .zip(pre_texts.chunks(options.batch))
        {
            let result = run_group(
                model,
                tokenizer,
                editor.as_deref_mut(),
                group,
                pre,
                texts,
                options,
            );
            let records = match result {
                Ok(records) => records,
                Err(e) if options.skip_failed => {
                    for c in group {
                        outcome.failed.push((c.case_id, e.to_string()));
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            for mut record in records {
                record.case_seconds += pre_seconds;
                out.append(&record)?;
                outcome.finished += 1;
                if progress(&at(&outcome).with_item(record.case_id)).is_break() {
                    outcome.stopped = true;
                    return Ok(outcome);
                }
            }
        }
    }
    Ok(outcome)
}

/// Refuses a batch of 0 and, for an editing run (`edits`), cases that cannot be edited.
fn check_run(cases: &[EditCase], options: &RunOptions, edits: bool) -> Result<()> {
    if options.batch == 0 {
        return Err(Error::InvalidInput(
            "the batch size (`RunOptions::batch`) must be at least 1".into(),
        ));
    }
    if edits {
        if let Some(c) = cases.iter().find(|c| !c.has_edit()) {
            return Err(Error::InvalidInput(format!(
                "case {} has no new target (a known-facts record): only method `none` can run it",
                c.case_id
            )));
        }
    }
    Ok(())
}

/// The unedited model's metrics of `cases` and, when `generate`, its texts (else none).
fn score_before<M: EditModel>(
    model: &M,
    tokenizer: &Tokenizer,
    cases: &[&EditCase],
    options: &RunOptions,
    generate: bool,
) -> Result<(Vec<CaseMetrics>, Vec<Option<Generation>>)> {
    let mut pre = score_cases(model, tokenizer, cases, options.limits)?;
    let mut texts = vec![None; cases.len()];
    if generate {
        texts = fluency_of(model, tokenizer, cases, options, &mut pre)
            .map_err(|e| named(&cases.iter().map(|c| c.case_id).collect::<Vec<_>>(), e))?;
    }
    Ok((pre, texts))
}

/// `e`, naming the cases it happened to.
pub(crate) fn named(case_ids: &[u64], e: Error) -> Error {
    Error::Case {
        case_ids: case_ids.to_vec(),
        error: Box::new(e),
    }
}

/// One group: edit, score, generate, restore (for `none`: the scores already made).
fn run_group<'e, M: EditModel>(
    model: &mut M,
    tokenizer: &Tokenizer,
    editor: Option<&mut (dyn Editor + 'e)>,
    group: &[&EditCase],
    pre: &[CaseMetrics],
    pre_texts: &[Option<Generation>],
    options: &RunOptions,
) -> Result<Vec<CaseRecord>> {
    let ids: Vec<u64> = group.iter().map(|c| c.case_id).collect();
    let started = Instant::now();
    let Some(editor) = editor else {
        return Ok(group
            .iter()
            .zip(pre)
            .zip(pre_texts)
            .map(|((case, m), g)| record(case, m.clone(), None, None, 0.0, g.clone()))
            .collect());
    };
    let requests: Vec<_> = group.iter().map(|c| c.request.clone()).collect();
    let t = Instant::now();
    // The run's progress counts cases and stops between them (records stay whole), so the
    // edit itself is not watched.
    let undos = apply_edits(
        editor,
        model,
        tokenizer,
        &requests,
        &mut gpt_core::progress::ignore,
    )
    .map_err(|e| named(&ids, e.into()))?;
    let edit_seconds = t.elapsed().as_secs_f64() / group.len() as f64;
    let scored = (|| -> Result<(Vec<CaseMetrics>, Vec<Option<Generation>>)> {
        let mut post = score_cases(&*model, tokenizer, group, options.limits)?;
        let texts = fluency_of(&*model, tokenizer, group, options, &mut post)?;
        Ok((post, texts))
    })();
    // The weights come back before anything else can go wrong.
    undo_all(model, &undos)?;
    let (post, texts) = scored.map_err(|e| named(&ids, e))?;
    let each = started.elapsed().as_secs_f64() / group.len() as f64;
    Ok(group
        .iter()
        .zip(pre.iter().zip(pre_texts))
        .zip(post.into_iter().zip(texts))
        .map(|((case, (pre, pre_text)), (post, generation))| CaseRecord {
            // The unedited texts, when made, go beside the edited ones (the report shows
            // both).
            pre_generation: pre_text.clone(),
            ..record(
                case,
                pre.clone(),
                Some(post),
                Some(edit_seconds),
                each,
                generation,
            )
        })
        .collect())
}

pub(crate) fn record(
    case: &EditCase,
    pre: CaseMetrics,
    post: Option<CaseMetrics>,
    edit_seconds: Option<f64>,
    case_seconds: f64,
    generation: Option<Generation>,
) -> CaseRecord {
    CaseRecord {
        case_id: case.case_id,
        relation_id: case.relation_id.clone(),
        request: case.request.clone(),
        target_true: case.target_true.clone(),
        pre,
        post,
        edit_seconds,
        case_seconds,
        generation,
        pre_generation: None,
    }
}

/// Generates from every case's generation prompts (all cases together) and sets each
/// `metrics[i].ge` (×100), and greedily from its rewrite and paraphrase prompts for
/// `es_gen` / `ps_gen`; returns the sampled texts per case.
pub(crate) fn fluency_of<M: EditModel + ?Sized>(
    model: &M,
    tokenizer: &Tokenizer,
    cases: &[&EditCase],
    options: &RunOptions,
    metrics: &mut [CaseMetrics],
) -> Result<Vec<Option<Generation>>> {
    if !options.generation {
        return Ok(vec![None; cases.len()]);
    }
    let base = |c: &EditCase| options.seed.wrapping_add(c.case_id.wrapping_mul(1000));
    let (mut prompts, mut seeds) = (Vec::new(), Vec::new());
    for c in cases {
        for (i, p) in c.generation_prompts.iter().enumerate() {
            prompts.push(p.clone());
            seeds.push(base(c).wrapping_add(i as u64));
        }
    }
    generation_success(model, tokenizer, cases, options, metrics)?;
    let mut texts = generate_texts(
        model.as_hookable(),
        tokenizer,
        &prompts,
        &seeds,
        // Models with a short context (tiny test models) generate what fits.
        options.generation_length.min(model.config().n_ctx),
        options.generation_rows,
    )?
    .into_iter();
    let mut out = Vec::with_capacity(cases.len());
    for (c, m) in cases.iter().zip(metrics.iter_mut()) {
        let mine: Vec<String> = texts.by_ref().take(c.generation_prompts.len()).collect();
        if mine.is_empty() {
            out.push(None);
            continue;
        }
        m.ge = Some(100.0 * mine.iter().map(|t| fluency(t)).sum::<f64>() / mine.len() as f64);
        out.push(Some(Generation {
            seed: base(c),
            texts: mine,
        }));
    }
    Ok(out)
}

/// Sets `es_gen` and `ps_gen` of each case with a new target: whether the greedy
/// continuation of its rewrite prompt, and of each paraphrase, contains the new target.
fn generation_success<M: EditModel + ?Sized>(
    model: &M,
    tokenizer: &Tokenizer,
    cases: &[&EditCase],
    options: &RunOptions,
    metrics: &mut [CaseMetrics],
) -> Result<()> {
    let mut prompts = Vec::new();
    for c in cases.iter().filter(|c| c.has_edit()) {
        prompts.push(c.request.filled());
        prompts.extend(c.paraphrase_prompts.iter().cloned());
    }
    if prompts.is_empty() {
        return Ok(());
    }
    let mut continuations = greedy_continuations(
        model.as_hookable(),
        tokenizer,
        &prompts,
        GREEDY_TOKENS,
        options.generation_rows,
    )?
    .into_iter();
    for (c, m) in cases.iter().zip(metrics.iter_mut()) {
        if !c.has_edit() {
            continue;
        }
        let hit = |t: &String| f64::from(u8::from(contains_target(t, &c.request.target)));
        m.es_gen = continuations.next().as_ref().map(hit);
        let para: Vec<f64> = continuations
            .by_ref()
            .take(c.paraphrase_prompts.len())
            .map(|t| hit(&t))
            .collect();
        m.ps_gen = (!para.is_empty()).then(|| para.iter().sum::<f64>() / para.len() as f64);
    }
    Ok(())
}
