//! SentencePiece BPE tokenizers rebuilt from GGUF metadata (`tokenizer.ggml.model =
//! "llama"`: tokens with `▁` for spaces, one score per token, byte tokens `<0xNN>`), as the
//! `tokenizers` crate's BPE with byte fallback — the form Hugging Face's `LlamaTokenizerFast`
//! takes.
//!
//! SentencePiece BPE merges, at each step, the adjacent pair whose concatenation is the
//! highest-scoring token. As BPE merges, that is: every split `(l, r)` of a token `t` into
//! two tokens is a merge, ranked by `t`'s score (highest first; ties by the halves' ids, as
//! transformers' `SentencePieceExtractor`). Characters outside the vocabulary fall back to
//! their UTF-8 bytes' `<0xNN>` tokens.

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::{DecoderWrapper, NormalizerWrapper};

/// GGUF token types (`tokenizer.ggml.token_type`).
const NORMAL: u64 = 1;
const UNKNOWN: u64 = 2;
const USER_DEFINED: u64 = 4;

/// The tokenizer of SentencePiece `tokens` and `scores` (`types` as GGUF numbers them; `None`:
/// all normal). `add_space_prefix` prepends `▁` to every text (SentencePiece's
/// `add_dummy_prefix`), and the decoder strips it again.
///
/// # Errors
/// Scores or types of another length than the tokens, or a vocabulary the BPE refuses.
pub(crate) fn sentencepiece_bpe(
    tokens: &[String],
    scores: &[f64],
    types: Option<&[u64]>,
    add_space_prefix: bool,
) -> Result<tokenizers::Tokenizer, String> {
    if scores.len() != tokens.len() {
        return Err(format!(
            "{} scores for {} tokens",
            scores.len(),
            tokens.len()
        ));
    }
    if let Some(types) = types {
        if types.len() != tokens.len() {
            return Err(format!(
                "{} token types for {} tokens",
                types.len(),
                tokens.len()
            ));
        }
    }
    let type_of = |i: usize| types.map_or(NORMAL, |t| t[i]);
    let vocab: tokenizers::models::bpe::Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    // (score, left id, right id, left, right) of every split of a mergeable token.
    let mut ranked: Vec<(f64, u32, u32, String, String)> = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        if !matches!(type_of(i), NORMAL | USER_DEFINED) {
            continue;
        }
        for (at, _) in token.char_indices().skip(1) {
            let (l, r) = token.split_at(at);
            if let (Some(&li), Some(&ri)) = (vocab.get(l), vocab.get(r)) {
                ranked.push((scores[i], li, ri, l.to_string(), r.to_string()));
            }
        }
    }
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let merges = ranked.into_iter().map(|(_, _, _, l, r)| (l, r)).collect();
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some(unk) = (0..tokens.len()).find(|&i| type_of(i) == UNKNOWN) {
        builder = builder.unk_token(tokens[unk].clone());
    }
    let bpe = builder.build().map_err(|e| e.to_string())?;
    let mut inner = tokenizers::Tokenizer::new(bpe);
    let spaces = Replace::new(" ", "▁").map_err(|e| e.to_string())?;
    let mut normalizers = vec![NormalizerWrapper::Replace(spaces)];
    if add_space_prefix {
        normalizers.insert(0, NormalizerWrapper::Prepend(Prepend::new("▁".into())));
    }
    inner.with_normalizer(Some(NormalizerSequence::new(normalizers)));
    let mut decoders = vec![
        DecoderWrapper::Replace(Replace::new("▁", " ").map_err(|e| e.to_string())?),
        DecoderWrapper::ByteFallback(ByteFallback::new()),
        DecoderWrapper::Fuse(Fuse::new()),
    ];
    if add_space_prefix {
        decoders.push(DecoderWrapper::Strip(Strip::new(' ', 1, 0)));
    }
    inner.with_decoder(Some(DecoderSequence::new(decoders)));
    Ok(inner)
}
