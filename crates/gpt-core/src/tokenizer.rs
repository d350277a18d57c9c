//! Tokenizers: Hugging Face `tokenizer.json`, GPT-2 `vocab.json` + `merges.txt`, or rebuilt
//! from GGUF metadata (byte-level BPE), with character offsets per token.

use std::ops::Range;
use std::path::Path;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::sequence::Sequence;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::AddedToken;

use crate::error::{Error, Result};
use crate::llama_cpp_pre;
use crate::sentencepiece::sentencepiece_bpe;

/// Token ids of a text with the character span of each token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoding {
    /// Token ids.
    pub ids: Vec<i64>,
    /// `(start, end)` character offsets (Unicode scalar values, end exclusive) of each token
    /// in the text; empty for an added BOS token.
    pub offsets: Vec<(usize, usize)>,
}

impl Encoding {
    /// The tokens overlapping the characters `chars` (half-open), as a half-open token range.
    /// `None` if no token overlaps.
    pub fn token_range(&self, chars: Range<usize>) -> Option<Range<usize>> {
        let overlaps = |&(s, e): &(usize, usize)| s < chars.end && e > chars.start && e > s;
        let first = self.offsets.iter().position(overlaps)?;
        let last = self.offsets.iter().rposition(overlaps)?;
        Some(first..last + 1)
    }

    /// The ids of the tokens that cover text (an added BOS, which covers none, is left out).
    pub fn text_ids(&self) -> Vec<i64> {
        self.ids
            .iter()
            .zip(&self.offsets)
            .filter(|(_, (a, b))| b > a)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// A text tokenizer with the model's special tokens.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    bos: Option<i64>,
    eos: Option<i64>,
    add_bos: bool,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("add_bos", &self.add_bos)
            .finish()
    }
}

/// The token `inner`'s post-processor puts before a text, if it puts one: a text encoded
/// with its special tokens is that token, then the text's own tokens (then perhaps more).
fn leading_special(inner: &tokenizers::Tokenizer) -> tokenizers::Result<Option<i64>> {
    const PROBE: &str = "a";
    let plain = inner.encode(PROBE, false)?;
    let full = inner.encode(PROBE, true)?;
    let (plain, full) = (plain.get_ids(), full.get_ids());
    Ok(match full.split_first() {
        Some((&first, rest)) if full.len() > plain.len() && rest.starts_with(plain) => {
            Some(i64::from(first))
        }
        _ => None,
    })
}

fn tok_err(context: impl std::fmt::Display, e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(format!("{context}: {e}"))
}

impl Tokenizer {
    /// Loads a Hugging Face `tokenizer.json`. Where its post-processor puts a special token
    /// before every text (Llama 2 and 3, Mistral and Gemma put their BOS there),
    /// [`Tokenizer::encode`] puts it first too, as transformers' tokenizers do (and as the
    /// reference ROME code's prompts have it); special tokens it appends (an EOS) are left
    /// out: a prompt continues.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Tokenizer`] naming the file.
    pub fn from_file(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::io(
                path,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        let inner =
            tokenizers::Tokenizer::from_file(path).map_err(|e| tok_err(path.display(), e))?;
        let leading = leading_special(&inner).map_err(|e| tok_err(path.display(), e))?;
        let mut tokenizer = Self::with_specials(inner);
        if let Some(bos) = leading {
            tokenizer.bos = Some(bos);
            tokenizer.add_bos = true;
        }
        Ok(tokenizer)
    }

    /// Builds a GPT-2 style byte-level BPE tokenizer from `vocab.json` and `merges.txt`.
    ///
    /// # Errors
    /// [`Error::Tokenizer`] naming the files.
    pub fn from_vocab_merges(vocab: &Path, merges: &Path) -> Result<Self> {
        for p in [vocab, merges] {
            if !p.is_file() {
                return Err(Error::io(
                    p,
                    std::io::Error::from(std::io::ErrorKind::NotFound),
                ));
            }
        }
        let (v, m) = (vocab.to_string_lossy(), merges.to_string_lossy());
        let bpe = BPE::from_file(&v, &m)
            .build()
            .map_err(|e| tok_err(format!("{} + {}", vocab.display(), merges.display()), e))?;
        let mut inner = tokenizers::Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        if inner.token_to_id("<|endoftext|>").is_some() {
            inner.add_special_tokens(&[AddedToken::from("<|endoftext|>", true)]);
        }
        Ok(Self::with_specials(inner))
    }

    /// Rebuilds the tokenizer stored in GGUF metadata: `tokenizer.ggml.model` = `gpt2`
    /// (byte-level BPE from tokens and merges; control tokens become special tokens; text
    /// split first as llama.cpp splits it for the file's `tokenizer.ggml.pre`: `gpt-2`,
    /// `smollm`, `starcoder`, `llama-bpe` / `llama3` / `llama-v3`, `qwen2`, or `default` when
    /// the file names none) or `llama` (SentencePiece BPE from tokens and scores, with byte
    /// fallback).
    ///
    /// # Errors
    /// [`Error::Tokenizer`] for other tokenizer models, other pre-tokenizer names (another
    /// split would tokenize differently from llama.cpp without any error) or malformed
    /// metadata.
    pub fn from_gguf(file: &gguf::GgufFile, path: &Path) -> Result<Self> {
        let ctx = path.display();
        let model = file
            .get("tokenizer.ggml.model")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        if !matches!(model, "gpt2" | "llama") {
            return Err(tok_err(
                ctx,
                format!(
                    "GGUF tokenizer model `{model}` is not supported (`gpt2` byte-level BPE, `llama` SentencePiece)"
                ),
            ));
        }
        let strings = |key: &str| -> Result<Vec<String>> {
            let arr = file
                .get(key)
                .and_then(|v| v.as_array())
                .ok_or_else(|| tok_err(&ctx, format!("missing array `{key}`")))?;
            arr.iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| tok_err(&ctx, format!("`{key}`[{i}] is not a string")))
                })
                .collect()
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        let types: Option<Vec<u64>> = file
            .get("tokenizer.ggml.token_type")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().map(|t| t.as_u64().unwrap_or(1)).collect());
        let mut inner = if model == "llama" {
            let scores: Vec<f64> = file
                .get("tokenizer.ggml.scores")
                .and_then(|v| v.as_array())
                .ok_or_else(|| tok_err(&ctx, "missing array `tokenizer.ggml.scores`"))?
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_f64().ok_or_else(|| {
                        tok_err(
                            &ctx,
                            format!("`tokenizer.ggml.scores`[{i}] is not a number"),
                        )
                    })
                })
                .collect::<Result<_>>()?;
            let add_space_prefix = file
                .get("tokenizer.ggml.add_space_prefix")
                .and_then(|v| v.as_bool())
                .unwrap_or(true);
            sentencepiece_bpe(&tokens, &scores, types.as_deref(), add_space_prefix)
                .map_err(|e| tok_err(&ctx, e))?
        } else {
            Self::gguf_byte_level(file, &tokens, &strings("tokenizer.ggml.merges")?)
                .map_err(|e| tok_err(&ctx, e))?
        };
        // Control tokens (type 3) are matched whole, never split.
        if let Some(types) = &types {
            let specials: Vec<AddedToken> = types
                .iter()
                .zip(&tokens)
                .filter(|(t, _)| **t == 3)
                .map(|(_, tok)| AddedToken::from(tok.clone(), true))
                .collect();
            inner.add_special_tokens(&specials);
        }
        let id = |key: &str| file.get(key).and_then(|v| v.as_u64()).map(|v| v as i64);
        let add_bos = file
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        Ok(Self {
            inner,
            bos: id("tokenizer.ggml.bos_token_id"),
            eos: id("tokenizer.ggml.eos_token_id"),
            add_bos,
        })
    }

    /// The byte-level BPE of a `gpt2` GGUF tokenizer.
    fn gguf_byte_level(
        file: &gguf::GgufFile,
        tokens: &[String],
        merges: &[String],
    ) -> std::result::Result<tokenizers::Tokenizer, String> {
        let vocab: tokenizers::models::bpe::Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let merges = merges
            .iter()
            .enumerate()
            .map(|(i, m)| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| format!("merge {i} `{m}` has no space"))
            })
            .collect::<std::result::Result<Vec<_>, String>>()?;
        // The unknown token is never produced by a byte-level BPE (every byte is a token),
        // but it is part of the tokenizer's description, written back to folders and GGUF.
        let unk = file
            .get("tokenizer.ggml.unknown_token_id")
            .and_then(|v| v.as_u64())
            .and_then(|id| tokens.get(usize::try_from(id).ok()?));
        // llama.cpp treats a file that names no pre-tokenizer as `default`.
        let name = file
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.as_str())
            .unwrap_or("default");
        let pre = llama_cpp_pre::pre_tokenizer(name).ok_or_else(|| {
            format!(
                "pre-tokenizer `{name}` (`tokenizer.ggml.pre`) is not rebuilt here, and another would split text differently from llama.cpp (rebuilt: {})",
                llama_cpp_pre::names().join(", ")
            )
        })??;
        let mut builder = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .ignore_merges(pre.ignore_merges);
        if let Some(unk) = unk {
            builder = builder.unk_token(unk.clone());
        }
        let bpe = builder.build().map_err(|e| e.to_string())?;
        let mut inner = tokenizers::Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(pre.pre));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        Ok(inner)
    }

    fn with_specials(inner: tokenizers::Tokenizer) -> Self {
        let find = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| inner.token_to_id(n))
                .map(i64::from)
        };
        let eos = find(&["<|endoftext|>", "</s>", "<|im_end|>", "<|end_of_text|>"]);
        let bos = find(&["<s>", "<|begin_of_text|>"]);
        Self {
            inner,
            bos,
            eos,
            add_bos: false,
        }
    }

    /// The tokenizer as its `tokenizer.json` should describe it: where [`Tokenizer::adds_bos`]
    /// but the post-processor does not put the BOS first (a GGUF's tokenizer has none), one
    /// that does is added after it, so that transformers' tokenizers and
    /// [`Tokenizer::from_file`] put the BOS first too.
    ///
    /// # Errors
    /// [`Error::Tokenizer`] for a BOS id outside the vocabulary or whose token a template
    /// cannot name.
    pub(crate) fn for_hf(&self) -> Result<tokenizers::Tokenizer> {
        let mut inner = self.inner.clone();
        let (true, Some(bos)) = (self.adds_bos(), self.bos) else {
            return Ok(inner);
        };
        if leading_special(&inner).map_err(|e| tok_err("the BOS of tokenizer.json", e))?
            == Some(bos)
        {
            return Ok(inner);
        }
        let (id, token) = u32::try_from(bos)
            .ok()
            .and_then(|id| Some((id, inner.id_to_token(id)?)))
            .ok_or_else(|| Error::Tokenizer(format!("BOS id {bos} is outside the vocabulary")))?;
        let context = format!("a template putting BOS `{token}` first");
        let template = TemplateProcessing::builder()
            .try_single(format!("{token} $A"))
            .map_err(|e| tok_err(&context, e))?
            .special_tokens(vec![(token.clone(), id)])
            .build()
            .map_err(|e| tok_err(&context, e))?;
        let post = match inner.get_post_processor().cloned() {
            Some(existing) => {
                PostProcessorWrapper::Sequence(Sequence::new(vec![existing, template.into()]))
            }
            None => template.into(),
        };
        inner.with_post_processor(Some(post));
        Ok(inner)
    }

    /// Whether [`Tokenizer::encode`] puts the BOS token first: a GGUF's
    /// `tokenizer.ggml.add_bos_token` asks for it, or a `tokenizer.json`'s post-processor puts
    /// it before every text.
    pub fn adds_bos(&self) -> bool {
        self.add_bos && self.bos.is_some()
    }

    /// Overrides the special token ids (e.g. from the model config). A BOS that the
    /// tokenizer puts first itself stays the one it puts there (transformers inserts the
    /// post-processor's token whatever the config says).
    pub fn set_special_ids(&mut self, bos: Option<i64>, eos: Option<i64>) {
        if bos.is_some() && !self.add_bos {
            self.bos = bos;
        }
        if eos.is_some() {
            self.eos = eos;
        }
    }

    /// Tokenises `text` with character offsets, the BOS first where [`Tokenizer::adds_bos`]
    /// (its offsets `(0, 0)`).
    ///
    /// # Errors
    /// [`Error::Tokenizer`] if the underlying tokenizer fails.
    pub fn encode(&self, text: &str) -> Result<Encoding> {
        let enc = self
            .inner
            .encode_char_offsets(text, false)
            .map_err(|e| tok_err("encode", e))?;
        let mut ids: Vec<i64> = enc.get_ids().iter().map(|&i| i64::from(i)).collect();
        let mut offsets = enc.get_offsets().to_vec();
        if let (true, Some(bos)) = (self.add_bos, self.bos) {
            ids.insert(0, bos);
            offsets.insert(0, (0, 0));
        }
        Ok(Encoding { ids, offsets })
    }

    /// Decodes ids to text (special tokens included).
    ///
    /// # Errors
    /// [`Error::Tokenizer`] for ids outside the vocabulary.
    pub fn decode(&self, ids: &[i64]) -> Result<String> {
        let ids = ids
            .iter()
            .map(|&i| {
                u32::try_from(i)
                    .map_err(|_| Error::Tokenizer(format!("token id {i} is negative or too large")))
            })
            .collect::<Result<Vec<u32>>>()?;
        if let Some(bad) = ids.iter().find(|&&i| self.inner.id_to_token(i).is_none()) {
            return Err(Error::Tokenizer(format!(
                "token id {bad} is outside the vocabulary"
            )));
        }
        self.inner
            .decode(&ids, false)
            .map_err(|e| tok_err("decode", e))
    }

    /// The text of one token (its decoded bytes; partial UTF-8 shows as U+FFFD).
    ///
    /// # Errors
    /// As [`Tokenizer::decode`].
    pub fn token_text(&self, id: i64) -> Result<String> {
        self.decode(&[id])
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// End-of-sequence id.
    pub fn eos_id(&self) -> Option<i64> {
        self.eos
    }

    /// Beginning-of-sequence id.
    pub fn bos_id(&self) -> Option<i64> {
        self.bos
    }

    /// The id of a token given by its text (e.g. `"<|endoftext|>"`), if the vocabulary has it.
    pub fn token_to_id(&self, token: &str) -> Option<i64> {
        self.inner.token_to_id(token).map(i64::from)
    }

    /// The ids of the special (added, control) tokens: chat markers, end-of-text, padding.
    /// They are never text, so [`Tokenizer::decode_text`] leaves them out.
    pub fn special_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .inner
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, t)| t.special)
            .map(|(id, _)| i64::from(id))
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Every token that ends a text or a turn: the end-of-sequence id and the special tokens
    /// of the common chat and document formats this vocabulary has (`<|endoftext|>`,
    /// `<|im_end|>`, `</s>`, `<|eot_id|>`, `<|end_of_text|>`, `<end_of_turn>`, `<eos>`,
    /// `<|end|>`). An instruct model ends its answer with one of them and may go on with a
    /// new turn after it, so generation should stop at any of them.
    pub fn end_ids(&self) -> Vec<i64> {
        const ENDS: &[&str] = &[
            "<|endoftext|>",
            "<|im_end|>",
            "</s>",
            "<|eot_id|>",
            "<|end_of_text|>",
            "<end_of_turn>",
            "<eos>",
            "<|end|>",
        ];
        let mut ids: Vec<i64> = self
            .eos
            .into_iter()
            .chain(ENDS.iter().filter_map(|t| self.token_to_id(t)))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Decodes ids to text without the special tokens (what a reader or a text metric should
    /// see).
    ///
    /// # Errors
    /// As [`Tokenizer::decode`].
    pub fn decode_text(&self, ids: &[i64]) -> Result<String> {
        let specials = self.special_ids();
        let kept: Vec<i64> = ids
            .iter()
            .copied()
            .filter(|i| specials.binary_search(i).is_err())
            .collect();
        self.decode(&kept)
    }

    /// The underlying `tokenizers` tokenizer (for writing it back; not part of the API, so the
    /// `tokenizers` crate stays an implementation detail).
    pub(crate) fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

/// The character range (half-open, in Unicode scalar values) of the first occurrence of
/// `needle` in `text`.
pub fn find_chars(text: &str, needle: &str) -> Option<Range<usize>> {
    find_all_chars(text, needle).into_iter().next()
}

/// The character ranges (half-open, in Unicode scalar values) of every non-overlapping
/// occurrence of `needle` in `text`, in order.
pub fn find_all_chars(text: &str, needle: &str) -> Vec<Range<usize>> {
    if needle.is_empty() {
        return Vec::new();
    }
    let len = needle.chars().count();
    text.match_indices(needle)
        .map(|(byte, _)| {
            let start = text[..byte].chars().count();
            start..start + len
        })
        .collect()
}
