//! # rome
//!
//! Editing facts in the weights of a GPT-style model: ROME's rank-one update (Meng et al.
//! 2022), its r-ROME correction, MEMIT's batched update (Meng et al. 2023), and AlphaEdit
//! (Fang et al. 2025) and EMMET (Gupta et al. 2024) for mass and sequential editing.
//!
//! - [`update`]: the update math as pure tensor functions ([`rank_one_update`],
//!   [`memit_update`], [`solve_spd`], [`solve_spd_checked`], [`solve_general`],
//!   [`SecondMoment`]) — no model
//!   needed, property-tested.
//! - [`nullspace`]: AlphaEdit's null-space projector of the key statistics
//!   ([`NullSpaceProjector`], `P = ÛÛᵀ` from the eigenvectors of `C` below a threshold), the
//!   keys of earlier edits ([`KeyHistory`]) and the projected solve ([`alphaedit_update`]);
//!   [`emmet`]: EMMET's equality-constrained batched update ([`emmet_update`]). Pure math,
//!   property-tested.
//!
//! - [`rome`], [`memit`], [`alphaedit`], [`emmet`], [`ft`]: the methods (ROME and r-ROME,
//!   MEMIT, AlphaEdit, EMMET, the FT-L baseline), each also behind [`gpt_core::Editor`]
//!   ([`RomeEditor`], [`MemitEditor`], [`AlphaEditEditor`], [`EmmetEditor`], [`FtEditor`]).
//!   MEMIT, AlphaEdit and EMMET share one loop (targets `z`, keys per layer, the residual
//!   spread over the layers) and differ only in the per-layer solve.
//! - [`corpus`]: text for statistics (files, JSONL, folders).
//! - [`stats`]: key statistics `C = E[k kᵀ]`, streaming, resumable, cached with provenance.
//!
//! Editing methods return [`gpt_core::WeightDelta`]s and never touch the model; callers
//! apply them with [`gpt_core::EditableModel::apply`] and undo them bit-exactly.

#![warn(missing_docs)]

mod adam;
pub mod alphaedit;
pub mod corpus;
mod delta;
pub mod delta_file;
pub mod editor;
pub mod emmet;
mod error;
pub mod ft;
pub mod hparams;
mod layered;
pub mod memit;
pub mod nullspace;
pub mod preset;
pub mod request;
#[allow(clippy::module_inception)]
pub mod rome;
mod st_file;
pub mod stats;
pub mod update;

pub use alphaedit::{compute_alphaedit, AlphaEditEdit, AlphaEditHparams};
pub use corpus::{generated_corpus, Corpus, GeneratedCorpus, SAMPLING_STAGE};
pub use delta_file::{load_deltas, save_deltas, SavedEdits};
pub use editor::{AlphaEditEditor, EmmetEditor, FtEditor, MemitEditor, RomeEditor};
pub use emmet::{compute_emmet, emmet_update, EmmetEdit, EmmetHparams};
pub use error::{Error, Result};
pub use ft::{compute_ft, FtEdit, FtHparams};
pub use hparams::{RomeHparams, RomeVariant};
pub use memit::{compute_memit, MemitEdit, MemitHparams};
pub use nullspace::{
    alphaedit_update, KeyHistory, NullSpaceProjector, REFERENCE_NULLSPACE_THRESHOLD,
};
pub use preset::{Preset, PresetModel};
pub use request::RewriteRequest;
pub use rome::{compute_rome, context_templates, RomeEdit, VSchedule};
pub use stats::{model_fingerprint, KeyStats, KeyStatsRun, StatsMeta, StatsOptions, STATS_STAGE};
pub use update::{
    memit_update, rank_one_update, solve_general, solve_spd, solve_spd_checked, RankOneUpdate,
    SecondMoment,
};
