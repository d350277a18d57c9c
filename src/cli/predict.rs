//! `factscope predict`: the top-K next tokens after a prompt.

use anyhow::Context;
use clap::Args;

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
    let loaded = args.model.load()?;
    let mut all = Vec::with_capacity(args.prompt.len());
    for prompt in &args.prompt {
        all.push(predict(&loaded, prompt, args.top)?);
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
