//! The end of a sequential run: every edited case scored on the model holding all edits,
//! then on the unedited model; the curve's end points and one record per case.

use std::collections::BTreeMap;
use std::time::Instant;

use gpt_core::progress::{Progress, ProgressFn};
use gpt_core::{undo_all, EditModel};

use super::run::{Going, Setting};
use super::{CurvePoint, SequentialState, SCORING_STAGE};
use crate::dataset::EditCase;
use crate::error::Result;
use crate::metrics::{score_cases, CaseMetrics};
use crate::record::{CaseRecord, Generation};
use crate::runner::{fluency_of, record};

/// Scores every edited case on the model holding all edits (generating for the cases not yet
/// recorded), then on the unedited model; writes the end points of the curve and the
/// records.
pub(super) fn final_scores<M: EditModel>(
    setting: &Setting<'_>,
    model: &mut M,
    run: &mut Going,
    progress: &mut ProgressFn<'_>,
) -> Result<()> {
    let state = &mut run.state;
    let edited = setting.cases(&state.edited);
    let todo: Vec<usize> = (0..edited.len())
        .filter(|&i| !setting.done.contains(&edited[i].case_id))
        .collect();
    let finished = state.retention_after.is_some() || state.probe_free();
    if todo.is_empty() && finished && state.curve.iter().any(|p| p.edits == edited.len()) {
        // Every record is written and the curve ends here: a finished run.
        return Ok(());
    }
    let scoring = Final {
        setting,
        edited,
        todo,
    };
    scoring.report(progress, 0);
    let started = Instant::now();
    let (post, texts) = scoring.after_edits(&*model, state)?;
    scoring.report(progress, 1);
    // The unedited model (the edits come back only through the checkpoint).
    undo_all(model, &run.canonical.undos)?;
    run.canonical.undos.clear();
    let pre = scoring.unedited(&*model, state)?;
    state.write(&setting.dir)?;
    scoring.report(progress, 2);
    let each = started.elapsed().as_secs_f64() / scoring.edited.len().max(1) as f64;
    run.outcome.recorded += scoring.write_records(state, pre, post, texts, each)?;
    Ok(())
}

/// The final scores' cases: every edited one, and which of them (`todo`, indices into
/// `edited`) are not recorded yet.
struct Final<'a> {
    setting: &'a Setting<'a>,
    edited: Vec<&'a EditCase>,
    todo: Vec<usize>,
}

impl Final<'_> {
    /// Reports `done` of the two model states scored.
    fn report(&self, progress: &mut ProgressFn<'_>, done: u64) {
        let _ = progress(
            &Progress::new(SCORING_STAGE, done, Some(2), "model states")
                .with_count("edits", self.edited.len() as u64),
        );
    }

    /// The cases of `todo`.
    fn todo_cases(&self) -> Vec<&EditCase> {
        self.todo.iter().map(|&i| self.edited[i]).collect()
    }

    /// Scores all edited cases on `model` with all edits, generating for the `todo` ones;
    /// sets the curve's end point and the retention after. Returns the `todo` cases' metrics
    /// and texts.
    fn after_edits<M: EditModel>(
        &self,
        model: &M,
        state: &mut SequentialState,
    ) -> Result<(Vec<CaseMetrics>, Vec<Option<Generation>>)> {
        let (options, tokenizer) = (self.setting.options, self.setting.tokenizer);
        let mut post = score_cases(model, tokenizer, &self.edited, options.run.limits)?;
        let mut todo_post: Vec<CaseMetrics> = self.todo.iter().map(|&i| post[i].clone()).collect();
        let texts = fluency_of(
            model,
            tokenizer,
            &self.todo_cases(),
            &options.run,
            &mut todo_post,
        )?;
        for (&i, m) in self.todo.iter().zip(&todo_post) {
            post[i].ge = m.ge;
        }
        state.retention_after = self.setting.measure(model)?;
        state.set_point(CurvePoint::new(
            self.edited.len(),
            &post.iter().collect::<Vec<_>>(),
            state.retention_after,
        ));
        Ok((todo_post, texts))
    }

    /// Scores all edited cases on the unedited `model` (generating for the `todo` ones with
    /// `pre_generation`); sets the curve's point at 0 edits. Returns the `todo` cases'
    /// metrics.
    fn unedited<M: EditModel>(
        &self,
        model: &M,
        state: &mut SequentialState,
    ) -> Result<Vec<CaseMetrics>> {
        let (options, tokenizer) = (self.setting.options, self.setting.tokenizer);
        let mut pre = score_cases(model, tokenizer, &self.edited, options.run.limits)?;
        let mut todo_pre: Vec<CaseMetrics> = self.todo.iter().map(|&i| pre[i].clone()).collect();
        if options.run.pre_generation {
            fluency_of(
                model,
                tokenizer,
                &self.todo_cases(),
                &options.run,
                &mut todo_pre,
            )?;
            for (&i, m) in self.todo.iter().zip(&todo_pre) {
                pre[i].ge = m.ge;
            }
        }
        state.set_point(CurvePoint::new(
            0,
            &pre.iter().collect::<Vec<_>>(),
            state.retention_before,
        ));
        Ok(todo_pre)
    }

    /// Appends one record per `todo` case (`each`: the scoring seconds of one case, to which
    /// its edit's are added); returns how many.
    fn write_records(
        &self,
        state: &SequentialState,
        pre: Vec<CaseMetrics>,
        post: Vec<CaseMetrics>,
        texts: Vec<Option<Generation>>,
        each: f64,
    ) -> Result<usize> {
        let seconds: BTreeMap<u64, f64> = state
            .edited
            .iter()
            .copied()
            .zip(state.edit_seconds.iter().copied())
            .collect();
        let mut written = 0;
        for ((&i, pre), (post, generation)) in
            self.todo.iter().zip(pre).zip(post.into_iter().zip(texts))
        {
            let case = self.edited[i];
            let edit = seconds.get(&case.case_id).copied();
            let r: CaseRecord = record(
                case,
                pre,
                Some(post),
                edit,
                each + edit.unwrap_or(0.0),
                generation,
            );
            self.setting.out.append(&r)?;
            written += 1;
        }
        Ok(written)
    }
}
