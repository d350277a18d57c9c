//! Text generation with a KV cache: greedy, or seeded top-k sampling with temperature.

use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use crate::error::{Error, Result};
use crate::input::TokenBatch;
use crate::intervention::NoHooks;
use crate::model::{ForwardOptions, HookableModel, KvCache};

/// How the next token is chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampling {
    /// The most probable token.
    Greedy,
    /// Sample among the `k` most probable tokens of `softmax(logits / temperature)`, with a
    /// seeded generator (same seed, same text).
    TopK {
        /// How many candidates (≥ 1).
        k: usize,
        /// Temperature (> 0).
        temperature: f64,
        /// Random seed.
        seed: u64,
    },
}

/// Options of [`generate`].
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Maximum number of new tokens.
    pub max_new_tokens: usize,
    /// Token choice.
    pub sampling: Sampling,
    /// Stop after any of these tokens (typically [`crate::Tokenizer::end_ids`]); the stop
    /// token is included in the output.
    pub stop_tokens: Vec<i64>,
}

/// Generates up to `max_new_tokens` after `prompt` and returns the new token ids.
///
/// The prompt is run once; each new token is one incremental pass over the KV cache.
///
/// # Errors
/// An empty prompt, a prompt plus new tokens longer than the context, invalid sampling
/// parameters, model errors.
pub fn generate(
    model: &dyn HookableModel,
    prompt: &[i64],
    options: &GenerateOptions,
) -> Result<Vec<i64>> {
    if prompt.is_empty() {
        return Err(Error::EmptyPrompt);
    }
    // A batch of one: the same passes, the same generator (seeded with `seed + 0`).
    Ok(generate_batch(model, &[prompt.to_vec()], options)?
        .pop()
        .unwrap_or_default())
}

/// Generates up to `max_new_tokens` after each of `prompts` at once (one batched pass per
/// step over a shared KV cache, prompts left-padded) and returns each row's new tokens, cut
/// after the stop token (non-finite logits are an error). With [`Sampling::TopK`], row `i`
/// samples from its own generator
/// seeded with `seed + i`, so a row's text does not depend on the others.
///
/// # Errors
/// As [`generate`], for any prompt.
pub fn generate_batch(
    model: &dyn HookableModel,
    prompts: &[Vec<i64>],
    options: &GenerateOptions,
) -> Result<Vec<Vec<i64>>> {
    let seed = match options.sampling {
        Sampling::TopK { seed, .. } => seed,
        Sampling::Greedy => 0,
    };
    let seeds: Vec<u64> = (0..prompts.len())
        .map(|i| seed.wrapping_add(i as u64))
        .collect();
    generate_seeded(model, prompts, options, &seeds)
}

/// [`generate_batch`] with row `i` sampling from a generator seeded with `seeds[i]` (the
/// seed in `options.sampling` is not used), so that rows of different requests can share a
/// batch and still get the texts they would get alone.
///
/// # Errors
/// As [`generate_batch`]; [`Error::InvalidInput`] if `seeds` and `prompts` differ in length.
pub fn generate_seeded(
    model: &dyn HookableModel,
    prompts: &[Vec<i64>],
    options: &GenerateOptions,
    seeds: &[u64],
) -> Result<Vec<Vec<i64>>> {
    if seeds.len() != prompts.len() {
        return Err(Error::InvalidInput(format!(
            "{} seeds for {} prompts",
            seeds.len(),
            prompts.len()
        )));
    }
    let b = prompts.len();
    if b == 0 {
        return Ok(Vec::new());
    }
    if let Sampling::TopK { k, temperature, .. } = options.sampling {
        if k == 0 || !(temperature.is_finite() && temperature > 0.0) {
            return Err(Error::InvalidInput(format!(
                "top-k sampling needs k >= 1 and a positive temperature (got k = {k}, temperature = {temperature})"
            )));
        }
    }
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let n_ctx = model.config().n_ctx;
    if longest + options.max_new_tokens > n_ctx {
        return Err(Error::ContextOverflow {
            len: longest + options.max_new_tokens,
            n_ctx,
        });
    }
    let device = model.device();
    let mut rngs: Vec<ChaCha8Rng> = seeds
        .iter()
        .map(|&s| ChaCha8Rng::seed_from_u64(s))
        .collect();
    let _guard = tch::no_grad_guard();
    let mut batch = TokenBatch::pad(prompts, crate::input::Padding::Left, 0, device)?;
    let mut mask = batch.attention_mask.shallow_clone();
    let mut last = batch.positions.f_select(1, -1)?; // [b]
    let mut cache = KvCache::new();
    let mut outs = vec![Vec::with_capacity(options.max_new_tokens); b];
    let mut done = vec![false; b];
    for step in 0..options.max_new_tokens {
        let logits = model
            .forward_with(
                &batch,
                ForwardOptions::last().with_cache(&mut cache),
                &mut NoHooks,
            )?
            .logits()?
            .f_to_kind(Kind::Float)?; // [b, vocab]
                                      // NaN / Inf logits (broken weights, f16 overflow) would still "choose" tokens.
        crate::error::check_finite(&logits, &format!("the logits at generation step {step}"))?;
        let next = match options.sampling {
            Sampling::TopK { k, temperature, .. } => {
                sample_top_k(&logits, k, temperature, &mut rngs)?
            }
            Sampling::Greedy => {
                Vec::<i64>::try_from(logits.f_argmax(-1, false)?.f_to_device(tch::Device::Cpu)?)?
            }
        };
        for (i, &id) in next.iter().enumerate() {
            if !done[i] {
                outs[i].push(id);
                done[i] = options.stop_tokens.contains(&id);
            }
        }
        if done.iter().all(|&d| d) {
            break;
        }
        mask = Tensor::f_cat(
            &[
                &mask,
                &Tensor::f_ones([b as i64, 1], (Kind::Int64, device))?,
            ],
            1,
        )?;
        last = last.f_add_scalar(1)?;
        batch = TokenBatch::with_positions(
            Tensor::f_from_slice(&next)?
                .f_view([b as i64, 1])?
                .f_to_device(device)?,
            mask.shallow_clone(),
            last.f_view([b as i64, 1])?,
        )?;
    }
    Ok(outs)
}

/// One token per row of `logits: [b, vocab]`: the top `k` of `logits / temperature`,
/// softmaxed, sampled with row `i`'s generator (one top-k over the whole batch).
fn sample_top_k(
    logits: &Tensor,
    k: usize,
    temperature: f64,
    rngs: &mut [ChaCha8Rng],
) -> Result<Vec<i64>> {
    let vocab = logits.size().last().copied().unwrap_or(0);
    let k = (k as i64).min(vocab);
    if k <= 0 {
        return Err(Error::InvalidInput("empty vocabulary".into()));
    }
    let (values, indices) = logits
        .f_div_scalar(temperature)?
        .f_topk(k, -1, true, true)?;
    let probs: Vec<f64> = Vec::<f64>::try_from(
        values
            .f_softmax(-1, Kind::Double)?
            .f_to_device(tch::Device::Cpu)?
            .f_flatten(0, -1)?,
    )?;
    let indices: Vec<i64> =
        Vec::<i64>::try_from(indices.f_to_device(tch::Device::Cpu)?.f_flatten(0, -1)?)?;
    let k = k as usize;
    rngs.iter_mut()
        .enumerate()
        .map(|(i, rng)| {
            let (p, ids) = (&probs[i * k..(i + 1) * k], &indices[i * k..(i + 1) * k]);
            let u: f64 = rng.gen();
            let mut acc = 0.0;
            for (p, id) in p.iter().zip(ids) {
                acc += p;
                if u < acc {
                    return Ok(*id);
                }
            }
            ids.last()
                .copied()
                .ok_or_else(|| Error::InvalidInput("empty vocabulary".into()))
        })
        .collect()
}
