//! `factscope generate`: continue a prompt.

use anyhow::bail;
use clap::Args;
use gpt_core::{generate, GenerateOptions, Sampling};

use super::common::{decode_continuation, eos_ids, ModelArgs};

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
    if args.seed.is_some() {
        if args.top_k == 0 {
            bail!("--top-k 0 leaves nothing to sample from: give at least 1");
        }
        if !(args.temperature.is_finite() && args.temperature > 0.0) {
            bail!(
                "--temperature {} must be a finite number > 0",
                args.temperature
            );
        }
    }
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
        stop_tokens: eos_ids(&loaded),
    };
    let new = generate(&loaded.model, &enc.ids, &options)?;
    // The end-of-sequence token ends the text; it is not part of it.
    let text = decode_continuation(&loaded, new)?;
    println!("{}{}", args.prompt, text);
    Ok(())
}
