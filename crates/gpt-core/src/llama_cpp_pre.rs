//! llama.cpp's byte-level BPE pre-tokenizers, by the name a GGUF file gives them
//! (`tokenizer.ggml.pre`), as `tokenizers` pre-tokenizers.
//!
//! llama.cpp does not read a pre-tokenizer from the file: it picks its own regex list by
//! this name. Reading a GGUF, the same split must be rebuilt, or every text is tokenized a
//! little differently from llama.cpp and from the model's training without any error; so
//! a name not in the table below is refused. Writing a GGUF, the name is the one whose rebuilt
//! pre-tokenizer is the tokenizer's own ([`name_of`]).
//!
//! Each regex list is applied as llama.cpp does: every regex splits the pieces the previous
//! one left into its matches and the text between them (`Split` with `Isolated`), and the
//! pieces are then mapped to GPT-2's byte alphabet. The regexes are the ones the models'
//! `tokenizer.json` files state (llama.cpp rewrites `(?i:…)` by hand; same matches).

use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::SplitDelimiterBehavior;

/// GPT-2's regex.
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
/// Llama 3's regex (digits in groups of up to three).
const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's regex (single digits).
const QWEN2: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// How one named pre-tokenizer splits text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// GPT-2's regex (the byte-level step's own).
    Gpt2,
    /// Single digits, then GPT-2's regex.
    DigitsThenGpt2,
    /// These regexes in turn, then the byte-level step without a regex of its own.
    Regexes(&'static [&'static str]),
}

/// The names this crate rebuilds, each with llama.cpp's split, and whether llama.cpp looks a
/// whole piece up in the vocabulary before merging (`ignore_merges`, Llama 3's).
const TABLE: &[(&str, Kind, bool)] = &[
    ("gpt-2", Kind::Gpt2, false),
    ("smollm", Kind::DigitsThenGpt2, false),
    ("starcoder", Kind::DigitsThenGpt2, false),
    ("llama-bpe", Kind::Regexes(&[LLAMA3]), true),
    ("llama3", Kind::Regexes(&[LLAMA3]), true),
    ("llama-v3", Kind::Regexes(&[LLAMA3]), true),
    ("qwen2", Kind::Regexes(&[QWEN2]), false),
    // What llama.cpp uses for a BPE file that names none (it warns that quality suffers).
    (
        "default",
        Kind::Regexes(&[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"]),
        false,
    ),
];

/// The names [`pre_tokenizer`] rebuilds.
pub(crate) fn names() -> Vec<&'static str> {
    TABLE.iter().map(|(name, _, _)| *name).collect()
}

/// The names written for a tokenizer whose pre-tokenizer is one of these (in this order of
/// preference where several split alike).
const WRITTEN: &[&str] = &["gpt-2", "smollm", "llama-bpe", "qwen2"];

/// A rebuilt pre-tokenizer: the pre-tokenizer and whether the BPE ignores merges for whole
/// pieces in its vocabulary.
pub(crate) struct PreTokenizer {
    pub(crate) pre: PreTokenizerWrapper,
    pub(crate) ignore_merges: bool,
}

/// llama.cpp's pre-tokenizer `name` (`None` for a name not in [`names`]).
///
/// # Errors
/// A regex the `onig` engine rejects (none of the table's).
pub(crate) fn pre_tokenizer(name: &str) -> Option<Result<PreTokenizer, String>> {
    let &(_, kind, ignore_merges) = TABLE.iter().find(|(n, _, _)| *n == name)?;
    Some(build(kind).map(|pre| PreTokenizer { pre, ignore_merges }))
}

fn build(kind: Kind) -> Result<PreTokenizerWrapper, String> {
    Ok(match kind {
        Kind::Gpt2 => PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true)),
        Kind::DigitsThenGpt2 => PreTokenizerWrapper::Sequence(Sequence::new(vec![
            PreTokenizerWrapper::Digits(Digits::new(true)),
            PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true)),
        ])),
        Kind::Regexes(regexes) => {
            let mut steps = regexes
                .iter()
                .map(|r| {
                    Split::new(
                        SplitPattern::Regex((*r).to_string()),
                        SplitDelimiterBehavior::Isolated,
                        false,
                    )
                    .map(PreTokenizerWrapper::Split)
                    .map_err(|e| format!("regex `{r}`: {e}"))
                })
                .collect::<Result<Vec<_>, String>>()?;
            steps.push(PreTokenizerWrapper::ByteLevel(ByteLevel::new(
                false, true, false,
            )));
            PreTokenizerWrapper::Sequence(Sequence::new(steps))
        }
    })
}

/// `value` without the keys that do not change how text is split (`trim_offsets` only
/// moves offsets), for comparing pre-tokenizers as `tokenizer.json` states them.
fn splitting(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => map
            .iter()
            .filter(|(k, _)| k.as_str() != "trim_offsets")
            .map(|(k, v)| (k.clone(), splitting(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        serde_json::Value::Array(items) => items.iter().map(splitting).collect(),
        other => other.clone(),
    }
}

/// llama.cpp's name for `pre` (a `tokenizer.json`'s `pre_tokenizer`), if it splits text as
/// one of the pre-tokenizers this crate rebuilds.
pub(crate) fn name_of(pre: &serde_json::Value) -> Option<&'static str> {
    let wanted = splitting(pre);
    WRITTEN.iter().copied().find(|name| {
        pre_tokenizer(name)
            .and_then(Result::ok)
            .and_then(|built| serde_json::to_value(&built.pre).ok())
            .is_some_and(|v| splitting(&v) == wanted)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer as _};

    use super::*;

    /// The pieces `name` splits `text` into, in GPT-2's byte alphabet.
    fn pieces(name: &str, text: &str) -> Vec<String> {
        let pre = pre_tokenizer(name).unwrap().unwrap().pre;
        let mut s = PreTokenizedString::from(text);
        pre.pre_tokenize(&mut s).unwrap();
        s.get_splits(OffsetReferential::Original, OffsetType::Char)
            .into_iter()
            .map(|(piece, _, _)| piece.to_string())
            .collect()
    }

    // The bundled vocabulary has no multi-digit tokens, so llama.cpp's token ids (the
    // integration test) cannot tell these splits apart; their regexes can.
    #[test]
    fn digits_and_contractions_split_as_each_regex_says() {
        assert_eq!(pieces("llama-bpe", "1234567"), ["123", "456", "7"]);
        assert_eq!(pieces("qwen2", "1234567").len(), 7);
        assert_eq!(pieces("smollm", "1234567").len(), 7);
        assert_eq!(pieces("gpt-2", "1234567"), ["1234567"]);
        // Llama 3's contractions ignore case; GPT-2's do not.
        assert_eq!(pieces("llama-bpe", "DON'T"), ["DON", "'T"]);
        assert_eq!(pieces("gpt-2", "DON'T"), ["DON", "'", "T"]);
        assert_eq!(pieces("default", "a+b"), ["a", "+", "b"]);
    }

    #[test]
    fn each_written_name_is_found_from_its_own_pre_tokenizer() {
        for name in WRITTEN {
            let built = serde_json::to_value(&pre_tokenizer(name).unwrap().unwrap().pre).unwrap();
            assert_eq!(name_of(&built), Some(*name));
        }
        assert!(pre_tokenizer("tekken").is_none());
        // `trim_offsets` does not change the split.
        let gpt2 = serde_json::json!({"type": "ByteLevel", "add_prefix_space": false,
            "trim_offsets": false, "use_regex": true});
        assert_eq!(name_of(&gpt2), Some("gpt-2"));
        let prefixed = serde_json::json!({"type": "ByteLevel", "add_prefix_space": true,
            "trim_offsets": true, "use_regex": true});
        assert_eq!(name_of(&prefixed), None);
    }
}
