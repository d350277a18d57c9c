//! SentencePiece tokenizers from GGUF metadata (`tokenizer.ggml.model = "llama"`): merges by
//! score, `▁` for spaces with a dummy prefix, byte fallback, BOS as the metadata asks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::Path;

use gguf::write::Writer;
use gguf::{GgufFile, MetadataValue as V};
use gpt_core::Tokenizer;

/// `<unk>`, `<s>`, `</s>`, the 256 byte tokens, then pieces with their scores.
fn vocab(pieces: &[(&str, f32)]) -> (Vec<String>, Vec<f32>, Vec<i32>) {
    let mut tokens = vec!["<unk>".to_string(), "<s>".into(), "</s>".into()];
    let mut scores = vec![0.0, 0.0, 0.0];
    let mut types = vec![2, 3, 3];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        scores.push(0.0);
        types.push(6);
    }
    for (p, s) in pieces {
        tokens.push((*p).to_string());
        scores.push(*s);
        types.push(1);
    }
    (tokens, scores, types)
}

fn tokenizer(pieces: &[(&str, f32)], add_bos: bool) -> (Tokenizer, Vec<String>) {
    let (tokens, scores, types) = vocab(pieces);
    let bytes = Writer::new()
        .kv("general.architecture", V::String("llama".into()))
        .kv("tokenizer.ggml.model", V::String("llama".into()))
        .kv(
            "tokenizer.ggml.tokens",
            V::Array(tokens.iter().cloned().map(V::String).collect()),
        )
        .kv(
            "tokenizer.ggml.scores",
            V::Array(scores.into_iter().map(V::F32).collect()),
        )
        .kv(
            "tokenizer.ggml.token_type",
            V::Array(types.into_iter().map(V::I32).collect()),
        )
        .kv("tokenizer.ggml.bos_token_id", V::U32(1))
        .kv("tokenizer.ggml.eos_token_id", V::U32(2))
        .kv("tokenizer.ggml.add_bos_token", V::Bool(add_bos))
        .to_bytes();
    let file = GgufFile::from_bytes(&bytes).unwrap();
    (
        Tokenizer::from_gguf(&file, Path::new("test.gguf")).unwrap(),
        tokens,
    )
}

/// Single characters score lowest; of the merges, "he" > "at" > "▁t" > "▁c", and the whole
/// words "▁the" and "▁cat" highest.
const PIECES: &[(&str, f32)] = &[
    ("▁", -10.0),
    ("t", -10.0),
    ("h", -10.0),
    ("e", -10.0),
    ("c", -10.0),
    ("a", -10.0),
    ("he", -1.0),
    ("▁t", -2.0),
    ("▁the", -0.5),
    ("at", -1.5),
    ("▁c", -3.0),
    ("▁cat", -0.8),
];

fn pieces_of(tok: &Tokenizer, tokens: &[String], text: &str) -> Vec<String> {
    tok.encode(text)
        .unwrap()
        .ids
        .iter()
        .map(|&i| tokens[i as usize].clone())
        .collect()
}

#[test]
fn words_merge_by_score_with_a_dummy_prefix() {
    let (tok, tokens) = tokenizer(PIECES, false);
    // ▁ t h e ▁ c a t: "he", "at", "▁t", "▁the", "▁c", "▁cat" in score order.
    assert_eq!(pieces_of(&tok, &tokens, "the cat"), ["▁the", "▁cat"]);
    // Without "▁the"'s partner pieces, the merges stop where SentencePiece's would.
    assert_eq!(pieces_of(&tok, &tokens, "tea"), ["▁t", "e", "a"]);
    let ids = tok.encode("the cat").unwrap().ids;
    assert_eq!(tok.decode(&ids).unwrap(), "the cat");
}

#[test]
fn unknown_characters_fall_back_to_bytes_and_decode_back() {
    let (tok, tokens) = tokenizer(PIECES, false);
    // "é" is not a piece: its UTF-8 bytes C3 A9.
    assert_eq!(pieces_of(&tok, &tokens, "é"), ["▁", "<0xC3>", "<0xA9>"]);
    let ids = tok.encode("the café").unwrap().ids;
    assert_eq!(tok.decode(&ids).unwrap(), "the café");
}

#[test]
fn bos_is_added_when_the_metadata_asks() {
    let (with, _) = tokenizer(PIECES, true);
    let (without, _) = tokenizer(PIECES, false);
    let a = with.encode("the cat").unwrap();
    let b = without.encode("the cat").unwrap();
    assert_eq!(a.ids[0], 1);
    assert_eq!(&a.ids[1..], &b.ids[..]);
    assert_eq!(a.text_ids(), b.ids);
    assert_eq!(with.bos_id(), Some(1));
    assert_eq!(with.eos_id(), Some(2));
}

#[test]
fn malformed_scores_are_refused() {
    let (tokens, _, _) = vocab(PIECES);
    let bytes = Writer::new()
        .kv("tokenizer.ggml.model", V::String("llama".into()))
        .kv(
            "tokenizer.ggml.tokens",
            V::Array(tokens.into_iter().map(V::String).collect()),
        )
        .kv("tokenizer.ggml.scores", V::Array(vec![V::F32(0.0)]))
        .to_bytes();
    let file = GgufFile::from_bytes(&bytes).unwrap();
    let err = Tokenizer::from_gguf(&file, Path::new("bad.gguf"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad.gguf") && err.contains("scores"), "{err}");
}
