//! `factscope predict`: the top-K next tokens after a prompt.

use anyhow::Context;
use clap::Args;
use gpt_core::tch::{Device, Kind};
use gpt_core::{HookableModel, TokenBatch};
use serde::Serialize;

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

/// One candidate next token.
#[derive(Serialize, Debug)]
pub struct Candidate {
    /// Token id.
    pub id: i64,
    /// Decoded token text.
    pub text: String,
    /// Probability at the last position.
    pub probability: f64,
}

/// The prediction for one prompt.
#[derive(Serialize, Debug)]
pub struct Prediction {
    /// The prompt text.
    pub prompt: String,
    /// Its token ids.
    pub token_ids: Vec<i64>,
    /// The top-K next tokens, most probable first.
    pub top: Vec<Candidate>,
}

/// The top-`k` next tokens after `prompt`.
pub fn predict(
    loaded: &gpt_core::LoadedModel,
    prompt: &str,
    k: usize,
) -> anyhow::Result<Prediction> {
    let enc = loaded.tokenizer.encode(prompt)?;
    let batch = TokenBatch::single(&enc.ids, loaded.model.device())
        .with_context(|| format!("prompt {prompt:?}"))?;
    let _guard = gpt_core::tch::no_grad_guard();
    let logits = loaded.model.forward(&batch)?;
    let last = logits.f_select(1, -1)?.f_squeeze_dim(0)?;
    gpt_core::check_finite(&last, &format!("the logits after {prompt:?}"))?;
    let probs = last.f_softmax(-1, Kind::Float)?;
    let k = k.clamp(1, loaded.model.config().vocab_size) as i64;
    let (values, indices) = probs.f_topk(k, -1, true, true)?;
    let values = Vec::<f64>::try_from(&values.f_to_device(Device::Cpu)?.f_to_kind(Kind::Double)?)?;
    let indices = Vec::<i64>::try_from(&indices.f_to_device(Device::Cpu)?)?;
    let top = indices
        .iter()
        .zip(values)
        .map(|(&id, probability)| {
            Ok(Candidate {
                id,
                text: loaded.tokenizer.token_text(id)?,
                probability,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Prediction {
        prompt: prompt.to_string(),
        token_ids: enc.ids,
        top,
    })
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
