//! Rewrite requests: "{} is located in the city of" + "The Eiffel Tower" → " Rome".

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One fact to write: the prompt (with `{}` where the subject goes), the subject, and the new
/// target (without the leading space, which is added as ROME does).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewriteRequest {
    /// The prompt template, containing `{}` exactly once.
    pub prompt: String,
    /// The subject.
    pub subject: String,
    /// The new object.
    pub target: String,
}

impl RewriteRequest {
    /// A checked request.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for a prompt without exactly one `{}`, an empty subject or
    /// target.
    pub fn new(
        prompt: impl Into<String>,
        subject: impl Into<String>,
        target: impl Into<String>,
    ) -> Result<Self> {
        let r = Self {
            prompt: prompt.into(),
            subject: subject.into(),
            target: target.into(),
        };
        r.validate()?;
        Ok(r)
    }

    /// Checks the request.
    ///
    /// # Errors
    /// As [`RewriteRequest::new`].
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: &str| Error::InvalidRequest {
            prompt: self.prompt.clone(),
            reason: reason.to_string(),
        };
        match self.prompt.matches("{}").count() {
            0 => return Err(bad("the prompt has no `{}` marking where the subject goes")),
            1 => {}
            _ => return Err(bad("the prompt has more than one `{}`")),
        }
        if self.subject.trim().is_empty() {
            return Err(bad("the subject is empty"));
        }
        if self.target.trim().is_empty() {
            return Err(bad("the target is empty"));
        }
        Ok(())
    }

    /// The prompt with the subject filled in.
    pub fn filled(&self) -> String {
        self.prompt.replacen("{}", &self.subject, 1)
    }
}
