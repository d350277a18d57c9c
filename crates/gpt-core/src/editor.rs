//! The editing interface shared by editing methods and their evaluators: a fact to write
//! ([`RewriteRequest`]) and a method that turns requests into weight changes ([`Editor`]).
//!
//! It lives here, beside [`EditableModel`], so that an evaluator (CounterFact) and the
//! methods (ROME, MEMIT, fine-tuning) both see it without depending on each other.

use serde::{Deserialize, Serialize};

use crate::edit::{EditUndo, WeightDelta};
use crate::error::{Error, Result};
use crate::model::{EditableModel, ResumableModel};
use crate::progress::ProgressFn;
use crate::tokenizer::Tokenizer;

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
        // A control character (a NUL from a bad file, say) tokenises to something no text
        // contains: the edit would "succeed" and the target never appear.
        for (field, text) in [
            ("prompt", &self.prompt),
            ("subject", &self.subject),
            ("target", &self.target),
        ] {
            if let Some((i, c)) = text.char_indices().find(|(_, c)| c.is_control()) {
                return Err(bad(&format!(
                    "the {field} contains the control character {c:?} at byte {i}"
                )));
            }
        }
        Ok(())
    }

    /// The prompt with the subject filled in.
    pub fn filled(&self) -> String {
        self.prompt.replacen("{}", &self.subject, 1)
    }
}

/// An editing method's identity: the built-in methods by name, a user's own as
/// [`Method::Other`]. Parsed from text only at the edges ([`std::str::FromStr`]).
///
/// ```
/// use gpt_core::editor::Method;
/// assert_eq!("r-rome".parse::<Method>()?, Method::RRome);
/// assert_eq!(Method::Memit.to_string(), "memit");
/// assert_eq!(Method::Other("my-method").name(), "my-method");
/// # Ok::<(), gpt_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// ROME (Meng et al. 2022).
    Rome,
    /// r-ROME (Gupta et al. 2024): ROME with the key of the update taken from the prompt itself.
    RRome,
    /// MEMIT (Meng et al. 2023).
    Memit,
    /// FT-L: constrained fine-tuning of one MLP output matrix.
    Ft,
    /// AlphaEdit (Fang et al. 2025): MEMIT's update projected onto the null space of the
    /// preserved knowledge's keys.
    AlphaEdit,
    /// EMMET (Gupta et al. 2024): equality-constrained mass editing (batched ROME).
    Emmet,
    /// A method defined outside factscope, by its name.
    Other(&'static str),
}

impl Method {
    /// The methods that ship with factscope, in the order help texts list them.
    pub const BUILT_IN: &'static [Method] = &[
        Method::Rome,
        Method::RRome,
        Method::Memit,
        Method::Ft,
        Method::AlphaEdit,
        Method::Emmet,
    ];

    /// The name as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Method::Rome => "rome",
            Method::RRome => "r-rome",
            Method::Memit => "memit",
            Method::Ft => "ft",
            Method::AlphaEdit => "alphaedit",
            Method::Emmet => "emmet",
            Method::Other(name) => name,
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Method {
    type Err = Error;

    /// A built-in method by name.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the unknown method and listing the built-in ones.
    fn from_str(s: &str) -> Result<Self> {
        Method::BUILT_IN
            .iter()
            .copied()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Method::BUILT_IN.iter().map(|m| m.name()).collect();
                Error::InvalidInput(format!(
                    "unknown editing method `{s}` ({})",
                    names.join(", ")
                ))
            })
    }
}

/// A model an [`Editor`] can work on: editable weights and resumable passes (what ROME's fast
/// schedule needs). Implemented for every such model, including trait objects of it.
pub trait EditModel: EditableModel + ResumableModel {}

impl<M: EditableModel + ResumableModel + ?Sized> EditModel for M {}

/// An editing method: turns rewrite requests into weight changes without touching the model.
///
/// Methods that write one fact at a time (ROME) say so with [`Editor::joint`] = `false`;
/// [`apply_edits`] then computes each request on the model with the earlier ones applied, as
/// sequential editing means. Joint methods (MEMIT) write all requests in one computation.
pub trait Editor {
    /// Which method this is.
    fn method(&self) -> Method;

    /// Whether [`Editor::compute`] writes several requests jointly. When `false`, callers
    /// pass one request at a time.
    fn joint(&self) -> bool {
        false
    }

    /// The weight changes that write `requests` into `model`. The model is borrowed mutably
    /// because some methods (MEMIT) apply their layers' changes in turn while computing the
    /// next; every method leaves it exactly as it found it, on success and on error.
    ///
    /// `progress` hears the method's stages (each method documents them, e.g. ROME's
    /// optimisation steps, MEMIT's targets and layers) at least once per optimisation step,
    /// so that a caller can stop a long edit: [`ControlFlow::Break`](std::ops::ControlFlow)
    /// ends it with [`Error::Cancelled`], the model as it was.
    ///
    /// # Errors
    /// Malformed requests, model errors, [`Error::Cancelled`], and the method's own failures
    /// as [`Error::Edit`].
    fn compute(
        &mut self,
        model: &mut dyn EditModel,
        tokenizer: &Tokenizer,
        requests: &[RewriteRequest],
        progress: &mut ProgressFn<'_>,
    ) -> Result<Vec<WeightDelta>>;

    /// Writes what this editor carries from one [`Editor::compute`] to the next (AlphaEdit's
    /// key history of the edits written so far) into the existing folder `dir`, so that a
    /// sequential run can stop and resume with the editor as it was. Methods without such
    /// state write nothing (the default).
    ///
    /// # Errors
    /// Write failures naming the file.
    fn save_state(&self, dir: &std::path::Path) -> Result<()> {
        let _ = dir;
        Ok(())
    }

    /// Restores what [`Editor::save_state`] wrote in `dir`. Methods without such state read
    /// nothing (the default).
    ///
    /// # Errors
    /// Missing or corrupt files, or state that does not fit this editor (e.g. another
    /// layer's dimension).
    fn load_state(&mut self, dir: &std::path::Path) -> Result<()> {
        let _ = dir;
        Ok(())
    }
}

/// Writes `requests` into `model` with `editor` (jointly, or one after another for
/// one-at-a-time methods) and returns the undo records in the order applied: undo them in
/// reverse to restore every weight bit for bit. On an error, the edits already applied are
/// undone before it is returned, so the model is never left half-edited. `progress` is
/// passed to each [`Editor::compute`] (a stop there undoes the edits already applied too).
///
/// # Errors
/// As [`Editor::compute`] and [`EditableModel::apply`].
pub fn apply_edits<M: EditModel>(
    editor: &mut dyn Editor,
    model: &mut M,
    tokenizer: &Tokenizer,
    requests: &[RewriteRequest],
    progress: &mut ProgressFn<'_>,
) -> Result<Vec<EditUndo>> {
    let mut undos = Vec::new();
    let result = (|| -> Result<()> {
        let groups: Vec<&[RewriteRequest]> = if editor.joint() {
            check_joint_requests(requests)?;
            vec![requests]
        } else {
            requests.chunks(1).collect()
        };
        for group in groups {
            for delta in editor.compute(&mut *model, tokenizer, group, progress)? {
                undos.push(model.apply(&delta)?);
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(undos),
        Err(e) => {
            undo_all(model, &undos)?;
            Err(e)
        }
    }
}

/// Checks requests that one computation writes jointly (MEMIT, FT-L): each is valid, and no
/// two ask for different targets for the same prompt and subject — written together they
/// would contradict each other, and neither would hold. (One-at-a-time methods may rewrite a
/// fact again: the later edit wins, as sequential editing means.)
///
/// # Errors
/// [`Error::InvalidRequest`] naming the request (by index) and what is wrong.
pub fn check_joint_requests(requests: &[RewriteRequest]) -> Result<()> {
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, r) in requests.iter().enumerate() {
        r.validate().map_err(|e| match e {
            Error::InvalidRequest { prompt, reason } => Error::InvalidRequest {
                prompt,
                reason: format!("request {i}: {reason}"),
            },
            other => other,
        })?;
        if let Some(&j) = seen.get(&r.filled()) {
            let earlier = &requests[j];
            if earlier.target != r.target {
                return Err(Error::InvalidRequest {
                    prompt: r.prompt.clone(),
                    reason: format!(
                        "requests {j} and {i} ask for different targets ({:?} and {:?}) for the same prompt and subject {:?}; written jointly they contradict each other",
                        earlier.target, r.target, r.subject
                    ),
                });
            }
        } else {
            seen.insert(r.filled(), i);
        }
    }
    Ok(())
}

/// Undoes `undos` (as returned by [`apply_edits`]) in reverse order.
///
/// # Errors
/// As [`EditableModel::undo`].
pub fn undo_all<M: EditableModel + ?Sized>(model: &mut M, undos: &[EditUndo]) -> Result<()> {
    for undo in undos.iter().rev() {
        model.undo(undo)?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_refused_by_field() {
        let e = RewriteRequest::new("{} is in", "Pa\u{0}ris", "Rome").unwrap_err();
        let m = e.to_string();
        assert!(m.contains("subject") && m.contains("\\0"), "{m}");
        let e = RewriteRequest::new("{} is in", "Paris", "Ro\u{7}me").unwrap_err();
        assert!(e.to_string().contains("target"), "{e}");
        assert!(RewriteRequest::new("{} is in", "Paris", "Rome").is_ok());
    }

    #[test]
    fn contradicting_joint_requests_are_refused() {
        let a = RewriteRequest::new("{} is in", "The Eiffel Tower", "Rome").unwrap();
        let b = RewriteRequest::new("{} is in", "The Eiffel Tower", "Berlin").unwrap();
        let e = check_joint_requests(&[a.clone(), b])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("requests 0 and 1") && e.contains("Rome") && e.contains("Berlin"),
            "{e}"
        );
        // The same fact twice, or other subjects, are fine.
        let c = RewriteRequest::new("{} is in", "The Colosseum", "Berlin").unwrap();
        check_joint_requests(&[a.clone(), a.clone(), c]).unwrap();
        // Invalid requests are named by index.
        let bad = RewriteRequest {
            prompt: "no marker".into(),
            subject: "x".into(),
            target: "y".into(),
        };
        let e = check_joint_requests(&[a, bad]).unwrap_err().to_string();
        assert!(e.contains("request 1"), "{e}");
    }
}
