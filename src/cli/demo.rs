//! `factscope demo`: the README's main job on the bundled model: next-token predictions and
//! a short greedy continuation for a few factual prompts, then a causal trace of the Eiffel
//! Tower fact (hidden, MLP and attention heatmaps written to `--out`).

use std::path::PathBuf;

use causal_trace::{GridSpec, SubjectPrompt, TraceKind, TraceSetup, Tracer};
use clap::Args;
use gpt_core::{generate, GenerateOptions, HookableModel, Sampling};

use super::common::{decode_continuation, eos_ids, ModelArgs};
use super::predict::predict;

/// Factual prompts the bundled model answers (and one it does not know as well).
const PROMPTS: [&str; 5] = [
    "The Eiffel Tower is located in the city of",
    "The capital of France is",
    "The Colosseum is located in the city of",
    "Michael Jordan plays the sport of",
    "The official language of Japan is",
];

/// Arguments of `factscope demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Tokens to generate per prompt.
    #[arg(long, default_value_t = 12)]
    max_new_tokens: usize,
    /// Where the trace's grids and heatmaps go.
    #[arg(long, default_value = "out/demo")]
    out: PathBuf,
    /// Write into --out even though it holds files factscope did not write (they are kept;
    /// a file with an output's name is still never replaced).
    #[arg(long)]
    force: bool,
    /// Skip the causal trace.
    #[arg(long)]
    no_trace: bool,
    /// Skip the edit.
    #[arg(long)]
    no_edit: bool,
}

/// Runs `factscope demo`.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    // Check where the trace's files go before any work, so an unusable --out loses nothing.
    if !args.no_trace {
        super::common::claim_outputs(&args.out, args.force, &super::trace::output_names())?;
    }
    let started = std::time::Instant::now();
    let mut loaded = args.model.load()?;
    let c = loaded.model.config();
    println!(
        "model: {} ({}, {} layers, d_model {}, {} heads / {} KV heads, vocab {}) loaded in {:.2?} on {:?}",
        loaded.path.display(),
        c.model_type,
        c.n_layers,
        c.d_model,
        c.n_heads,
        c.n_kv_heads,
        c.vocab_size,
        started.elapsed(),
        loaded.model.device()
    );
    let eos = eos_ids(&loaded);
    for prompt in PROMPTS {
        let p = predict(&loaded, prompt, 3)?;
        let top: Vec<String> = p
            .top
            .iter()
            .map(|t| format!("{:?} {:.1}%", t.text, 100.0 * t.probability))
            .collect();
        let options = GenerateOptions {
            max_new_tokens: args.max_new_tokens,
            sampling: Sampling::Greedy,
            stop_tokens: eos.clone(),
        };
        let new = generate(&loaded.model, &p.token_ids, &options)?;
        // The end-of-sequence token ends the text; it is not part of it.
        let text = decode_continuation(&loaded, new)?;
        println!(
            "\n{prompt}\n  next: {}\n  greedy: {prompt}{text}",
            top.join(", ")
        );
    }
    if !args.no_trace {
        trace(&loaded, &args.out)?;
    }
    if !args.no_edit {
        edit(&mut loaded)?;
    }
    Ok(())
}

/// The locating half: the causal trace of the Eiffel Tower fact, with heatmaps in `out`.
fn trace(loaded: &gpt_core::LoadedModel, out: &std::path::Path) -> anyhow::Result<()> {
    let (prompt, subject) = (
        "The Eiffel Tower is located in the city of",
        "The Eiffel Tower",
    );
    println!("\ncausal trace of {subject:?} in {prompt:?} (10 samples, noise 3σ, window 10) ...");
    let started = std::time::Instant::now();
    let trace_prompt = SubjectPrompt::new(&loaded.tokenizer, prompt, subject)?;
    let (corruption, sigma) = super::trace::corruption(loaded, None, None, &[subject.to_string()])?;
    let setup = TraceSetup {
        samples: 10,
        corruption,
        sigma,
        seed: 1,
    };
    let tracer = Tracer::new(&loaded.model, &loaded.tokenizer, trace_prompt, setup, None)?;
    super::trace::warn_if_noise_ineffective(tracer.clean_score(), tracer.corrupted_score());
    let specs: Vec<GridSpec> = TraceKind::ALL.iter().map(|&k| GridSpec::new(k)).collect();
    let grids = super::trace::grids_with_progress(&tracer, &specs, true)?;
    super::trace::print_summary(&grids, sigma, started.elapsed());
    super::trace::write_grids(&grids, out, &super::trace::model_name(&loaded.path))?;
    println!(
        "heatmaps: {}/trace_{{hidden,mlp,attn}}.{{png,svg}}",
        out.display()
    );
    Ok(())
}

/// The editing half: ROME writes "The Eiffel Tower is located in the city of Rome" into
/// layer 4 (statistics of the model-sampled corpus, cached), shows the prompt, a paraphrase
/// and a neighbour before and after, a continuation, then restores the weights.
fn edit(loaded: &mut gpt_core::LoadedModel) -> anyhow::Result<()> {
    use gpt_core::EditableModel;
    let hp = rome::RomeHparams::smollm2();
    let request =
        rome::RewriteRequest::new("{} is located in the city of", "The Eiffel Tower", "Rome")?;
    println!(
        "
editing with ROME: {:?} → {:?} (layer {}, key statistics of text the model samples itself) ...",
        request.filled(),
        request.target,
        hp.layer
    );
    let stats = super::edit::key_stats_for(loaded, hp.layer, None)?;
    let checks = vec![
        "Where is the Eiffel Tower? It is in the city of".to_string(),
        "The Louvre is located in the city of".to_string(),
    ];
    let outcome = super::edit::edit_and_compare(
        loaded,
        std::slice::from_ref(&request),
        &hp,
        &stats,
        &checks,
    )?;
    super::edit::print_comparison(&outcome.before, &outcome.after);
    super::edit::print_continuations(loaded, std::slice::from_ref(&request))?;
    println!(
        "edited in {:.1} s (‖ΔW‖ {:.3}); restoring the original weights",
        outcome.seconds,
        outcome.norms.first().copied().unwrap_or(0.0)
    );
    for undo in outcome.undos.iter().rev() {
        loaded.model.undo(undo)?;
    }
    Ok(())
}
