//! The retention probe of `evaluate --sequential`: held-out perplexity and known-facts
//! accuracy measured before, during and after the edits.

use std::path::Path;

use anyhow::{bail, Context as _};
use counterfact::{load_cases, EditCase, RetentionProbe};
use gpt_core::HookableModel;

use super::EvaluateArgs;

/// The retention probe of a sequential run (with a description of what it measures, for the
/// run's settings), or `None` when neither --retention-text nor --known-facts is given.
pub(super) fn retention_probe(
    args: &EvaluateArgs,
    loaded: &gpt_core::LoadedModel,
    cases: &[EditCase],
) -> anyhow::Result<Option<(String, RetentionProbe)>> {
    if args.retention_text.is_none() && args.known_facts.is_none() {
        eprintln!(
            "note: no retention measured (give --retention-text and --known-facts to measure it)"
        );
        return Ok(None);
    }
    let mut what = Vec::new();
    let documents = match &args.retention_text {
        Some(path) => retention_text(args, path, &mut what)?,
        None => Vec::new(),
    };
    let known = match &args.known_facts {
        Some(path) => known_facts(path, &mut what)?,
        None => Vec::new(),
    };
    let window = 512.min(loaded.model.config().n_ctx);
    // Facts about an edited subject are left out: the edit is meant to change them.
    let subjects = cases
        .iter()
        .map(|c| c.request.subject.trim().to_string())
        .collect();
    let probe = RetentionProbe::new(
        &loaded.tokenizer,
        &documents,
        args.retention_tokens,
        window,
        known,
    )?
    .without_subjects(&subjects);
    if args.retention_text.is_some() && probe.text_tokens() == 0 {
        bail!("--retention-text: no text to measure perplexity on");
    }
    Ok(Some((what.join("; "), probe)))
}

/// The documents of `--retention-text`, with their description pushed onto `what`.
fn retention_text(
    args: &EvaluateArgs,
    path: &Path,
    what: &mut Vec<String>,
) -> anyhow::Result<Vec<String>> {
    let corpus = rome::Corpus::from_path(path)
        .with_context(|| format!("--retention-text {}", path.display()))?;
    what.push(format!(
        "text {} ({}, {} tokens)",
        path.display(),
        corpus.fingerprint,
        args.retention_tokens
    ));
    Ok(corpus.documents)
}

/// The records of `--known-facts` (refused unless every one is a known fact), with their
/// description pushed onto `what`.
fn known_facts(path: &Path, what: &mut Vec<String>) -> anyhow::Result<Vec<EditCase>> {
    let loaded_known =
        load_cases(path, false).with_context(|| format!("--known-facts {}", path.display()))?;
    if let Some(c) = loaded_known
        .cases
        .iter()
        .find(|c| c.kind != counterfact::CaseKind::KnownFact)
    {
        bail!(
            "--known-facts {}: case {} is not a known-facts record (fields `known_id`, `subject`, `attribute`, `prompt`)",
            path.display(),
            c.case_id
        );
    }
    what.push(format!(
        "known facts {} ({})",
        path.display(),
        loaded_known.fingerprint
    ));
    Ok(loaded_known.cases)
}
