//! What `factscope edit` prints without `--json` (the comparison printers are shared with
//! `demo`).

use gpt_core::{generate, GenerateOptions, Sampling};
use rome::RewriteRequest;

use super::output::EditReport;
use super::Context;
use crate::cli::predict::Prediction;

/// Prints each prompt's top-5 before and after.
pub fn print_comparison(before: &[Prediction], after: &[Prediction]) {
    print_labelled(before, after, ["before", "after "]);
}

/// Prints each prompt's top-5 in two model states, labelled.
pub fn print_labelled(first: &[Prediction], second: &[Prediction], labels: [&str; 2]) {
    let top = |p: &Prediction| {
        p.top
            .iter()
            .map(|c| format!("{:?} {:.1}%", c.text, 100.0 * c.probability))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (b, a) in first.iter().zip(second) {
        println!(
            "{}\n  {}: {}\n  {}: {}",
            b.prompt,
            labels[0],
            top(b),
            labels[1],
            top(a)
        );
    }
}

/// Prints a greedy 20-token continuation of each request's prompt by the (edited) model.
pub fn print_continuations(
    loaded: &gpt_core::LoadedModel,
    requests: &[RewriteRequest],
) -> anyhow::Result<()> {
    let eos = crate::cli::common::eos_ids(loaded);
    for r in requests {
        let ids = loaded.tokenizer.encode(&r.filled())?.ids;
        let options = GenerateOptions {
            max_new_tokens: 20,
            sampling: Sampling::Greedy,
            stop_tokens: eos.clone(),
        };
        let new = generate(&loaded.model, &ids, &options)?;
        // The end-of-sequence token ends the text; it is not part of it.
        println!(
            "edited model: {}{}",
            r.filled(),
            crate::cli::common::decode_continuation(loaded, new)?
        );
    }
    Ok(())
}

/// Prints the edit's outcome: the predictions before and after, the edited model's
/// continuations, the layers, time and norms, and AlphaEdit's kept directions.
pub(super) fn print_edit(
    cx: &Context<'_>,
    loaded: &gpt_core::LoadedModel,
    report: &EditReport,
) -> anyhow::Result<()> {
    print_comparison(&report.before, &report.after);
    print_continuations(loaded, cx.requests)?;
    println!(
        "{} edit(s) at layer(s) {:?} in {:.1} s (‖ΔW‖ {})",
        cx.requests.len(),
        report.layers,
        report.seconds,
        report
            .delta_norms
            .iter()
            .map(|n| format!("{n:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(kept) = &report.kept {
        println!("null-space directions kept per layer: {kept:?}");
    }
    Ok(())
}

/// Prints where the edit was saved (after the saves succeeded): the weight changes, the
/// Hugging Face folder, and the GGUF file with each matrix's rounding and its predictions
/// beside the edited model's.
pub(super) fn print_saved(cx: &Context<'_>, report: &EditReport) {
    if let Some(out) = &cx.args.save_delta {
        println!("saved the weight changes to {}", out.display());
    }
    if let Some(dir) = &cx.args.save_model {
        println!("wrote the edited model to {}", dir.display());
    }
    if let Some(g) = &report.gguf {
        println!("wrote the edited model as GGUF to {}", g.path.display());
        for t in &g.tensors {
            println!(
                "  {}: {} → {} (max |rounding| {:.2e}, ‖rounding‖ / ‖ΔW‖ {:.3})",
                t.name, t.source_type, t.saved_type, t.max_abs_error, t.error_over_edit
            );
        }
        if let Some(e) = &g.exported {
            let types: Vec<String> = e.types.iter().map(|(t, n)| format!("{n} {t}")).collect();
            println!(
                "  {} tensors ({}), {:.1} MB, pre-tokenizer `{}`",
                e.tensors,
                types.join(", "),
                e.bytes as f64 / 1e6,
                e.pre_tokenizer
            );
            if !e.as_f16.is_empty() {
                println!(
                    "  stored as F16 (rows not whole blocks of the type): {}",
                    e.as_f16.join(", ")
                );
            }
        }
        print_labelled(&report.after, &g.predictions, ["edited   ", "from GGUF"]);
    }
}
