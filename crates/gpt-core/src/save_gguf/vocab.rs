//! A tokenizer as GGUF metadata (`tokenizer.ggml.*`), as llama.cpp's converter writes a
//! byte-level BPE tokenizer: every token by id (ids the tokenizer lacks up to the model's
//! vocabulary size as unused `[PAD{id}]` tokens), each token's type, the merges, the special
//! ids, and the pre-tokenizer's llama.cpp name.
//!
//! llama.cpp does not read the pre-tokenizer from the file: it picks its own
//! implementation by that name. A wrong name tokenizes differently without any error, so a
//! name is written only for a pre-tokenizer that splits text as one this crate rebuilds for
//! that name when reading GGUF files (`crate::llama_cpp_pre`), or when the caller names it.

use gguf::MetadataValue;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;

/// llama.cpp's token types (`llama_token_type`).
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;

fn refuse(what: String) -> Error {
    Error::Tokenizer(format!("writing the tokenizer as GGUF: {what}"))
}

/// The tokenizer's merges as `"left right"` strings (`tokenizer.json` writes them as such
/// strings or as pairs).
fn merges(model: &Value) -> Result<Vec<MetadataValue>> {
    let list = model["merges"]
        .as_array()
        .ok_or_else(|| refuse("the BPE model has no merges".into()))?;
    list.iter()
        .enumerate()
        .map(|(i, m)| match m {
            Value::String(s) => Ok(MetadataValue::String(s.clone())),
            Value::Array(pair) => match pair.as_slice() {
                [Value::String(a), Value::String(b)] => {
                    Ok(MetadataValue::String(format!("{a} {b}")))
                }
                _ => Err(refuse(format!("merge {i} is not a pair of strings"))),
            },
            _ => Err(refuse(format!("merge {i} is not a string or a pair"))),
        })
        .collect()
}

/// Tokens and their types by id, `vocab_size` of them.
fn tokens(
    tokenizer: &Value,
    vocab_size: usize,
) -> Result<(Vec<MetadataValue>, Vec<MetadataValue>)> {
    let mut tokens: Vec<Option<(String, i32)>> = vec![None; vocab_size];
    let mut put = |id: u64, text: &str, ty: i32, what: &str| -> Result<()> {
        let slot = usize::try_from(id)
            .ok()
            .and_then(|i| tokens.get_mut(i))
            .ok_or_else(|| {
                refuse(format!(
                    "{what} `{text}` has id {id}, outside the model's vocabulary of {vocab_size}"
                ))
            })?;
        *slot = Some((text.to_string(), ty));
        Ok(())
    };
    let vocab = tokenizer["model"]["vocab"]
        .as_object()
        .ok_or_else(|| refuse("the BPE model has no vocabulary".into()))?;
    for (text, id) in vocab {
        let id = id
            .as_u64()
            .ok_or_else(|| refuse(format!("token `{text}` has no integer id")))?;
        put(id, text, NORMAL, "token")?;
    }
    for added in tokenizer["added_tokens"].as_array().into_iter().flatten() {
        let (Some(id), Some(text)) = (added["id"].as_u64(), added["content"].as_str()) else {
            return Err(refuse(format!(
                "an added token without id or content: {added}"
            )));
        };
        let ty = if added["special"] == true {
            CONTROL
        } else {
            USER_DEFINED
        };
        put(id, text, ty, "added token")?;
    }
    Ok(tokens
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let (text, ty) = t.unwrap_or_else(|| (format!("[PAD{i}]"), UNUSED));
            (MetadataValue::String(text), MetadataValue::I32(ty))
        })
        .unzip())
}

/// The `tokenizer.ggml.*` metadata of `tok` for a model with `vocab_size` embedding rows,
/// with its llama.cpp pre-tokenizer name: `pre` when given, else the known name of its
/// pre-tokenizer. Returns the metadata and the name written.
///
/// # Errors
/// [`Error::Tokenizer`] for a tokenizer that is not byte-level BPE (SentencePiece-style
/// BPE with byte fallback, WordPiece, Unigram), one with a normalizer, a pre-tokenizer
/// whose llama.cpp name is not known and not given, or token ids beyond `vocab_size`.
pub(super) fn tokenizer_metadata(
    tok: &Tokenizer,
    vocab_size: usize,
    pre: Option<&str>,
) -> Result<(Vec<(String, MetadataValue)>, String)> {
    let text = tok
        .inner()
        .to_string(false)
        .map_err(|e| refuse(format!("serialising it: {e}")))?;
    let json: Value =
        serde_json::from_str(&text).map_err(|e| refuse(format!("reading it back: {e}")))?;
    let model = &json["model"];
    if model["type"] != "BPE" || model["byte_fallback"] == true {
        return Err(refuse(format!(
            "only byte-level BPE tokenizers are written (GPT-2's kind); this one is {} {}",
            model["type"],
            if model["byte_fallback"] == true {
                "with byte fallback (SentencePiece-style)"
            } else {
                ""
            }
        )));
    }
    // An explicit pre-tokenizer name must not let a BPE over other pieces (SentencePiece's
    // `▁` words, say) through as GPT-2's byte-level kind.
    if !json["pre_tokenizer"].to_string().contains("\"ByteLevel\"") {
        return Err(refuse(format!(
            "only byte-level BPE tokenizers are written (GPT-2's kind); this one's pre-tokenizer {} has no byte-level step",
            json["pre_tokenizer"]
        )));
    }
    if !json["normalizer"].is_null() {
        return Err(refuse(format!(
            "it has a normalizer ({}), which llama.cpp's BPE tokenizer does not apply",
            json["normalizer"]["type"]
        )));
    }
    let pre = match pre {
        Some(name) if !name.trim().is_empty() => name.to_string(),
        Some(_) => return Err(refuse("the pre-tokenizer name given is empty".into())),
        None => crate::llama_cpp_pre::name_of(&json["pre_tokenizer"])
            .ok_or_else(|| {
                refuse(format!(
                    "its pre-tokenizer {} has no known llama.cpp name (known: GPT-2's = `gpt-2`, single digits then GPT-2's = `smollm`, Llama 3's = `llama-bpe`, Qwen2's = `qwen2`); name llama.cpp's pre-tokenizer for it explicitly",
                    json["pre_tokenizer"]
                ))
            })?
            .to_string(),
    };
    let (tokens, types) = tokens(&json, vocab_size)?;
    let id = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok());
    let unk = model["unk_token"]
        .as_str()
        .and_then(|u| tok.token_to_id(u))
        .and_then(|v| u32::try_from(v).ok());
    let mut kvs = vec![
        (
            "tokenizer.ggml.model".to_string(),
            MetadataValue::String("gpt2".into()),
        ),
        (
            "tokenizer.ggml.pre".into(),
            MetadataValue::String(pre.clone()),
        ),
        ("tokenizer.ggml.tokens".into(), MetadataValue::Array(tokens)),
        (
            "tokenizer.ggml.token_type".into(),
            MetadataValue::Array(types),
        ),
        (
            "tokenizer.ggml.merges".into(),
            MetadataValue::Array(merges(model)?),
        ),
    ];
    for (key, value) in [
        ("tokenizer.ggml.bos_token_id", id(tok.bos_id())),
        ("tokenizer.ggml.eos_token_id", id(tok.eos_id())),
        ("tokenizer.ggml.unknown_token_id", unk),
    ] {
        if let Some(v) = value {
            kvs.push((key.into(), MetadataValue::U32(v)));
        }
    }
    kvs.push((
        "tokenizer.ggml.add_bos_token".into(),
        MetadataValue::Bool(tok.adds_bos()),
    ));
    kvs.push((
        "tokenizer.ggml.add_space_prefix".into(),
        MetadataValue::Bool(false),
    ));
    Ok((kvs, pre))
}
