//! `--trace-examples`: causal traces of the first cases' rewrite prompts before and after
//! their edit, for the report.

use std::path::Path;

use causal_trace::{GridSpec, SubjectPrompt, TraceKind, TraceSetup, Tracer};
use counterfact::report::Figure as ReportFigure;
use counterfact::EditCase;
use gpt_core::Editor;
use viz::Figure;

use crate::cli::common::check_out_dir;

/// Causal traces (hidden states) of each case's rewrite prompt before and after its edit,
/// as report figures; also written to `dir` as SVG. The model is restored after each.
pub(super) fn trace_examples(
    loaded: &mut gpt_core::LoadedModel,
    editor: &mut dyn Editor,
    cases: &[EditCase],
    dir: &Path,
) -> anyhow::Result<Vec<ReportFigure>> {
    check_out_dir("--trace-examples", dir)?;
    let name = crate::cli::trace::model_name(&loaded.path);
    let mut figures = Vec::new();
    for case in cases {
        let subjects = [case.request.subject.clone()];
        let (corruption, sigma) = crate::cli::trace::corruption(loaded, None, None, &subjects)?;
        let setup = TraceSetup {
            samples: 10,
            corruption,
            sigma,
            seed: 1,
        };
        let (before, answer_before) = trace_hidden(loaded, case, &setup, &name)?;
        let undos = gpt_core::apply_edits(
            editor,
            &mut loaded.model,
            &loaded.tokenizer,
            std::slice::from_ref(&case.request),
            &mut gpt_core::progress::ignore,
        )?;
        // The model is restored before a failed trace's error is returned.
        let after = trace_hidden(loaded, case, &setup, &name);
        gpt_core::undo_all(&mut loaded.model, &undos)?;
        let (after, answer_after) = after?;
        for (when, svg, answer) in [
            ("before", before, answer_before),
            ("after", after, answer_after),
        ] {
            factscope_common::write_atomic(
                &dir.join(format!("case_{}_{when}.svg", case.case_id)),
                svg.as_bytes(),
            )?;
            figures.push(ReportFigure {
                title: format!(
                    "Case {}, {when} the edit (→ {}): hidden-state trace of {:?}, answer {answer:?}",
                    case.case_id,
                    case.request.target,
                    case.request.filled()
                ),
                svg,
            });
        }
    }
    Ok(figures)
}

/// The hidden-state trace of `case`'s rewrite prompt on the model as it is now: the heatmap
/// as SVG and the model's answer.
fn trace_hidden(
    loaded: &gpt_core::LoadedModel,
    case: &EditCase,
    setup: &TraceSetup,
    name: &str,
) -> anyhow::Result<(String, String)> {
    let prompt = SubjectPrompt::new(
        &loaded.tokenizer,
        &case.request.filled(),
        &case.request.subject,
    )?;
    let tracer = Tracer::new(
        &loaded.model,
        &loaded.tokenizer,
        prompt,
        setup.clone(),
        None,
    )?;
    let grid = tracer.grid(&GridSpec::new(TraceKind::Hidden))?;
    Ok((
        grid.to_heatmap(name).to_svg()?,
        tracer.answer().text.clone(),
    ))
}
