//! Task files (JSON lists of `{"input", "output"}` pairs) and the reference's
//! train / valid / test splits.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rng::RandomState;

/// One demonstration or query: `input` → `output` (no leading spaces; the template adds
/// them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pair {
    /// The input word or phrase.
    pub input: String,
    /// The expected answer.
    pub output: String,
}

/// An in-context-learning task: a name and its pairs, with where they came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    /// The task's name (the file stem, e.g. `antonym`).
    pub name: String,
    /// The file the pairs were read from (or `<name>` for built tasks), named in errors.
    pub source: PathBuf,
    /// The pairs, in file order.
    pub pairs: Vec<Pair>,
}

impl Task {
    /// Reads a task file: a non-empty JSON list of objects with string fields `input` and
    /// `output` (other fields are ignored). Blank fields are refused.
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::BadTaskFile`] for invalid JSON, a non-list or an empty list;
    /// [`Error::BadRecord`] naming the record index and field.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|error| Error::Io {
            path: path.to_path_buf(),
            error,
        })?;
        let bad_file = |reason: String| Error::BadTaskFile {
            path: path.to_path_buf(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad_file(format!("not valid JSON: {e}")))?;
        let list = value.as_array().ok_or_else(|| {
            bad_file("expected a JSON list of {\"input\", \"output\"} records".into())
        })?;
        if list.is_empty() {
            return Err(bad_file("the task file holds no records".into()));
        }
        let mut pairs = Vec::with_capacity(list.len());
        for (index, record) in list.iter().enumerate() {
            let field = |name: &'static str| -> Result<String> {
                let bad = |reason: &str| Error::BadRecord {
                    path: path.to_path_buf(),
                    index,
                    field: name,
                    reason: reason.into(),
                };
                match record.get(name) {
                    None if !record.is_object() => Err(bad("the record is not an object")),
                    None => Err(bad("missing")),
                    Some(serde_json::Value::String(s)) => Ok(s.clone()),
                    Some(_) => Err(bad("not a string")),
                }
            };
            pairs.push(Pair {
                input: field("input")?,
                output: field("output")?,
            });
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("task")
            .to_string();
        Self::from_pairs_at(name, path.to_path_buf(), pairs)
    }

    /// A task from pairs built in memory (errors name `<name>` as the file).
    ///
    /// # Errors
    /// As [`Task::load`] for an empty list or blank fields.
    pub fn from_pairs(name: impl Into<String>, pairs: Vec<Pair>) -> Result<Self> {
        let name = name.into();
        let source = PathBuf::from(format!("<{name}>"));
        Self::from_pairs_at(name, source, pairs)
    }

    fn from_pairs_at(name: String, source: PathBuf, pairs: Vec<Pair>) -> Result<Self> {
        if pairs.is_empty() {
            return Err(Error::BadTaskFile {
                path: source,
                reason: "the task holds no records".into(),
            });
        }
        for (index, p) in pairs.iter().enumerate() {
            for (field, value) in [("input", &p.input), ("output", &p.output)] {
                if value.trim().is_empty() {
                    return Err(Error::BadRecord {
                        path: source,
                        index,
                        field,
                        reason: "blank".into(),
                    });
                }
            }
        }
        Ok(Self {
            name,
            source,
            pairs,
        })
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether the task has no pairs (never true for a loaded task).
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

/// The reference's splits (`load_dataset(test_size=0.3, seed)`): indices into
/// [`Task::pairs`].
///
/// `p = RandomState(seed).permutation(n)`, `k = ⌈0.3·n⌉`: held = `p[..k]`, train = `p[k..]`;
/// `q = RandomState(seed).permutation(k)`, `v = ⌈0.3·k⌉`: valid = `held[q[..v]]`,
/// test = `held[q[v..]]`. Sizes train / valid / test ≈ 70% / 9% / 21%.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Splits {
    /// Demonstrations are drawn from here.
    pub train: Vec<usize>,
    /// Queries of the mean activations and the head scan.
    pub valid: Vec<usize>,
    /// Queries of the evaluation.
    pub test: Vec<usize>,
}

impl Splits {
    /// The splits of `n` pairs with `seed`.
    pub fn new(n: usize, seed: u32) -> Self {
        let held_len = ((0.3 * n as f64).ceil() as usize).min(n);
        let p = RandomState::new(seed).permutation(n);
        let (held, train) = p.split_at(held_len);
        let valid_len = ((0.3 * held_len as f64).ceil() as usize).min(held_len);
        let q = RandomState::new(seed).permutation(held_len);
        let valid = q[..valid_len].iter().map(|&i| held[i]).collect();
        let test = q[valid_len..].iter().map(|&i| held[i]).collect();
        Self {
            train: train.to_vec(),
            valid,
            test,
        }
    }

    /// Checks that `shots` demonstrations and a query can be drawn: the train split needs at
    /// least `shots` pairs (and `shots + 1` pairs overall), valid and test at least one.
    ///
    /// # Errors
    /// [`Error::TooFewPairs`] naming the task, the split and the counts.
    pub fn check(&self, task: &Task, shots: usize) -> Result<()> {
        let too_few = |reason: String| Error::TooFewPairs {
            task: format!("{} ({})", task.name, task.source.display()),
            reason,
        };
        if task.len() < shots + 1 {
            return Err(too_few(format!(
                "{} pairs, but {shots}-shot prompts need at least {} (shots + 1)",
                task.len(),
                shots + 1
            )));
        }
        if self.train.len() < shots {
            return Err(too_few(format!(
                "the train split has {} pairs, fewer than the {shots} demonstrations of a prompt",
                self.train.len()
            )));
        }
        if self.valid.is_empty() || self.test.is_empty() {
            return Err(too_few(format!(
                "the valid / test splits have {} / {} pairs; each needs at least one",
                self.valid.len(),
                self.test.len()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn antonym_splits_match_the_reference() {
        let s = Splits::new(2398, 42);
        assert_eq!(
            (s.train.len(), s.valid.len(), s.test.len()),
            (1678, 216, 504)
        );
        assert_eq!(&s.train[..5], &[380, 226, 1170, 715, 1199]);
        assert_eq!(&s.valid[..3], &[1491, 527, 2194]);
        assert_eq!(&s.test[..3], &[988, 2179, 83]);
        for (n, sizes) in [
            (197, (137, 18, 42)),
            (293, (205, 27, 61)),
            (813, (569, 74, 170)),
        ] {
            let s = Splits::new(n, 42);
            assert_eq!((s.train.len(), s.valid.len(), s.test.len()), sizes);
        }
    }
}
