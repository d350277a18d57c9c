//! The one progress renderer of the command line: every long operation's
//! [`Progress`] events drawn the same way on stderr. On a terminal, an indicatif bar; where
//! stderr is not a terminal (Slurm logs, nohup, CI), a plain line at the start and the end
//! of each stage and every [`INTERVAL_ENV`] seconds (default 10) in between, with the stage,
//! done/total, the rate and the time left:
//!
//! ```text
//! progress: layer 4: key statistics: 64/1000 documents (tokens 30412) | 12.1 documents/s | elapsed 5s | eta 1m17s
//! ```
//!
//! Ctrl-C is left to the operating system (the process ends at once), so the callbacks here
//! never stop an operation: the resumable ones keep what they finished on disk (statistics
//! checkpoints, CounterFact records, dataset case files), and running the same command
//! again (`evaluate` with `--resume`) continues from there.

use std::io::IsTerminal;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use gpt_core::Progress;
use indicatif::{ProgressBar, ProgressStyle};

/// Seconds between plain progress lines when stderr is not a terminal (`0`: a line for
/// every event).
pub const INTERVAL_ENV: &str = "FACTSCOPE_PROGRESS_INTERVAL";

/// The interval when [`INTERVAL_ENV`] is unset.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// Where the events go.
enum Target {
    /// An indicatif bar (stderr is a terminal).
    Bar(ProgressBar),
    /// Plain lines on stderr, at least `every` apart within a stage.
    Lines {
        every: Duration,
        last_line: Option<Instant>,
    },
    /// Nowhere (`--json` runs keep stderr quiet, as before).
    Hidden,
}

/// The stage being shown: its label, when its first event came and what it said, and the
/// latest event.
struct Stage {
    label: String,
    started: Instant,
    first_done: u64,
    latest: Progress,
    /// Whether the line of its end was written (a stage may report its end twice).
    ended: bool,
}

/// Draws the [`Progress`] events of one command's long operations (see the module docs).
pub struct ProgressView {
    target: Target,
    /// Put before each stage's label, e.g. a task's name (empty for none).
    title: String,
    stage: Option<Stage>,
}

impl ProgressView {
    /// A view whose stage labels are preceded by `title` (e.g. `"layer 4"`; empty for none):
    /// a bar when stderr is a terminal, else plain lines.
    pub fn new(title: &str) -> Self {
        let target = if std::io::stderr().is_terminal() {
            Target::Bar(ProgressBar::hidden())
        } else {
            Target::Lines {
                every: interval(),
                last_line: None,
            }
        };
        Self {
            target,
            title: title.to_string(),
            stage: None,
        }
    }

    /// [`ProgressView::new`] when `show`, else a view that draws nothing.
    pub fn shown_if(show: bool, title: &str) -> Self {
        if show {
            Self::new(title)
        } else {
            Self {
                target: Target::Hidden,
                title: title.to_string(),
                stage: None,
            }
        }
    }

    /// The callback for a library operation: shows each event and never stops the operation.
    pub fn callback(&mut self) -> impl FnMut(&Progress) -> ControlFlow<()> + '_ {
        |p: &Progress| {
            self.show(p);
            ControlFlow::Continue(())
        }
    }

    /// Shows one event.
    pub fn show(&mut self, p: &Progress) {
        let label = if self.title.is_empty() {
            p.stage.to_string()
        } else {
            format!("{}: {}", self.title, p.stage)
        };
        let now = Instant::now();
        let new_stage = self.stage.as_ref().is_none_or(|s| s.label != label);
        if new_stage {
            self.stage = Some(Stage {
                label: label.clone(),
                started: now,
                first_done: p.done,
                latest: p.clone(),
                ended: false,
            });
        }
        let Some(stage) = self.stage.as_mut() else {
            return;
        };
        stage.latest = p.clone();
        match &mut self.target {
            Target::Hidden => {}
            Target::Bar(bar) => {
                if new_stage {
                    if bar.is_hidden() {
                        *bar = ProgressBar::new(p.total.unwrap_or(0));
                    }
                    bar.set_style(bar_style(p.total.is_some()));
                    bar.set_prefix(label);
                    match p.total {
                        Some(total) => bar.set_length(total),
                        None => bar.unset_length(),
                    }
                    bar.set_position(p.done);
                    // Units done before this stage started (a resumed run) are no rate.
                    bar.reset_eta();
                    bar.reset_elapsed();
                } else {
                    if let Some(total) = p.total {
                        bar.set_length(total);
                    }
                    bar.set_position(p.done);
                }
                bar.set_message(unit_and_details(p));
            }
            Target::Lines { every, last_line } => {
                let finished = p.is_finished();
                let due = last_line.is_none_or(|t| now.duration_since(t) >= *every);
                if new_stage || (finished && !stage.ended) || (!finished && due) {
                    stage.ended |= finished;
                    *last_line = Some(now);
                    eprintln!("{}", line(stage, now));
                }
            }
        }
    }

    /// Ends the display: clears the bar, or writes the last state of a stage whose end was
    /// not written yet (e.g. an operation that finished with items left out).
    pub fn finish(self) {
        match &self.target {
            Target::Bar(bar) => bar.finish_and_clear(),
            Target::Lines { .. } => {
                if let Some(stage) = self.stage.as_ref().filter(|s| !s.ended) {
                    eprintln!("{}", line(stage, Instant::now()));
                }
            }
            Target::Hidden => {}
        }
    }
}

/// The interval of plain lines: [`INTERVAL_ENV`] seconds, else the default.
fn interval() -> Duration {
    let Some(value) = std::env::var_os(INTERVAL_ENV) else {
        return DEFAULT_INTERVAL;
    };
    match value.to_str().and_then(|v| v.trim().parse::<f64>().ok()) {
        Some(secs) if secs.is_finite() && secs >= 0.0 => Duration::from_secs_f64(secs),
        _ => {
            eprintln!(
                "warning: {INTERVAL_ENV}={value:?} is not a number of seconds; using {}",
                DEFAULT_INTERVAL.as_secs()
            );
            DEFAULT_INTERVAL
        }
    }
}

/// The one bar style: with a bar when the total is known, else a counter.
fn bar_style(with_total: bool) -> ProgressStyle {
    let template = if with_total {
        "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})"
    } else {
        "{prefix} {pos} {msg} ({elapsed})"
    };
    match ProgressStyle::with_template(template) {
        Ok(style) => style.progress_chars("=> "),
        Err(_) => ProgressStyle::default_bar(),
    }
}

/// `documents, tokens 30412`: the unit and the event's details.
fn unit_and_details(p: &Progress) -> String {
    let details = p.details();
    if details.is_empty() {
        p.unit.to_string()
    } else {
        format!("{}, {details}", p.unit)
    }
}

/// One plain line: `progress: label: done/total unit (details) | rate | elapsed | eta`.
fn line(stage: &Stage, now: Instant) -> String {
    let p = &stage.latest;
    let mut text = format!("progress: {}: {}", stage.label, p.done);
    if let Some(total) = p.total {
        text.push_str(&format!("/{total}"));
    }
    text.push_str(&format!(" {}", p.unit));
    let details = p.details();
    if !details.is_empty() {
        text.push_str(&format!(" ({details})"));
    }
    let elapsed = now.duration_since(stage.started);
    let progressed = p.done.saturating_sub(stage.first_done);
    let rate = (progressed > 0 && elapsed > Duration::ZERO)
        .then(|| progressed as f64 / elapsed.as_secs_f64());
    match rate {
        Some(rate) => text.push_str(&format!(" | {} {}/s", rate_text(rate), p.unit)),
        None => text.push_str(&format!(" | - {}/s", p.unit)),
    }
    text.push_str(&format!(
        " | elapsed {}",
        duration_text(elapsed.as_secs_f64())
    ));
    if p.is_finished() {
        text.push_str(" | done");
    } else {
        let eta = match (rate, p.total) {
            (Some(rate), Some(total)) => duration_text(total.saturating_sub(p.done) as f64 / rate),
            _ => "?".to_string(),
        };
        text.push_str(&format!(" | eta {eta}"));
    }
    text
}

/// A rate with three significant digits or so.
fn rate_text(rate: f64) -> String {
    if rate >= 100.0 {
        format!("{rate:.0}")
    } else if rate >= 1.0 {
        format!("{rate:.1}")
    } else {
        format!("{rate:.3}")
    }
}

/// `42s`, `3m05s`, `2h07m`.
fn duration_text(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_stage_counts_rate_and_eta() {
        let started = Instant::now();
        let stage = Stage {
            label: "layer 4: key statistics".into(),
            started,
            first_done: 0,
            latest: Progress::new("key statistics", 64, Some(1000), "documents")
                .with_count("tokens", 30412),
            ended: false,
        };
        let text = line(&stage, started + Duration::from_secs(8));
        assert_eq!(
            text,
            "progress: layer 4: key statistics: 64/1000 documents (tokens 30412) | 8.0 documents/s | elapsed 8s | eta 1m57s"
        );
        let done = Stage {
            latest: Progress::new("cases", 3, Some(3), "cases"),
            ..stage
        };
        assert!(line(&done, started).ends_with("| - cases/s | elapsed 0s | done"));
        assert_eq!(duration_text(7322.0), "2h02m");
        assert_eq!(rate_text(0.25), "0.250");
    }
}
