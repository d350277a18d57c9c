//! Progress reports of long operations, and how their callers stop them: one event type
//! ([`Progress`]) and one callback shape ([`ProgressFn`]) for every long operation of the
//! workspace (key statistics, sampled corpora, MEMIT, CounterFact runs, causal traces and
//! dataset traces, function-vector extraction and evaluation).
//!
//! A long operation takes `progress: &mut ProgressFn<'_>` and calls it once before its first
//! unit of work (`done` is then what is already done: 0, or what an earlier, resumed run
//! did) and after every unit (a chunk of documents, a case, a token row, a prompt); where a
//! unit is long, also within it when one of its [`counts`](Progress::counts) moves (the
//! optimisation steps of a batch of edit targets), `done` unchanged. The
//! callback returns [`ControlFlow::Continue`] to go on or [`ControlFlow::Break`] to stop
//! there: the operation then leaves what it wrote consistent (checkpoints, records, case
//! files, the model's weights) and returns its crate's `Cancelled` error, which wraps
//! [`Cancelled`] (the CounterFact runner instead returns its outcome marked `stopped`, so
//! that the caller keeps the counts).
//!
//! An event names its stage (a short label for people, documented by each operation, e.g.
//! `"key statistics"`, `"head scan"`), how many units of it are done and how many there
//! are, and what a unit is. What else an operation has to say travels as named
//! [`counts`](Progress::counts) (the tokens of key statistics; known / failed / reused cases
//! of a dataset trace) and as the id of the [`item`](Progress::item) just finished (a
//! CounterFact `case_id`, a known fact's `known_id`). Rates and time estimates are the
//! caller's business: events carry no clock.
//!
//! Callers that only want the result pass [`&mut ignore`](ignore); callers that watch
//! without stopping wrap a closure in [`watch`].
//!
//! # Example
//! ```
//! use std::ops::ControlFlow;
//! use gpt_core::progress::{self, Cancelled, Progress, ProgressFn};
//!
//! /// A long operation: reports before the first unit and after each one.
//! fn count_to(n: u64, progress: &mut ProgressFn<'_>) -> Result<u64, Cancelled> {
//!     let at = |done| Progress::new("counting", done, Some(n), "numbers");
//!     progress::report(progress, at(0))?;
//!     for i in 1..=n {
//!         progress::report(progress, at(i).with_count("squares", i * i))?;
//!     }
//!     Ok(n)
//! }
//!
//! // Not interested in progress.
//! assert_eq!(count_to(3, &mut progress::ignore), Ok(3));
//!
//! // Watching: a line per event (`Progress` displays as one).
//! let mut lines = Vec::new();
//! count_to(2, &mut progress::watch(|p| lines.push(p.to_string()))).unwrap();
//! assert_eq!(lines[2], "counting: 2/2 numbers (squares 4)");
//!
//! // Stopping after the second number: the operation says where it stopped.
//! let stop = count_to(5, &mut |p: &Progress| {
//!     if p.done >= 2 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
//! });
//! assert_eq!(stop.unwrap_err().at.done, 2);
//! ```

use std::borrow::Cow;
use std::fmt;
use std::ops::ControlFlow;

/// Where a long operation stands: a stage, units done of a total, and what else the
/// operation counts. Sent to a [`ProgressFn`] before the first unit and after each unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// What is being done, a short label for people that is also stable enough to match on
    /// (each operation documents its stages, e.g. `"key statistics"`, `"cases"`).
    pub stage: Cow<'static, str>,
    /// Units of the stage finished (in a resumed run, those of earlier runs included when
    /// the operation says so).
    pub done: u64,
    /// Units in the stage, when known in advance.
    pub total: Option<u64>,
    /// What a unit is, in the plural (`"documents"`, `"cases"`, `"rows"`, `"prompts"`).
    pub unit: &'static str,
    /// The id of the item just finished, where items have ids (a CounterFact `case_id`, a
    /// known fact's `known_id`).
    pub item: Option<u64>,
    /// Further running counts of the operation, by name, in a fixed order per operation
    /// (key statistics: `tokens`; a dataset trace: `known`, `not known`, `failed`,
    /// `reused`, `redone`).
    pub counts: Vec<(&'static str, u64)>,
}

impl Progress {
    /// `done` of `total` `unit` in `stage`, without an item or counts.
    pub fn new(
        stage: impl Into<Cow<'static, str>>,
        done: u64,
        total: Option<u64>,
        unit: &'static str,
    ) -> Self {
        Self {
            stage: stage.into(),
            done,
            total,
            unit,
            item: None,
            counts: Vec::new(),
        }
    }

    /// The same event naming the item just finished.
    #[must_use]
    pub fn with_item(mut self, id: u64) -> Self {
        self.item = Some(id);
        self
    }

    /// The same event with the count `name` appended.
    #[must_use]
    pub fn with_count(mut self, name: &'static str, value: u64) -> Self {
        self.counts.push((name, value));
        self
    }

    /// The count called `name`, if the operation reports it.
    pub fn count(&self, name: &str) -> Option<u64> {
        self.counts
            .iter()
            .find_map(|&(n, v)| (n == name).then_some(v))
    }

    /// `done / total` in `[0, 1]` (`None` without a total; 1 for an empty stage).
    pub fn fraction(&self) -> Option<f64> {
        self.total.map(|t| {
            if t == 0 {
                1.0
            } else {
                (self.done as f64 / t as f64).min(1.0)
            }
        })
    }

    /// Whether every unit of the stage is done (`false` without a total).
    pub fn is_finished(&self) -> bool {
        self.total.is_some_and(|t| self.done >= t)
    }

    /// The counts and the item as people read them, e.g. `tokens 12034, last 7`; empty
    /// when there are none.
    pub fn details(&self) -> String {
        let mut parts: Vec<String> = self
            .counts
            .iter()
            .map(|(name, value)| format!("{name} {value}"))
            .collect();
        if let Some(id) = self.item {
            parts.push(format!("last {id}"));
        }
        parts.join(", ")
    }
}

/// One line: `stage: done/total unit (details)`, e.g.
/// `key statistics: 64/1000 documents (tokens 30412)`.
impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.stage, self.done)?;
        if let Some(total) = self.total {
            write!(f, "/{total}")?;
        }
        write!(f, " {}", self.unit)?;
        let details = self.details();
        if !details.is_empty() {
            write!(f, " ({details})")?;
        }
        Ok(())
    }
}

/// The callback every long operation takes: sees each [`Progress`] event and returns
/// [`ControlFlow::Continue`] to go on or [`ControlFlow::Break`] to stop the operation.
pub type ProgressFn<'a> = dyn FnMut(&Progress) -> ControlFlow<()> + 'a;

/// A long operation was stopped by its caller (its [`ProgressFn`] returned
/// [`ControlFlow::Break`]); `at` is the event it answered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cancelled by the caller at {at}")]
pub struct Cancelled {
    /// The last event reported: the stage and how far it got.
    pub at: Progress,
}

/// Sends `event` to `progress`: [`Cancelled`] (with the event) if the callback asks to stop.
/// Operations call it with `?`; every method crate's error converts from [`Cancelled`].
///
/// # Errors
/// [`Cancelled`] when `progress` returns [`ControlFlow::Break`].
pub fn report(progress: &mut ProgressFn<'_>, event: Progress) -> Result<(), Cancelled> {
    match progress(&event) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => Err(Cancelled { at: event }),
    }
}

/// The callback for callers who don't care: never stops. Pass `&mut progress::ignore`.
pub fn ignore(_: &Progress) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

/// A callback that shows each event to `f` and never stops, e.g.
/// `&mut progress::watch(|p| bar.set_position(p.done))`.
pub fn watch(mut f: impl FnMut(&Progress)) -> impl FnMut(&Progress) -> ControlFlow<()> {
    move |p: &Progress| {
        f(p);
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn display_counts_fraction_and_cancellation() {
        let p = Progress::new("cases", 3, Some(4), "cases")
            .with_count("failed", 1)
            .with_item(17);
        assert_eq!(p.to_string(), "cases: 3/4 cases (failed 1, last 17)");
        assert_eq!(p.count("failed"), Some(1));
        assert_eq!(p.count("known"), None);
        assert_eq!(p.fraction(), Some(0.75));
        assert!(!p.is_finished());
        let open = Progress::new("sampling", 5, None, "documents");
        assert_eq!(open.to_string(), "sampling: 5 documents");
        assert_eq!(open.fraction(), None);
        assert_eq!(Progress::new("x", 0, Some(0), "rows").fraction(), Some(1.0));

        assert_eq!(report(&mut ignore, p.clone()), Ok(()));
        let mut seen = 0;
        assert_eq!(report(&mut watch(|_| seen += 1), p.clone()), Ok(()));
        assert_eq!(seen, 1);
        let err = report(&mut |_: &Progress| ControlFlow::Break(()), p.clone()).unwrap_err();
        assert_eq!(err.at, p);
        assert_eq!(
            err.to_string(),
            "cancelled by the caller at cases: 3/4 cases (failed 1, last 17)"
        );
    }
}
