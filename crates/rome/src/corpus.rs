//! Text corpora for key statistics: plain text files (one document per blank-line-separated
//! block), JSONL files with a `text` field, folders of either, or text the model samples
//! itself (needs nothing from outside).

use std::fs;
use std::path::{Path, PathBuf};

use gpt_core::fingerprint::Fnv64;
use gpt_core::progress::{self, Progress, ProgressFn};

use crate::error::{Error, Result};

/// Documents of a corpus, with a fingerprint of their content (so a statistics cache for
/// another corpus is refused).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corpus {
    /// Where the documents came from (a path, or `generated(…)`).
    pub source: String,
    /// The documents, in order.
    pub documents: Vec<String>,
    /// FNV-1a 64 of the documents (each followed by a 0 byte), as 16 hex digits.
    pub fingerprint: String,
}

impl Corpus {
    /// A corpus of the given documents (empty ones dropped).
    pub fn from_documents(source: impl Into<String>, documents: Vec<String>) -> Self {
        let documents: Vec<String> = documents
            .into_iter()
            .filter(|d| !d.trim().is_empty())
            .collect();
        let mut h = Fnv64::default();
        for d in &documents {
            h.update(d.as_bytes());
            h.update(&[0]);
        }
        Self {
            source: source.into(),
            documents,
            fingerprint: h.hex(),
        }
    }

    /// Reads a `.jsonl` file (one JSON object with a string `text` per line), any other file
    /// as plain text (documents separated by blank lines), or a folder of such files (sorted
    /// by name, not recursive).
    ///
    /// # Errors
    /// [`Error::Corpus`] naming the file and the byte offset of text that is not UTF-8, the
    /// line of a JSONL record that is not an object with a string `text`, or an empty corpus.
    pub fn from_path(path: &Path) -> Result<Self> {
        let files: Vec<PathBuf> = if path.is_dir() {
            let mut files: Vec<PathBuf> = fs::read_dir(path)
                .map_err(|e| corpus_err(path, format!("cannot list the folder: {e}")))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            files
        } else {
            vec![path.to_path_buf()]
        };
        let mut documents = Vec::new();
        for file in &files {
            let bytes =
                fs::read(file).map_err(|e| corpus_err(file, format!("cannot read it: {e}")))?;
            let text = String::from_utf8(bytes).map_err(|e| {
                corpus_err(
                    file,
                    format!(
                        "not UTF-8 text: invalid byte at offset {}",
                        e.utf8_error().valid_up_to()
                    ),
                )
            })?;
            if file.extension().is_some_and(|e| e == "jsonl") {
                for (i, line) in text.lines().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    let value: serde_json::Value = serde_json::from_str(line)
                        .map_err(|e| corpus_err(file, format!("line {}: not JSON: {e}", i + 1)))?;
                    let doc = value.get("text").and_then(|t| t.as_str()).ok_or_else(|| {
                        corpus_err(file, format!("line {}: no string field `text`", i + 1))
                    })?;
                    documents.push(doc.to_string());
                }
            } else {
                documents.extend(split_blocks(&text));
            }
        }
        let corpus = Self::from_documents(path.display().to_string(), documents);
        if corpus.documents.is_empty() {
            return Err(corpus_err(path, "the corpus has no text".into()));
        }
        Ok(corpus)
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.documents.len()
    }

    /// Whether there are no documents.
    pub fn is_empty(&self) -> bool {
        self.documents.is_empty()
    }
}

/// Blocks of text separated by blank lines, trimmed, empty ones dropped.
fn split_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.trim().is_empty() {
                blocks.push(current.trim().to_string());
            }
            current.clear();
        } else {
            if !current.is_empty() {
                current.push('\n');
            }
            current.push_str(line);
        }
    }
    if !current.trim().is_empty() {
        blocks.push(current.trim().to_string());
    }
    blocks
}

fn corpus_err(path: &Path, reason: String) -> Error {
    Error::Corpus {
        path: path.to_path_buf(),
        reason,
    }
}

/// The stage [`generated_corpus`] reports.
pub const SAMPLING_STAGE: &str = "sampling a corpus";

/// Settings of a corpus the model samples itself ([`generated_corpus`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeneratedCorpus {
    /// Number of documents.
    pub documents: usize,
    /// New tokens per document.
    pub tokens_per_document: usize,
    /// Sampling seed (document `i` uses `seed + i`).
    pub seed: u64,
}

impl Default for GeneratedCorpus {
    fn default() -> Self {
        Self {
            documents: 48,
            tokens_per_document: 96,
            seed: 1,
        }
    }
}

/// Text the model samples itself (top-k 40, temperature 1, seeded; batched), starting from a few
/// common words: a corpus that needs nothing from outside, so that editing works on a
/// machine without data. It is the model's own distribution, not natural text: statistics
/// from it are a stand-in for ROME's Wikipedia statistics (documented as such). `progress`
/// hears of stage [`SAMPLING_STAGE`] in documents, before the first batch and after each.
///
/// # Errors
/// Model and tokenizer errors; [`Error::Cancelled`] when
/// `progress` stops it.
pub fn generated_corpus(
    model: &dyn gpt_core::HookableModel,
    tokenizer: &gpt_core::Tokenizer,
    settings: GeneratedCorpus,
    progress: &mut ProgressFn<'_>,
) -> Result<Corpus> {
    const STARTS: [&str; 8] = [
        "The",
        "In",
        "A",
        "It",
        "During",
        "According to",
        "After the",
        "One of the",
    ];
    let at = |done: usize| {
        Progress::new(
            SAMPLING_STAGE,
            done as u64,
            Some(settings.documents as u64),
            "documents",
        )
    };
    progress::report(progress, at(0))?;
    let _guard = gpt_core::tch::no_grad_guard();
    let mut documents = Vec::with_capacity(settings.documents);
    // Batches of 16 documents, each one pass per token over a shared KV cache.
    let starts: Vec<usize> = (0..settings.documents).collect();
    for chunk in starts.chunks(16) {
        let prompts = chunk
            .iter()
            .map(|&i| Ok(tokenizer.encode(STARTS[i % STARTS.len()])?.ids))
            .collect::<Result<Vec<_>>>()?;
        // Never past the model's context.
        let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let room = model.config().n_ctx.saturating_sub(longest).max(1);
        let options = gpt_core::GenerateOptions {
            max_new_tokens: settings.tokens_per_document.min(room),
            sampling: gpt_core::Sampling::TopK {
                k: 40,
                temperature: 1.0,
                seed: settings.seed.wrapping_add(chunk[0] as u64),
            },
            stop_tokens: Vec::new(),
        };
        let new = gpt_core::generate_batch(model, &prompts, &options)?;
        for (prompt, new) in prompts.into_iter().zip(new) {
            documents.push(tokenizer.decode(&[prompt, new].concat())?);
        }
        progress::report(progress, at(documents.len()))?;
    }
    Ok(Corpus::from_documents(
        format!(
            "generated({} documents × {} tokens, seed {})",
            settings.documents, settings.tokens_per_document, settings.seed
        ),
        documents,
    ))
}
