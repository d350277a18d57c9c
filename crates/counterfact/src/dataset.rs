//! Edit cases from the four record schemas: the original CounterFact records
//! (`requested_rewrite`, …), the compact one-paraphrase schema EasyEdit uses (`prompt`,
//! `target_new`, `ground_truth`, `rephrase_prompt`, `locality_prompt`, …), known-facts
//! records (`known_id`, `template`, `attribute`) for runs without an edit, and zsRE records
//! of the MEND evaluation split (`src`, `subject`, `alt`, `answers`, `rephrase`, `loc`,
//! `loc_ans`), scored by token accuracy instead of probabilities (reference §4.6).

use std::path::{Path, PathBuf};

use gpt_core::RewriteRequest;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// A prompt whose continuation is scored for two targets (`true_target` is the one the
/// unedited world holds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// The text before the target.
    pub prompt: String,
    /// The object that is true for this prompt's subject before any edit.
    pub true_target: String,
}

/// Which schema a case came from, which decides how it is scored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CaseKind {
    /// A CounterFact record (original or compact schema): probability tests.
    #[default]
    CounterFact,
    /// A known-facts record: no edit, the true object's first token.
    KnownFact,
    /// A zsRE record: token-level top-1 accuracy under teacher forcing.
    Zsre,
}

impl CaseKind {
    /// The kind as a noun phrase for messages.
    fn describe(self) -> &'static str {
        match self {
            CaseKind::CounterFact => "an edit case",
            CaseKind::KnownFact => "a known fact",
            CaseKind::Zsre => "a zsRE record",
        }
    }
}

/// One edit case: the fact to write and the prompts that test it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditCase {
    /// The case's id in its dataset.
    pub case_id: u64,
    /// The relation (e.g. `P103`) when the data gives it.
    pub relation_id: Option<String>,
    /// The rewrite: prompt with `{}`, subject, the new target. For known-facts records
    /// (no edit), `target` is empty.
    pub request: RewriteRequest,
    /// The true object (`target_true` / `ground_truth` / `attribute`).
    pub target_true: String,
    /// Paraphrases of the rewrite prompt (subject filled in).
    pub paraphrase_prompts: Vec<String>,
    /// Prompts about other subjects, with their true objects.
    pub neighborhood: Vec<Probe>,
    /// Prompts to generate from for the fluency test.
    pub generation_prompts: Vec<String>,
    /// The schema the case came from (how it is scored).
    #[serde(default)]
    pub kind: CaseKind,
}

impl EditCase {
    /// Whether the case asks for an edit (known-facts records do not).
    pub fn has_edit(&self) -> bool {
        !self.request.target.trim().is_empty()
    }
}

/// The cases of a file and the records skipped as malformed.
#[derive(Debug, Default)]
pub struct LoadedCases {
    /// The good cases, in file order.
    pub cases: Vec<EditCase>,
    /// Malformed records that were skipped (with `skip_bad`), as errors naming them.
    pub skipped: Vec<Error>,
    /// FNV-1a 64 of the file's bytes (16 hex digits): which file the cases came from, for
    /// a run's settings.
    pub fingerprint: String,
}

/// Reads a JSON list of records in any of the four schemas (detected per record by its
/// fields).
/// With `skip_bad`, malformed records are collected in [`LoadedCases::skipped`] instead of
/// stopping the load.
///
/// # Errors
/// [`Error::Dataset`] for an unreadable file, one that is not a JSON list, or an empty list;
/// [`Error::Record`] for the first malformed record (without `skip_bad`), including a case id
/// seen before and records of different kinds in one file (a known fact among edit cases,
/// a zsRE record among CounterFact records, …).
pub fn load_cases(path: &Path, skip_bad: bool) -> Result<LoadedCases> {
    let (text, records) = read_records(path)?;
    let mut loaded = LoadedCases {
        fingerprint: gpt_core::fingerprint::Fnv64::hex_of(text.as_bytes()),
        ..LoadedCases::default()
    };
    let mut seen = Seen::default();
    for (index, record) in records.iter().enumerate() {
        let parsed =
            parse_record(path, index, record).and_then(|case| seen.check(path, index, case));
        match parsed {
            Ok(case) => {
                seen.ids.insert(case.case_id, index);
                loaded.cases.push(case);
            }
            Err(e) if skip_bad => loaded.skipped.push(e),
            Err(e) => return Err(e),
        }
    }
    if loaded.cases.is_empty() {
        return Err(Error::Dataset {
            path: path.to_path_buf(),
            reason: format!("none of its {} records is usable", records.len()),
        });
    }
    Ok(loaded)
}

/// The text of the file at `path` and its records: a non-empty JSON list.
fn read_records(path: &Path) -> Result<(String, Vec<Value>)> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Dataset {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let value: Value = serde_json::from_str(&text).map_err(|e| Error::Dataset {
        path: path.to_path_buf(),
        reason: format!("not JSON: {e}"),
    })?;
    let Value::Array(records) = value else {
        return Err(Error::Dataset {
            path: path.to_path_buf(),
            reason: "expected a JSON list of records".into(),
        });
    };
    if records.is_empty() {
        return Err(Error::Dataset {
            path: path.to_path_buf(),
            reason: "the list of cases is empty".into(),
        });
    }
    Ok((text, records))
}

/// What the records read so far were: the record index of each case id, and of the first
/// record's kind (CounterFact edit cases, known facts, zsRE records). A summary keyed by
/// case id would silently drop a duplicate, and a file mixing kinds has metrics that exist
/// only for some of its cases.
#[derive(Default)]
struct Seen {
    ids: std::collections::HashMap<u64, usize>,
    first_of_kind: Option<(CaseKind, usize)>,
}

impl Seen {
    /// `case`, the record at `index`, unless it is of another kind than the first record or
    /// its id was seen before. The first record's kind is noted here.
    fn check(&mut self, path: &Path, index: usize, case: EditCase) -> Result<EditCase> {
        let field = match case.kind {
            CaseKind::KnownFact => "known_id",
            // zsRE records have no id: theirs is their index, never a duplicate.
            CaseKind::CounterFact | CaseKind::Zsre => "case_id",
        };
        // The kind first: ids of different kinds are different things (a zsRE record's id
        // is its index), so a clash between them is not the problem to report.
        match self.first_of_kind {
            Some((kind, first)) if kind != case.kind => {
                let hint = if CaseKind::Zsre == kind || CaseKind::Zsre == case.kind {
                    "give zsRE records and CounterFact or known-facts records in separate files"
                } else {
                    "give edit cases and known facts in separate files"
                };
                return Err(Error::Record {
                    path: path.to_path_buf(),
                    index,
                    field: "(record)".into(),
                    reason: format!(
                        "{} in a file whose record {first} is {}; {hint}",
                        case.kind.describe(),
                        kind.describe()
                    ),
                });
            }
            None => self.first_of_kind = Some((case.kind, index)),
            _ => {}
        }
        if let Some(&earlier) = self.ids.get(&case.case_id) {
            return Err(Error::Record {
                path: path.to_path_buf(),
                index,
                field: field.into(),
                reason: format!(
                    "{} is also the id of record {earlier}; ids must be unique",
                    case.case_id
                ),
            });
        }
        Ok(case)
    }
}

/// Field access that names the record and field on failure.
struct Fields<'a> {
    path: &'a Path,
    index: usize,
    record: &'a Value,
}

impl Fields<'_> {
    fn error(&self, field: &str, reason: impl Into<String>) -> Error {
        Error::Record {
            path: PathBuf::from(self.path),
            index: self.index,
            field: field.to_string(),
            reason: reason.into(),
        }
    }

    fn get<'v>(&self, from: &'v Value, field: &str) -> Result<&'v Value> {
        from.get(field).ok_or_else(|| self.error(field, "missing"))
    }

    fn text_in(&self, from: &Value, field: &str) -> Result<String> {
        match self.get(from, field)? {
            Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
            Value::String(_) => Err(self.error(field, "empty")),
            other => Err(self.error(field, format!("expected a string, got {other}"))),
        }
    }

    fn text(&self, field: &str) -> Result<String> {
        self.text_in(self.record, field)
    }

    fn texts(&self, field: &str) -> Result<Vec<String>> {
        match self.record.get(field) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
                    _ => Err(self.error(&format!("{field}[{i}]"), "expected a non-empty string")),
                })
                .collect(),
            Some(other) => {
                Err(self.error(field, format!("expected a list of strings, got {other}")))
            }
        }
    }

    fn id(&self, field: &str) -> Result<u64> {
        self.get(self.record, field)?
            .as_u64()
            .ok_or_else(|| self.error(field, "expected a non-negative integer"))
    }

    fn optional_text(&self, field: &str) -> Option<String> {
        self.record
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_string)
    }
}

fn parse_record(path: &Path, index: usize, record: &Value) -> Result<EditCase> {
    let f = Fields {
        path,
        index,
        record,
    };
    if !record.is_object() {
        return Err(f.error("(record)", "expected a JSON object"));
    }
    if let Some(rw) = record.get("requested_rewrite") {
        original(&f, rw)
    } else if record.get("target_new").is_some() {
        compact(&f)
    } else if record.get("known_id").is_some() {
        known(&f)
    } else if record.get("src").is_some() && record.get("alt").is_some() {
        zsre(&f)
    } else {
        Err(f.error(
            "(record)",
            "not a CounterFact record (no `requested_rewrite`), a compact one (no `target_new`), a known fact (no `known_id`) or a zsRE record (no `src` and `alt`)",
        ))
    }
}

/// Checks the request, naming `field` when it is malformed.
fn checked(f: &Fields<'_>, field: &str, request: RewriteRequest) -> Result<RewriteRequest> {
    request
        .validate()
        .map_err(|e| f.error(field, e.to_string()))?;
    Ok(request)
}

fn original(f: &Fields<'_>, rw: &Value) -> Result<EditCase> {
    let target = |key: &str| -> Result<String> {
        let t = f.get(rw, key)?;
        f.text_in(t, "str")
            .map_err(|_| f.error(&format!("requested_rewrite.{key}.str"), "missing or empty"))
    };
    let prompt = f
        .text_in(rw, "prompt")
        .map_err(|e| f.error("requested_rewrite.prompt", e.to_string()))?;
    let subject = f
        .text_in(rw, "subject")
        .map_err(|e| f.error("requested_rewrite.subject", e.to_string()))?;
    let request = checked(
        f,
        "requested_rewrite.prompt",
        RewriteRequest {
            prompt,
            subject,
            target: target("target_new")?,
        },
    )?;
    let target_true = target("target_true")?;
    let neighborhood = f
        .texts("neighborhood_prompts")?
        .into_iter()
        .map(|prompt| Probe {
            prompt,
            true_target: target_true.clone(),
        })
        .collect();
    Ok(EditCase {
        case_id: f.id("case_id")?,
        relation_id: rw
            .get("relation_id")
            .and_then(Value::as_str)
            .map(str::to_string),
        request,
        target_true,
        paraphrase_prompts: f.texts("paraphrase_prompts")?,
        neighborhood,
        generation_prompts: f.texts("generation_prompts")?,
        kind: CaseKind::CounterFact,
    })
}

fn compact(f: &Fields<'_>) -> Result<EditCase> {
    let filled = f.text("prompt")?;
    let subject = f.text("subject")?;
    if !filled.contains(&subject) {
        return Err(f.error(
            "prompt",
            format!("does not contain the subject {subject:?}"),
        ));
    }
    let request = checked(
        f,
        "prompt",
        RewriteRequest {
            prompt: filled.replacen(&subject, "{}", 1),
            subject,
            target: f.text("target_new")?,
        },
    )?;
    let rephrase = f.text("rephrase_prompt")?;
    let neighborhood = vec![Probe {
        prompt: f.text("locality_prompt")?,
        true_target: f.text("locality_ground_truth")?,
    }];
    Ok(EditCase {
        case_id: f.id("case_id")?,
        relation_id: f.optional_text("relation_id"),
        request,
        target_true: f.text("ground_truth")?,
        paraphrase_prompts: vec![rephrase.clone()],
        neighborhood,
        // The compact schema has no generation prompts: the prompt and its paraphrase.
        generation_prompts: vec![filled, rephrase],
        kind: CaseKind::CounterFact,
    })
}

fn known(f: &Fields<'_>) -> Result<EditCase> {
    let subject = f.text("subject")?;
    let template = f.text("template")?;
    let prompt = match f.optional_text("prompt") {
        Some(p) if p.starts_with(&template.replacen("{}", &subject, 1)) => {
            p.replacen(&subject, "{}", 1)
        }
        _ => template,
    };
    let request = RewriteRequest {
        prompt,
        subject,
        target: String::new(),
    };
    if request.prompt.matches("{}").count() != 1 {
        return Err(f.error("template", "needs exactly one `{}`"));
    }
    Ok(EditCase {
        case_id: f.id("known_id")?,
        relation_id: f.optional_text("relation_id"),
        generation_prompts: vec![request.filled()],
        request,
        target_true: f.text("attribute")?,
        paraphrase_prompts: Vec::new(),
        neighborhood: Vec::new(),
        kind: CaseKind::KnownFact,
    })
}

/// A zsRE record as ROME's `MENDQADataset` reads it, except that the new answer is `alt`
/// (ROME writes `answers[0]`, the true answer, which measures nothing for an edit): the
/// request prompt is `src` with the subject replaced by `{}`, the paraphrase `rephrase`,
/// the neighbour `loc + "?"` with `loc_ans`. The case id is the record's index.
fn zsre(f: &Fields<'_>) -> Result<EditCase> {
    let subject = f.text("subject")?;
    let src = f.text("src")?;
    if !src.contains(&subject) {
        return Err(f.error("src", format!("does not contain the subject {subject:?}")));
    }
    // 21 records of the MEND split give `alt` with a leading space; `" " + alt` would put
    // two spaces before the answer, so the answer is taken without it.
    let alt = f.text("alt")?.trim().to_string();
    let answers = f.texts("answers")?;
    let Some(first) = answers.first() else {
        return Err(f.error(
            "answers",
            "missing or empty: needs at least one true answer",
        ));
    };
    if let Some(i) = answers.iter().position(|a| a.trim() == alt) {
        return Err(f.error(
            "alt",
            format!("{alt:?} is the true answer answers[{i}]: the edit would change nothing"),
        ));
    }
    let request = checked(
        f,
        "src",
        RewriteRequest {
            prompt: src.replacen(&subject, "{}", 1),
            subject,
            target: alt,
        },
    )?;
    let neighborhood = vec![Probe {
        // ROME's zsRE neighbour prompt: the NQ question with a question mark.
        prompt: format!("{}?", f.text("loc")?),
        true_target: f.text("loc_ans")?,
    }];
    Ok(EditCase {
        case_id: f.index as u64,
        relation_id: None,
        request,
        target_true: first.trim().to_string(),
        paraphrase_prompts: vec![f.text("rephrase")?],
        neighborhood,
        // ROME's zsRE evaluation has no fluency test.
        generation_prompts: Vec::new(),
        kind: CaseKind::Zsre,
    })
}

/// Every `n`-th case starting at `k` (0-based): shard `k` of `n`, so that `n` machines
/// each run one shard of one dataset into one folder.
///
/// # Errors
/// [`Error::InvalidInput`] unless `n ≥ 1` and `k < n`.
pub fn shard<T: Clone>(items: &[T], k: usize, n: usize) -> Result<Vec<T>> {
    if n == 0 || k >= n {
        return Err(Error::InvalidInput(format!(
            "shard {k}/{n}: need 0 ≤ K < N (shards are numbered from 0)"
        )));
    }
    Ok(items.iter().skip(k).step_by(n).cloned().collect())
}
