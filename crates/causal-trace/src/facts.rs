//! Known-facts files (ROME's `known_1000.json` format): reading and checking them, naming the
//! record and field of any problem.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// One record of a known-facts file (`known_1000.json` format).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownFact {
    /// Id of the record (names its case file).
    pub known_id: u64,
    /// The subject, as it occurs in `prompt`.
    pub subject: String,
    /// The expected answer, without a leading space.
    pub attribute: String,
    /// The relation's template, `{}` for the subject (informative; may be empty).
    #[serde(default)]
    pub template: String,
    /// GPT-2 XL's continuation (informative; may be empty).
    #[serde(default)]
    pub prediction: String,
    /// The prompt traced.
    pub prompt: String,
    /// Wikidata relation id, e.g. `P30` (informative; may be empty).
    #[serde(default)]
    pub relation_id: String,
}

/// Reads a known-facts file: a JSON list of [`KnownFact`] records.
///
/// `known_id`, `subject`, `attribute` and `prompt` are required; `template`, `prediction`
/// and `relation_id` default to empty.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read; [`Error::BadFile`] if it is not UTF-8 (naming
/// the byte offset), not JSON or not a list; [`Error::BadRecord`] naming the record's index and the field for a missing field, a
/// value of the wrong type, an empty subject or attribute, a subject that does not occur in
/// the prompt, or a repeated `known_id`.
pub fn load_known_facts(path: &Path) -> Result<Vec<KnownFact>> {
    let bytes = fs::read(path).map_err(|error| Error::Io {
        path: path.to_path_buf(),
        error,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| Error::BadFile {
        path: path.to_path_buf(),
        reason: format!(
            "not UTF-8 text: invalid byte at offset {}",
            e.utf8_error().valid_up_to()
        ),
    })?;
    let value: Value = serde_json::from_str(&text).map_err(|e| Error::BadFile {
        path: path.to_path_buf(),
        reason: format!("not valid JSON: {e}"),
    })?;
    let Value::Array(records) = value else {
        return Err(Error::BadFile {
            path: path.to_path_buf(),
            reason: format!(
                "expected a JSON list of known-fact records, found {}",
                json_kind(&value)
            ),
        });
    };
    let mut facts = Vec::with_capacity(records.len());
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for (index, record) in records.into_iter().enumerate() {
        let bad = |reason: String| Error::BadRecord {
            path: path.to_path_buf(),
            index,
            reason,
        };
        let fact = parse_fact(&record).map_err(bad)?;
        if let Some(first) = seen.insert(fact.known_id, index) {
            return Err(bad(format!(
                "field `known_id`: {} repeats the id of record {first}",
                fact.known_id
            )));
        }
        facts.push(fact);
    }
    Ok(facts)
}

pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// One record, field by field, so the error names the field.
fn parse_fact(record: &Value) -> std::result::Result<KnownFact, String> {
    let Value::Object(obj) = record else {
        return Err(format!("expected an object, found {}", json_kind(record)));
    };
    fn field<T: DeserializeOwned>(
        obj: &Map<String, Value>,
        name: &str,
        required: bool,
    ) -> std::result::Result<Option<T>, String> {
        match obj.get(name) {
            None if required => Err(format!("missing field `{name}`")),
            None => Ok(None),
            Some(v) => serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|e| format!("field `{name}`: {e}")),
        }
    }
    let req = |name: &str| -> std::result::Result<String, String> {
        Ok(field::<String>(obj, name, true)?.unwrap_or_default())
    };
    let opt = |name: &str| -> std::result::Result<String, String> {
        Ok(field::<String>(obj, name, false)?.unwrap_or_default())
    };
    let known_id = field::<u64>(obj, "known_id", true)?.unwrap_or_default();
    let fact = KnownFact {
        known_id,
        subject: req("subject")?,
        attribute: req("attribute")?,
        template: opt("template")?,
        prediction: opt("prediction")?,
        prompt: req("prompt")?,
        relation_id: opt("relation_id")?,
    };
    if fact.subject.trim().is_empty() {
        return Err("field `subject`: the subject is empty".into());
    }
    if fact.attribute.trim().is_empty() {
        return Err("field `attribute`: the attribute is empty".into());
    }
    if !fact.prompt.contains(&fact.subject) {
        return Err(format!(
            "field `subject`: {:?} does not occur in the prompt {:?}",
            fact.subject, fact.prompt
        ));
    }
    Ok(fact)
}
