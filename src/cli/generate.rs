//! `factscope generate`: continue a prompt.

use clap::Args;
use gpt_core::{generate, GenerateOptions, HookableModel, Sampling};

use super::common::ModelArgs;

/// Arguments of `factscope generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The prompt.
    #[arg(long)]
    prompt: String,
    /// Maximum number of new tokens.
    #[arg(long, default_value_t = 20)]
    max_new_tokens: usize,
    /// Sample (top-k with temperature) with this seed instead of greedy decoding.
    #[arg(long)]
    seed: Option<u64>,
    /// Candidates for sampling.
    #[arg(long, default_value_t = 50)]
    top_k: usize,
    /// Temperature for sampling.
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
}

/// Runs `factscope generate`.
pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let loaded = args.model.load()?;
    let enc = loaded.tokenizer.encode(&args.prompt)?;
    let sampling = match args.seed {
        Some(seed) => Sampling::TopK {
            k: args.top_k,
            temperature: args.temperature,
            seed,
        },
        None => Sampling::Greedy,
    };
    let options = GenerateOptions {
        max_new_tokens: args.max_new_tokens,
        sampling,
        stop_token: loaded
            .tokenizer
            .eos_id()
            .or(loaded.model.config().eos_token_id),
    };
    let mut new = generate(&loaded.model, &enc.ids, &options)?;
    // The end-of-sequence token ends the text; it is not part of it.
    if new.last().is_some() && new.last() == options.stop_token.as_ref() {
        new.pop();
    }
    let text = loaded.tokenizer.decode(&new)?;
    println!("{}{}", args.prompt, text);
    Ok(())
}
