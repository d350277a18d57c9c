//! # rome
//!
//! Editing facts in the weights of a GPT-style model: ROME's rank-one update (Meng et al.
//! 2022), its r-ROME correction and MEMIT's batched update (Meng et al. 2023).
//!
//! - [`update`]: the update math as pure tensor functions ([`rank_one_update`],
//!   [`memit_update`], [`solve_spd`], [`SecondMoment`]) — no model needed, property-tested.
//!
//! - [`rome`], [`memit`], [`ft`]: the methods (ROME and r-ROME, MEMIT, the FT-L baseline),
//!   each also behind [`gpt_core::Editor`] ([`RomeEditor`], [`MemitEditor`], [`FtEditor`]).
//! - [`corpus`]: text for statistics (files, JSONL, folders).
//! - [`stats`]: key statistics `C = E[k kᵀ]`, streaming, resumable, cached with provenance.
//!
//! Editing methods return [`gpt_core::WeightDelta`]s and never touch the model; callers
//! apply them with [`gpt_core::EditableModel::apply`] and undo them bit-exactly.

#![warn(missing_docs)]

mod adam;
pub mod corpus;
mod delta;
pub mod delta_file;
pub mod editor;
mod error;
pub mod ft;
pub mod hparams;
pub mod memit;
pub mod preset;
pub mod request;
#[allow(clippy::module_inception)]
pub mod rome;
mod st_file;
pub mod stats;
pub mod update;

pub use corpus::{generated_corpus, Corpus, GeneratedCorpus, SAMPLING_STAGE};
pub use delta_file::{load_deltas, save_deltas, SavedEdits};
pub use editor::{FtEditor, MemitEditor, RomeEditor};
pub use error::{Error, Result};
pub use ft::{compute_ft, FtEdit, FtHparams};
pub use hparams::{RomeHparams, RomeVariant};
pub use memit::{compute_memit, MemitEdit, MemitHparams};
pub use preset::{Preset, PresetModel};
pub use request::RewriteRequest;
pub use rome::{compute_rome, context_templates, RomeEdit, VSchedule};
pub use stats::{model_fingerprint, KeyStats, KeyStatsRun, StatsMeta, StatsOptions, STATS_STAGE};
pub use update::{memit_update, rank_one_update, solve_spd, RankOneUpdate, SecondMoment};
