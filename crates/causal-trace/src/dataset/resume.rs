//! Resuming a dataset run: which case files of an earlier run can be reused. A case file is
//! reused only if it parses, matches this run's fact and settings, and holds values that a
//! trace can produce (shapes that agree, probabilities in `[0, 1]`); otherwise the case is
//! traced again and the reason is reported.

use std::fs;
use std::path::Path;

use crate::case::TraceRecord;
use crate::dataset::DatasetRun;
use crate::facts::KnownFact;
use crate::noise::Corruption;
use crate::trace::{Schedule, Sever, TraceGrid, TraceKind};

/// What an earlier run left for one case.
#[derive(Debug)]
pub(crate) enum Cached {
    /// No case file.
    Absent,
    /// A valid record for this run's settings.
    Reuse(Box<TraceRecord>),
    /// A file that cannot be reused, and why.
    Redo(String),
}

/// Reads and checks the case file at `path`.
pub(crate) fn cached_case(
    path: &Path,
    fact: &KnownFact,
    options: &DatasetRun,
    noise: &Corruption,
    n_layers: usize,
) -> Cached {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Cached::Absent,
        Err(e) => return Cached::Redo(format!("unreadable: {e}")),
    };
    let record: TraceRecord = match serde_json::from_str(&text) {
        Ok(r) => r,
        Err(e) => return Cached::Redo(format!("not a case record: {e}")),
    };
    match check_record(&record, fact, options, noise, n_layers) {
        Ok(()) => Cached::Reuse(Box::new(record)),
        Err(reason) => Cached::Redo(reason),
    }
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

fn same_noise(a: &Corruption, b: &Corruption) -> bool {
    if std::mem::discriminant(a) != std::mem::discriminant(b) {
        return false;
    }
    match (a, b) {
        (Corruption::Substitute { tokens: x }, Corruption::Substitute { tokens: y }) => x == y,
        _ => match (a.scale(), b.scale()) {
            (Some(x), Some(y)) => close(x, y),
            _ => a == b,
        },
    }
}

/// A probability as a trace computes it (a little slack for rounding).
fn is_probability(p: f64) -> bool {
    (-1e-6..=1.0 + 1e-6).contains(&p)
}

/// Whether a grid's values are ones a trace of `n_layers` layers can produce.
fn check_grid(g: &TraceGrid, n_layers: usize) -> Result<(), String> {
    let what = format!("{} grid", g.kind.name());
    if g.n_layers != n_layers {
        return Err(format!(
            "{what}: {} layers, the model has {n_layers}",
            g.n_layers
        ));
    }
    if g.tokens.len() != g.token_ids.len() {
        return Err(format!("{what}: token texts and ids differ in number"));
    }
    let (b, e) = g.subject_range;
    if b >= e || e > g.tokens.len() {
        return Err(format!(
            "{what}: subject range {b}..{e} outside {} tokens",
            g.tokens.len()
        ));
    }
    if g.scores.len() != g.rows.len() {
        return Err(format!(
            "{what}: {} score rows for {} tokens",
            g.scores.len(),
            g.rows.len()
        ));
    }
    if let Some(&r) = g.rows.iter().find(|&&r| r >= g.tokens.len()) {
        return Err(format!("{what}: row token {r} outside the prompt"));
    }
    if let Some(row) = g.scores.iter().find(|row| row.len() != n_layers) {
        return Err(format!("{what}: a score row has {} layers", row.len()));
    }
    let scores = g.scores.iter().flatten();
    let all = scores.chain([&g.clean_score, &g.corrupted_score]);
    if let Some(p) = all.copied().find(|&p| !is_probability(p)) {
        return Err(format!("{what}: score {p} is not a probability"));
    }
    Ok(())
}

/// Why `c` cannot be reused for `fact` under these settings, if it cannot.
fn check_record(
    c: &TraceRecord,
    fact: &KnownFact,
    options: &DatasetRun,
    noise: &Corruption,
    n_layers: usize,
) -> Result<(), String> {
    if c.known_id != fact.known_id {
        return Err(format!("it is the record of fact {}", c.known_id));
    }
    if c.failed() || !c.known {
        // Facts not known and prompt failures depend on the fact and model only.
        return match &c.fact {
            Some(f) if f != fact => Err("the fact changed".into()),
            _ => Ok(()),
        };
    }
    if c.fact.as_ref() != Some(fact) {
        return Err("the fact changed".into());
    }
    for &kind in &options.kinds {
        let g = c
            .grid(kind)
            .ok_or_else(|| format!("no {} grid", kind.name()))?;
        let settings_match = g.samples == options.samples
            && g.seed == options.seed
            && g.schedule == Schedule::Fast
            && (kind == TraceKind::Hidden || g.window == options.window)
            && same_noise(&g.noise, noise);
        if !settings_match {
            return Err(format!(
                "its {} grid was traced with other settings",
                kind.name()
            ));
        }
        check_grid(g, n_layers)?;
    }
    if options.severed {
        for sever in [None, Some(Sever::Mlp), Some(Sever::Attn)] {
            let g = c.severed_grid(sever).ok_or("no severed comparison")?;
            if g.samples != options.samples || g.seed != options.seed {
                return Err("its severed comparison was traced with other settings".into());
            }
            check_grid(g, n_layers)?;
        }
    }
    Ok(())
}
