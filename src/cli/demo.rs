//! `factscope demo`: the README's main job on the bundled model: next-token predictions and
//! a short greedy continuation for a few factual prompts.

use clap::Args;
use gpt_core::{generate, GenerateOptions, HookableModel, Sampling};

use super::common::ModelArgs;
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
}

/// Runs `factscope demo`.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let loaded = args.model.load()?;
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
    let eos = loaded.tokenizer.eos_id().or(c.eos_token_id);
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
            stop_token: eos,
        };
        let new = generate(&loaded.model, &p.token_ids, &options)?;
        let text = loaded.tokenizer.decode(&new)?;
        println!(
            "\n{prompt}\n  next: {}\n  greedy: {prompt}{text}",
            top.join(", ")
        );
    }
    Ok(())
}
