//! Prompts with a located subject, and target tokens: the text-side primitives shared by
//! tracing (which corrupts the subject), editing (which rewrites what follows it) and
//! evaluation (which scores targets after prompts).

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::tokenizer::{find_all_chars, Tokenizer};

/// A tokenised prompt with its subject located by character offsets.
///
/// ```no_run
/// # fn main() -> gpt_core::Result<()> {
/// # let m = gpt_core::load_model("m.gguf".as_ref(), Default::default())?;
/// let p = gpt_core::SubjectPrompt::new(&m.tokenizer, "The Eiffel Tower is in", "The Eiffel Tower")?;
/// assert_eq!(p.subject_range.start, 0);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectPrompt {
    /// The prompt text.
    pub text: String,
    /// The subject text.
    pub subject: String,
    /// Token ids.
    pub ids: Vec<i64>,
    /// Decoded text of each token.
    pub tokens: Vec<String>,
    /// Half-open token range of the chosen occurrence of the subject.
    pub subject_range: Range<usize>,
    /// How many times the subject occurs in the prompt (the chosen one is
    /// [`SubjectPrompt::occurrence`]); more than 1 deserves a word to the user.
    #[serde(default = "one")]
    pub occurrences: usize,
    /// Which occurrence (0-based) `subject_range` covers.
    #[serde(default)]
    pub occurrence: usize,
}

fn one() -> usize {
    1
}

impl SubjectPrompt {
    /// Tokenises `text` and finds the first occurrence of `subject` in it.
    ///
    /// # Errors
    /// As [`SubjectPrompt::with_occurrence`].
    pub fn new(tokenizer: &Tokenizer, text: &str, subject: &str) -> Result<Self> {
        Self::with_occurrence(tokenizer, text, subject, 0)
    }

    /// Tokenises `text` and locates occurrence `occurrence` (0-based) of `subject`.
    ///
    /// # Errors
    /// [`Error::EmptySubject`]; [`Error::SubjectNotFound`] naming both strings (also when
    /// the subject occurs fewer than `occurrence + 1` times, or covers no token); an empty
    /// prompt; tokenizer errors.
    pub fn with_occurrence(
        tokenizer: &Tokenizer,
        text: &str,
        subject: &str,
        occurrence: usize,
    ) -> Result<Self> {
        if subject.trim().is_empty() {
            return Err(Error::EmptySubject);
        }
        let found = find_all_chars(text, subject);
        let not_found = || Error::SubjectNotFound {
            subject: subject.to_string(),
            prompt: text.to_string(),
            occurrence,
            occurrences: found.len(),
        };
        let chars = found.get(occurrence).cloned().ok_or_else(not_found)?;
        let enc = tokenizer.encode(text)?;
        if enc.ids.is_empty() {
            return Err(Error::EmptyPrompt);
        }
        let subject_range = enc.token_range(chars).ok_or_else(not_found)?;
        let tokens = enc
            .ids
            .iter()
            .map(|&id| tokenizer.token_text(id))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            text: text.to_string(),
            subject: subject.to_string(),
            ids: enc.ids,
            tokens,
            subject_range,
            occurrences: found.len(),
            occurrence,
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

    /// Index of the last subject token (where ROME reads its key and writes its value).
    pub fn last_subject_token(&self) -> usize {
        self.subject_range.end.saturating_sub(1)
    }

    /// [`Sites`](crate::Sites) at the last subject token in every row: where ROME reads its
    /// key, ready for a [`SiteWrite`](crate::SiteWrite) or a hook (a token index is a `usize`,
    /// a site position an `i64` because negative positions count from the end).
    pub fn last_subject_site(&self) -> crate::Sites {
        crate::Sites::position(self.last_subject_token() as i64)
    }
}

/// A token with its text: a prediction, an answer, a target's first token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenText {
    /// Token id.
    pub id: i64,
    /// Token text.
    pub text: String,
}

/// The tokens of a target as it follows a prompt: `" " + target` (the convention of ROME's
/// CounterFact and known-facts data), without a BOS the tokenizer may add.
///
/// # Errors
/// [`Error::EmptyTarget`] if the target is blank or tokenises to nothing; tokenizer errors.
pub fn target_tokens(tokenizer: &Tokenizer, target: &str) -> Result<Vec<i64>> {
    if target.trim().is_empty() {
        return Err(Error::EmptyTarget {
            target: target.to_string(),
        });
    }
    let ids = tokenizer.encode(&format!(" {target}"))?.text_ids();
    if ids.is_empty() {
        return Err(Error::EmptyTarget {
            target: target.to_string(),
        });
    }
    Ok(ids)
}

/// The first token of `" " + target` with its text (ROME's rule for whether a model "knows"
/// a fact compares it with the greedy prediction).
///
/// # Errors
/// As [`target_tokens`].
pub fn first_target_token(tokenizer: &Tokenizer, target: &str) -> Result<TokenText> {
    let ids = target_tokens(tokenizer, target)?;
    let id = ids.first().copied().ok_or_else(|| Error::EmptyTarget {
        target: target.to_string(),
    })?;
    Ok(TokenText {
        id,
        text: tokenizer.token_text(id)?,
    })
}
