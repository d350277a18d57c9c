//! A prompt prepared for tracing: token ids, token texts and the subject's token span.

use std::ops::Range;

use gpt_core::tokenizer::find_chars;
use gpt_core::Tokenizer;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A tokenised prompt with its subject located by characters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TracePrompt {
    /// The prompt text.
    pub text: String,
    /// The subject text.
    pub subject: String,
    /// Token ids.
    pub ids: Vec<i64>,
    /// Decoded text of each token.
    pub tokens: Vec<String>,
    /// Half-open token range of the subject's first occurrence.
    pub subject_range: Range<usize>,
}

impl TracePrompt {
    /// Tokenises `text` and finds `subject` in it by character offsets.
    ///
    /// # Errors
    /// [`Error::EmptySubject`], [`Error::SubjectNotFound`] naming both strings, an empty
    /// prompt, tokenizer errors.
    pub fn new(tokenizer: &Tokenizer, text: &str, subject: &str) -> Result<Self> {
        if subject.trim().is_empty() {
            return Err(Error::EmptySubject);
        }
        let not_found = || Error::SubjectNotFound {
            subject: subject.to_string(),
            prompt: text.to_string(),
        };
        let chars = find_chars(text, subject).ok_or_else(not_found)?;
        let enc = tokenizer.encode(text)?;
        if enc.ids.is_empty() {
            return Err(gpt_core::Error::EmptyPrompt.into());
        }
        let subject_range = enc.token_range(chars).ok_or_else(not_found)?;
        let tokens = enc
            .ids
            .iter()
            .map(|&id| tokenizer.token_text(id))
            .collect::<gpt_core::Result<Vec<_>>>()?;
        Ok(Self {
            text: text.to_string(),
            subject: subject.to_string(),
            ids: enc.ids,
            tokens,
            subject_range,
        })
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Index of the last subject token.
    pub fn last_subject_token(&self) -> usize {
        self.subject_range.end.saturating_sub(1)
    }
}
