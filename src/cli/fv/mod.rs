//! `factscope fv`: function vectors of in-context-learning tasks (Todd et al. 2024): the
//! head scan, the vector, and its accuracy zero-shot and with shuffled labels.
//!
//! [`run`] goes step by step, one file per step: `setup.rs` checks the arguments and task
//! files (before the model runs, so bad input costs nothing) and claims the output names,
//! `extraction.rs` extracts each task and picks the top heads, `evaluation.rs` measures the
//! vectors (layer sweep, `--arithmetic`), `control_vector.rs` writes
//! `--save-control-vector`, `output.rs` builds the report, writes `--out` and prints, and
//! `markdown.rs` renders the accuracy tables.

mod control_vector;
mod evaluation;
mod extraction;
mod markdown;
mod output;
mod setup;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

use clap::Args;
use function_vectors::PromptBuilder;
use gpt_core::HookableModel;

use super::common::ModelArgs;

/// Arguments of `factscope fv`.
#[derive(Args, Debug)]
pub struct FvArgs {
    /// A task file: a JSON list of {"input", "output"} pairs. Repeat for several tasks: the
    /// heads are then the top heads of the indirect effect averaged over the tasks.
    #[arg(long = "task", value_name = "FILE", required = true)]
    tasks: Vec<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    /// Number of top heads summed into the vector.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true)]
    heads: usize,
    /// Layer whose output (`blocks.{L}.hook_resid_post`) gets the vector [default: ⌊layers/3⌋]
    #[arg(long, value_name = "L", allow_negative_numbers = true)]
    layer: Option<usize>,
    /// Shuffled-label prompts of the head scan (per task).
    #[arg(long, default_value_t = 25)]
    trials: usize,
    /// Clean prompts averaged for the mean head activations (per task).
    #[arg(long, default_value_t = 100)]
    mean_trials: usize,
    /// Demonstrations per prompt.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true)]
    shots: usize,
    /// Seed of the splits and of every draw (the reference's scripts use 42).
    #[arg(long, default_value_t = 1)]
    seed: u32,
    /// Evaluate at most this many test items per task [default: all].
    #[arg(long, value_name = "N")]
    max_eval: Option<usize>,
    /// Evaluate at the chosen layer only (no layer sweep).
    #[arg(long)]
    no_sweep: bool,
    /// Run the head scan with one full pass per head (the slow oracle).
    #[arg(long)]
    naive: bool,
    /// Folder for heads.{json,svg,png}, fv.safetensors, accuracy.{json,md} and
    /// layer-sweep.{svg,png}.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write into --out even though it holds files factscope did not write (they are kept;
    /// a file with an output's name is still never replaced).
    #[arg(long)]
    force: bool,
    /// Print the accuracy table and the top heads as JSON.
    #[arg(long)]
    json: bool,
    /// Vector arithmetic on lists built from the one --task D (Todd et al. §5): the tasks
    /// "first item, D" (AD), "last item, copied" (BC), "first item, copied" (AC) and "last
    /// item, D" (BD) are extracted with one head set, and v_AD + v_BC − v_AC is evaluated on
    /// BD beside BD's own vector.
    #[arg(long)]
    arithmetic: bool,
    /// Items per list of the --arithmetic tasks.
    #[arg(long, default_value_t = 3, value_name = "N")]
    list_len: usize,
    /// Also write the function vector (at --layer, times --control-vector-scale) as a
    /// llama.cpp control vector (`llama-cli --control-vector FILE`): one --task, a layer
    /// above 0, a new file.
    #[arg(long, value_name = "FILE.gguf")]
    save_control_vector: Option<PathBuf>,
    /// The factor the saved control vector is multiplied by.
    #[arg(long, default_value_t = 1.0, requires = "save_control_vector")]
    control_vector_scale: f64,
}

/// What every step after the checks reads: the arguments, the model, the layer the vector is
/// added at, and one prompt builder per task (in `--task` order; with `--arithmetic` the
/// four list tasks AD, BC, AC, BD).
struct Context<'a> {
    args: &'a FvArgs,
    loaded: &'a gpt_core::LoadedModel,
    layer: usize,
    builders: &'a [PromptBuilder<'a>],
}

/// Runs `factscope fv`.
pub fn run(args: FvArgs) -> anyhow::Result<()> {
    let shots = args.shots;
    run_checked(args).map_err(|e| {
        // The library says a prompt is too long; only here is it known which flag made it so.
        let too_long = e.chain().any(|c| {
            matches!(
                c.downcast_ref::<gpt_core::Error>(),
                Some(gpt_core::Error::ContextOverflow { .. })
            ) || matches!(
                c.downcast_ref::<function_vectors::Error>(),
                Some(function_vectors::Error::Model(
                    gpt_core::Error::ContextOverflow { .. }
                ))
            )
        });
        if too_long {
            e.context(format!(
                "--shots {shots}: prompts of {shots} demonstrations are longer than the model's context; lower --shots"
            ))
        } else {
            e
        }
    })
}

/// The steps of `factscope fv`, in order; the order of the checks is the order of the
/// errors a user sees, and every check comes before any output is written.
fn run_checked(args: FvArgs) -> anyhow::Result<()> {
    setup::check_counts(&args)?;
    let tasks = setup::load_tasks(&args)?;
    let loaded = args.model.load()?;
    let layer = setup::check_against_model(&args, loaded.model.config())?;
    let builders = tasks
        .iter()
        .map(|t| PromptBuilder::new(&loaded.tokenizer, loaded.model.config(), t))
        .collect::<Result<Vec<_>, _>>()?;
    let cx = Context {
        args: &args,
        loaded: &loaded,
        layer,
        builders: &builders,
    };
    if let Some(out) = &args.out {
        setup::claim_out(&cx, out)?;
    }
    let settings = setup::extract_settings(&args);
    let extracted = extraction::extract_tasks(&cx, &settings)?;
    let evaluated = evaluation::evaluate_tasks(&cx, &extracted, &settings)?;
    control_vector::save(&cx, &evaluated.vectors)?;
    let arithmetic = if args.arithmetic {
        Some(evaluation::evaluate_arithmetic(
            &cx, &extracted, &evaluated,
        )?)
    } else {
        None
    };
    let report = output::report(&cx, &extracted, &evaluated.accuracies, arithmetic);
    if let Some(out) = &args.out {
        output::write_out(&cx, out, &extracted, &evaluated, &report)?;
    }
    output::print(&args, &report)
}
