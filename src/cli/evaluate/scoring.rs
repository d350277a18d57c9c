//! The scoring step of `factscope evaluate`: the run's settings, and the cases edited and
//! scored, either each batch on its own (restored after) or as one chain (`--sequential`).

use std::collections::BTreeSet;

use anyhow::Context as _;
use counterfact::report::Figure as ReportFigure;
use counterfact::{
    run_cases, run_sequential, EditCase, RetentionProbe, RunDir, RunOptions, RunSettings,
    SequentialOptions,
};
use gpt_core::Editor;

use super::cases::Selected;
use super::trace_examples::trace_examples;
use super::EvaluateArgs;
use crate::cli::progress::ProgressView;

/// What both kinds of run read: the arguments, this shard's cases, those already recorded
/// (a resumed run skips them), the run folder and the scoring options.
pub(super) struct Job<'a> {
    pub(super) args: &'a EvaluateArgs,
    pub(super) cases: &'a [EditCase],
    pub(super) done: &'a BTreeSet<u64>,
    pub(super) dir: &'a RunDir,
    pub(super) options: RunOptions,
}

/// What a run did now: a line for above the table, and trace figures for the report.
pub(super) struct Scored {
    pub(super) did: String,
    pub(super) traces: Vec<ReportFigure>,
}

/// The run's settings as `settings.json` records them (a resumed run must match them).
pub(super) fn run_settings(
    args: &EvaluateArgs,
    loaded: &gpt_core::LoadedModel,
    selected: &Selected,
    hparams: serde_json::Value,
    probe: Option<&(String, RetentionProbe)>,
) -> anyhow::Result<RunSettings> {
    Ok(RunSettings {
        method: args.method.name().into(),
        model: args.model.path()?.display().to_string(),
        model_fingerprint: rome::model_fingerprint(&loaded.model, 0)?,
        cases: args.cases.display().to_string(),
        cases_fingerprint: selected.fingerprint.clone(),
        limit: args.limit,
        batch: args.batch,
        generation: !args.no_generation,
        seed: args.seed,
        hparams,
        sequential: args.sequential.then(|| counterfact::SequentialSettings {
            checkpoint_every: args.checkpoint_every,
            retention: probe.map(|(what, _)| what.clone()),
        }),
    })
}

/// The scoring options from the arguments (the rest as the library's defaults).
pub(super) fn run_options(args: &EvaluateArgs) -> RunOptions {
    RunOptions {
        batch: args.batch,
        generation: !args.no_generation,
        pre_generation: args.pre_generation,
        seed: args.seed,
        ..RunOptions::default()
    }
}

/// `--sequential`: writes the cases batch by batch into the same model and scores what is
/// in it (with the retention probe at each checkpoint); says which cases' batches failed.
pub(super) fn run_chain(
    job: Job<'_>,
    loaded: &mut gpt_core::LoadedModel,
    editor: Option<&mut (dyn Editor + '_)>,
    probe: Option<&RetentionProbe>,
) -> anyhow::Result<Scored> {
    let args = job.args;
    let editor = editor.context("--sequential needs an editing --method")?;
    let mut view = ProgressView::new(&format!("evaluate {}", args.method.name()));
    let outcome = run_sequential(
        &mut loaded.model,
        &loaded.tokenizer,
        editor,
        job.cases,
        job.done,
        &SequentialOptions {
            batch: args.batch,
            checkpoint_every: args.checkpoint_every,
            run: job.options,
        },
        probe,
        job.dir,
        &mut view.callback(),
    )?;
    view.finish();
    for (id, e) in &outcome.failed {
        eprintln!("case {id} not edited (its batch failed): {e}");
    }
    let did = format!(
        "{} edit(s) in the model ({} batch(es) written now), {} case(s) recorded now",
        outcome.edits, outcome.batches, outcome.recorded
    );
    Ok(Scored {
        did,
        traces: Vec::new(),
    })
}

/// Independent batches: each edited, scored and undone (no edit with method `none`); then
/// the `--trace-examples` traces. Says which cases failed.
pub(super) fn run_independent(
    job: Job<'_>,
    loaded: &mut gpt_core::LoadedModel,
    mut editor: Option<&mut (dyn Editor + '_)>,
) -> anyhow::Result<Scored> {
    let args = job.args;
    let mut view = ProgressView::new(&format!("evaluate {}", args.method.name()));
    let outcome = run_cases(
        &mut loaded.model,
        &loaded.tokenizer,
        editor.as_deref_mut(),
        job.cases,
        job.done,
        &job.options,
        job.dir,
        &mut view.callback(),
    )?;
    view.finish();
    for (id, e) in &outcome.failed {
        eprintln!("case {id} failed: {e}");
    }
    let traces = match editor {
        Some(editor) if args.trace_examples > 0 => trace_examples(
            loaded,
            editor,
            &job.cases[..args.trace_examples.min(job.cases.len())],
            &args.out.join("trace_examples"),
        )?,
        _ => Vec::new(),
    };
    let did = format!(
        "{} case(s) now, {} done before{}",
        outcome.finished,
        outcome.already_done,
        if outcome.failed.is_empty() {
            String::new()
        } else {
            format!(", {} failed", outcome.failed.len())
        }
    );
    Ok(Scored { did, traces })
}
