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
//! - [`stats_cache`]: the per-user cache of key statistics ([`StatsCache`]), shared by the
//!   command line and library users.
//! - [`stats`]: key statistics `C = E[k kᵀ]`, streaming, resumable, cached with provenance.
//!
//! Editing methods return [`gpt_core::WeightDelta`]s and never touch the model; callers
//! apply them with [`gpt_core::EditableModel::apply`] and undo them bit-exactly.
//!
//! # Example
//!
//! A ROME edit of a tiny random model, end to end: key statistics, context templates, the
//! edit, a check, and the exact undo.
//!
//! ```
//! use gpt_core::random::{tiny_config, RandomInit};
//! use gpt_core::tch::{Device, Kind};
//! use gpt_core::{Architecture, EditableModel, RewriteRequest, Transformer};
//! use rome::{compute_rome, context_templates, Corpus, KeyStatsRun, RomeHparams, StatsOptions, Schedule};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tok = gpt_core::load_hf_tokenizer("../../fixtures/tiny-gpt2".as_ref())?;
//! let mut config = tiny_config(Architecture::Llama);
//! config.vocab_size = tok.vocab_size();
//! let mut model = Transformer::random(&config, RandomInit { seed: 1, std: 0.5 }, Device::Cpu, Kind::Float)?;
//!
//! // Hyperparameters: SmolLM2's preset at layer 1 of this 2-layer model, few steps.
//! let hp = RomeHparams { layer: 1, v_num_grad_steps: 5, context_template_length_params: vec![(4, 2)], ..RomeHparams::smollm2() };
//! // C = E[k kᵀ] of layer 1's MLP keys over some text.
//! let docs = (0..8).map(|i| format!("The tower number {i} stands in the city of Paris.")).collect();
//! let corpus = Corpus::from_documents("example", docs);
//! let stats = KeyStatsRun::new(&model, &tok, &corpus, &StatsOptions::new(hp.layer)).compute()?;
//! let templates = context_templates(&model, &tok, &hp.context_template_length_params, hp.template_seed)?;
//!
//! let request = RewriteRequest::new("{} is located in the city of", "The Eiffel Tower", "Rome")?;
//! let edit = compute_rome(&model, &tok, &request, &hp, Some(&stats.c()?), &templates,
//!                         Schedule::Fast, &mut gpt_core::progress::ignore)?;
//! let before = model.weight(gpt_core::WeightId::MlpOut(gpt_core::Layer(1)))?.copy();
//! let undo = model.apply(&edit.delta)?; // the model is edited only here
//! let p = gpt_core::top_k(&model, &tok, &request.filled(), 3)?;
//! println!("after the edit: {:?} (loss {:.3} → {:.3})", p.top[0].text, edit.losses[0], edit.losses[edit.losses.len() - 1]);
//! model.undo(&undo)?; // bit for bit
//! assert!(model.weight(gpt_core::WeightId::MlpOut(gpt_core::Layer(1)))?.equal(&before));
//! # Ok(()) }
//! ```

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
pub use layered::{LayeredEdit, TARGET_BATCH};
pub mod memit;
pub mod nullspace;
pub mod preset;
pub mod request;
#[allow(clippy::module_inception)]
pub mod rome;
mod st_file;
pub mod stats;
pub mod stats_cache;
pub mod target_cache;
pub mod update;

pub use alphaedit::{compute_alphaedit, compute_alphaedit_cached, AlphaEditEdit, AlphaEditHparams};
pub use corpus::{generated_corpus, Corpus, GeneratedCorpus, SAMPLING_STAGE};
pub use delta_file::{load_deltas, save_deltas, SavedEdits};
pub use editor::{
    AlphaEditEditor, EmmetEditor, FtEditor, MemitEditor, RomeEditor, StatsEditor, StatsMethod,
};
pub use emmet::{compute_emmet, compute_emmet_cached, emmet_update, EmmetEdit, EmmetHparams};
pub use error::{Error, Result};
pub use ft::{compute_ft, FtEdit, FtHparams, FT_STAGE};
pub use hparams::{RomeHparams, RomeVariant};
pub use memit::{compute_memit, compute_memit_cached, MemitEdit, MemitHparams};
pub use nullspace::{
    alphaedit_update, KeyHistory, NullSpaceProjector, REFERENCE_NULLSPACE_THRESHOLD,
};
pub use preset::{Preset, PresetModel};
pub use request::RewriteRequest;
pub use rome::{compute_rome, context_templates, RomeEdit, Schedule, V_STAGE};
pub use stats::{model_fingerprint, KeyStats, KeyStatsRun, StatsMeta, StatsOptions, STATS_STAGE};
pub use stats_cache::StatsCache;
pub use target_cache::TargetCache;
pub use update::{
    memit_update, rank_one_update, solve_general, solve_spd, solve_spd_checked, RankOneUpdate,
    SecondMoment,
};
