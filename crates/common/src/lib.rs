//! # factscope-common
//!
//! The few pieces that every factscope crate needs and that have nothing to do with models:
//!
//! - [`fsio`]: atomic file writes (a reader sees the old file or the whole new one, never a
//!   part) and checks that an output location is usable *before* long work starts.
//! - [`outdir`]: the one rule for output folders ([`OutputDir`]): new, empty, or holding only
//!   what factscope wrote there; a user's file is never replaced.
//! - [`stats`]: means with 95% confidence intervals ([`Estimate`], [`mean_ci`]).
//!
//! It exists as its own crate because `viz` (no ML dependency) and the model crates
//! (`gpt-core`, `causal-trace`, `rome`, `counterfact`) both need it, and neither should
//! depend on the other.

#![warn(missing_docs)]

pub mod fsio;
pub mod outdir;
pub mod stats;

pub use fsio::{write_atomic, write_json_atomic, WriteError};
pub use outdir::OutputDir;
pub use stats::{mean_ci, Estimate, Z95};
