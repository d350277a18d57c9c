//! Generation fluency GE (reference §4.5): the weighted bi-/tri-gram entropy of text the
//! model generates, `(⅔·H₂ + 4⁄3·H₃) / 2` with `Hₙ = −Σ f log₂ f` over the n-gram
//! frequencies of the text's words.

use std::collections::HashMap;

use gpt_core::{
    generate_batch, generate_seeded, GenerateOptions, HookableModel, Sampling, Tokenizer,
};

use crate::error::Result;

/// The words of `text`, close to `nltk.word_tokenize` for English prose: runs of letters and
/// digits (keeping inner apostrophes, hyphens and decimal points) and every other
/// non-space character on its own. (The reference uses nltk; small differences on unusual
/// punctuation are expected.)
pub fn words(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (k, &(i, c)) in chars.iter().enumerate() {
        let joiner = matches!(c, '\'' | '-' | '.' | ',')
            && start.is_some()
            && chars.get(k + 1).is_some_and(|&(_, n)| {
                n.is_alphanumeric() && (c != '.' && c != ',' || n.is_ascii_digit())
            });
        if c.is_alphanumeric() || joiner {
            start.get_or_insert(i);
            continue;
        }
        if let Some(s) = start.take() {
            out.push(&text[s..i]);
        }
        if !c.is_whitespace() {
            out.push(&text[i..i + c.len_utf8()]);
        }
    }
    if let Some(s) = start {
        out.push(&text[s..]);
    }
    out
}

/// `Hₙ = −Σ f log₂ f` over the relative frequencies `f` of the `n`-grams of `tokens`
/// (0 when there are none).
pub fn ngram_entropy(tokens: &[&str], n: usize) -> f64 {
    if n == 0 || tokens.len() < n {
        return 0.0;
    }
    let mut counts: HashMap<&[&str], usize> = HashMap::new();
    for gram in tokens.windows(n) {
        *counts.entry(gram).or_default() += 1;
    }
    let total = (tokens.len() - n + 1) as f64;
    counts
        .values()
        .map(|&c| {
            let f = c as f64 / total;
            -f * f.log2()
        })
        .sum()
}

/// The fluency of one text: `(⅔·H₂ + 4⁄3·H₃) / 2` over its [`words`].
pub fn fluency(text: &str) -> f64 {
    let w = words(text);
    (2.0 / 3.0 * ngram_entropy(&w, 2) + 4.0 / 3.0 * ngram_entropy(&w, 3)) / 2.0
}

/// Texts of `max_len` tokens in all (prompt included, as the reference's `generate_fast`),
/// top-k 5 sampling, prompt `i` with its own generator seeded `seeds[i]`; each text
/// includes its prompt. Prompts are generated together, `rows` at a time.
///
/// A text ends at the first token that ends a text or a turn ([`Tokenizer::end_ids`] and the
/// config's EOS): an instruct model would otherwise go on with chat markers and a new turn,
/// which are not the continuation being measured. Special tokens are never part of a text.
///
/// # Errors
/// Tokenizer and model errors.
pub fn generate_texts(
    model: &dyn HookableModel,
    tokenizer: &Tokenizer,
    prompts: &[String],
    seeds: &[u64],
    max_len: usize,
    rows: usize,
) -> Result<Vec<String>> {
    generate_cut(model, tokenizer, prompts, Some(seeds), rows, |longest| {
        max_len.saturating_sub(longest).max(1)
    })?
    .into_iter()
    .map(|(p, n)| Ok(tokenizer.decode_text(&[p, n].concat())?))
    .collect()
}

/// Generates from `prompts`, `rows` at a time — top-k 5 sampling with prompt `i`'s generator
/// seeded `seeds[i]`, or greedily without seeds — `new_tokens(longest prompt of the chunk)`
/// new tokens per chunk; returns each prompt's tokens and its new tokens up to (without) the
/// first token that ends a text or a turn.
fn generate_cut(
    model: &dyn HookableModel,
    tokenizer: &Tokenizer,
    prompts: &[String],
    seeds: Option<&[u64]>,
    rows: usize,
    new_tokens: impl Fn(usize) -> usize,
) -> Result<Vec<(Vec<i64>, Vec<i64>)>> {
    let ids: Vec<Vec<i64>> = prompts
        .iter()
        .map(|p| tokenizer.encode(p).map(|e| e.ids))
        .collect::<gpt_core::Result<_>>()?;
    let mut ends = tokenizer.end_ids();
    ends.extend(model.config().eos_token_id);
    let rows = rows.max(1);
    let mut out = Vec::with_capacity(prompts.len());
    for (c, chunk) in ids.chunks(rows).enumerate() {
        let longest = chunk.iter().map(Vec::len).max().unwrap_or(0);
        let mut options = GenerateOptions {
            max_new_tokens: new_tokens(longest),
            sampling: Sampling::Greedy,
            stop_tokens: ends.clone(),
        };
        let new = match seeds {
            Some(seeds) => {
                options.sampling = Sampling::TopK {
                    k: 5,
                    temperature: 1.0,
                    seed: 0,
                };
                let mine = seeds.get(c * rows..(c * rows + chunk.len()).min(seeds.len()));
                let mine = mine.ok_or_else(|| {
                    gpt_core::Error::InvalidInput(format!(
                        "{} seeds for {} prompts",
                        seeds.len(),
                        prompts.len()
                    ))
                })?;
                generate_seeded(model, chunk, &options, mine)?
            }
            None => generate_batch(model, chunk, &options)?,
        };
        for (p, mut n) in chunk.iter().zip(new) {
            if let Some(end) = n.iter().position(|t| ends.contains(t)) {
                n.truncate(end);
            }
            out.push((p.clone(), n));
        }
    }
    Ok(out)
}

/// New tokens of the greedy continuations behind `ES_gen` and `PS_gen`: enough for any
/// CounterFact or zsRE target and a few words before it.
pub const GREEDY_TOKENS: usize = 20;

/// The greedy continuations of `prompts` (at most `new_tokens` new tokens each — fewer where
/// the model's context ends first — ending at the first end-of-text or end-of-turn token),
/// the new text only; `rows` prompts at a time.
///
/// # Errors
/// Tokenizer and model errors.
pub fn greedy_continuations(
    model: &dyn HookableModel,
    tokenizer: &Tokenizer,
    prompts: &[String],
    new_tokens: usize,
    rows: usize,
) -> Result<Vec<String>> {
    // Models with a short context (tiny test models) continue as far as it goes.
    let n_ctx = model.config().n_ctx;
    generate_cut(model, tokenizer, prompts, None, rows, |longest| {
        new_tokens.min(n_ctx.saturating_sub(longest)).max(1)
    })?
    .into_iter()
    .map(|(_, n)| Ok(tokenizer.decode_text(&n)?))
    .collect()
}

/// Whether a continuation states `target`: it contains the trimmed target as written (case
/// and spelling as the dataset gives them; an empty target is never contained).
pub fn contains_target(continuation: &str, target: &str) -> bool {
    let target = target.trim();
    !target.is_empty() && continuation.contains(target)
}

#[cfg(test)]
mod tests {
    use super::contains_target;

    #[test]
    fn a_continuation_contains_the_target_as_written() {
        assert!(contains_target(" the city of Rome, where", "Rome"));
        assert!(contains_target("Rome", " Rome "));
        assert!(!contains_target(" the city of rome", "Rome"));
        assert!(!contains_target(" anything", " "));
    }
}
