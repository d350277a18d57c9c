//! # rome
//!
//! Editing facts in the weights of a GPT-style model: ROME's rank-one update (Meng et al.
//! 2022), its r-ROME correction and MEMIT's batched update (Meng et al. 2023).
//!
//! - [`update`]: the update math as pure tensor functions ([`rank_one_update`],
//!   [`memit_update`], [`solve_spd`], [`SecondMoment`]) — no model needed, property-tested.
//!
//! Editing methods return [`gpt_core::WeightDelta`]s and never touch the model; callers
//! apply them with [`gpt_core::EditableModel::apply`] and undo them bit-exactly.

#![warn(missing_docs)]

mod error;
pub mod update;

pub use error::{Error, Result};
pub use update::{memit_update, rank_one_update, solve_spd, RankOneUpdate, SecondMoment};
