//! `factscope predict`: the top-K next tokens after a prompt.

use anyhow::Context;
use clap::Args;
use gpt_core::HookableModel;

use super::common::ModelArgs;

/// Arguments of `factscope predict`.
#[derive(Args, Debug)]
pub struct PredictArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The prompt (repeat for several).
    #[arg(long, required = true)]
    prompt: Vec<String>,
    /// How many next tokens to list.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Add a llama.cpp control vector (a GGUF of `direction.{layer}` tensors, as `fv
    /// --save-control-vector` writes) to each layer's output at every position, as
    /// `llama-cli --control-vector` does.
    #[arg(long, value_name = "FILE.gguf")]
    control_vector: Option<std::path::PathBuf>,
    /// The factor the control vector is multiplied by (llama.cpp's
    /// `--control-vector-scaled FILE S`).
    #[arg(long, default_value_t = 1.0, requires = "control_vector")]
    control_vector_scale: f64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub use gpt_core::Prediction;

/// The top-`k` next tokens after `prompt` ([`gpt_core::top_k`]).
pub fn predict(
    loaded: &gpt_core::LoadedModel,
    prompt: &str,
    k: usize,
) -> anyhow::Result<Prediction> {
    gpt_core::top_k(&loaded.model, &loaded.tokenizer, prompt, k)
        .with_context(|| format!("prompt {prompt:?}"))
}

/// Runs `factscope predict`.
pub fn run(args: PredictArgs) -> anyhow::Result<()> {
    if args.top == 0 {
        anyhow::bail!("--top 0 lists nothing: give at least 1");
    }
    let steering = match &args.control_vector {
        Some(path) => Some(
            gpt_core::steering::SteeringVector::load_control_vector(path)
                .with_context(|| format!("--control-vector {}", path.display()))?
                .scaled(args.control_vector_scale),
        ),
        None => None,
    };
    let loaded = args.model.load()?;
    if let (Some(v), Some(path)) = (&steering, &args.control_vector) {
        v.check_fits(loaded.model.config())
            .with_context(|| format!("--control-vector {}", path.display()))?;
    }
    let mut all = Vec::with_capacity(args.prompt.len());
    for prompt in &args.prompt {
        all.push(match &steering {
            Some(v) => gpt_core::top_k_with(
                &loaded.model,
                &loaded.tokenizer,
                prompt,
                args.top,
                &mut v.writes()?,
            )
            .with_context(|| format!("prompt {prompt:?}"))?,
            None => predict(&loaded, prompt, args.top)?,
        });
    }
    if args.json {
        if all.len() == 1 {
            println!("{}", serde_json::to_string_pretty(&all[0])?);
        } else {
            println!("{}", serde_json::to_string_pretty(&all)?);
        }
        return Ok(());
    }
    for p in &all {
        println!("{}", p.prompt);
        for c in &p.top {
            println!(
                "  {:>6.2}%  {:>6}  {:?}",
                100.0 * c.probability,
                c.id,
                c.text
            );
        }
    }
    Ok(())
}
