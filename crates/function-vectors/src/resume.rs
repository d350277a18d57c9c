//! Last-position resumption: the fast schedule shared by the head scan and the function
//! vector's layer sweep, on gpt-core's resumed lanes ([`gpt_core::lanes`]).
//!
//! An edit at the last position of a prompt (one head's `hook_z`, or a vector added to the
//! residual) changes nothing at earlier positions and nothing below its block. So one base
//! pass is recorded, and each edited run is a lane of it over the last position only
//! (`s = 1`, one row), starting at its block from the recorded residual and attending to the
//! cached keys/values of the earlier positions; all lanes of a prompt run together, block by
//! block. What is specific to function vectors is here: the prompt's base pass (with
//! `hook_z` at the last position), a lane per head or per layer, and the probabilities read.

use gpt_core::tch::{Kind, Tensor};
use gpt_core::{BlockSite, HookPoint, KvCache, Lane, LaneWrite, ResumableModel, TokenBatch};

use crate::error::{Error, Result};

/// A base pass of one prompt, recorded for resumption.
#[derive(Debug)]
pub struct BaseRun {
    /// Prompt length `T`.
    pub len: usize,
    /// Logits at the last position, `[vocab]` (model dtype).
    pub logits: Tensor,
    /// `z[l, h]` at the last position, `[n_layers, n_heads, d_head]`, when recorded.
    pub z_last: Option<Tensor>,
    run: gpt_core::BaseRun,
    /// Keys/values of positions `0..T−1` (batch 1), `None` when `T = 1`.
    past: Option<KvCache>,
}

impl BaseRun {
    /// Runs `ids` (batch 1) once, recording what resumption needs (and `hook_z` at the last
    /// position when `record_z`).
    ///
    /// # Errors
    /// An empty prompt, a prompt longer than the context, model errors.
    pub fn new(model: &dyn ResumableModel, ids: &[i64], record_z: bool) -> Result<Self> {
        let n_layers = model.config().n_layers;
        let batch = TokenBatch::single(ids, model.device())?;
        let is_z = |p: HookPoint| record_z && matches!(p, HookPoint::Block(_, BlockSite::Z));
        let run = gpt_core::BaseRun::new(model, &batch, &mut gpt_core::NoHooks, &is_z)?;
        let logits = run.logits().f_select(0, 0)?;
        let z_last = if record_z {
            let z = (0..n_layers)
                .map(|l| last(run.acts().try_get(HookPoint::z(l))?))
                .collect::<Result<Vec<_>>>()?;
            Some(Tensor::f_stack(&z, 0)?)
        } else {
            None
        };
        let len = ids.len();
        let past = run.past(len.saturating_sub(1))?;
        Ok(Self {
            len,
            logits,
            z_last,
            run,
            past,
        })
    }

    /// The last position's residual entering block `j` (`j = n_layers`: the final
    /// residual), `[d_model]`.
    ///
    /// # Errors
    /// `j > n_layers`.
    pub fn entering(&self, j: usize) -> Result<Tensor> {
        let entering = self.run.entering(j).map_err(|_| Error::LayerOutOfRange {
            what: "resumption",
            layer: j,
            n_layers: self.run.n_layers(),
        })?;
        last(entering)
    }

    /// A lane of the last position from block `start` with residual `init` (`[d_model]`)
    /// entering it, and `writes` at position 0 (the last position) of blocks `start..`.
    ///
    /// # Errors
    /// libtorch errors.
    pub fn lane(&self, start: usize, init: &Tensor, writes: Vec<LaneWrite>) -> Result<Lane> {
        Ok(Lane {
            start,
            init: init.f_reshape([1, 1, -1])?,
            writes,
        })
    }

    /// Runs lanes on this pass and returns their logits at the last position, `[lanes,
    /// vocab]`, in lane order. At most `max_rows` lanes run in one batch.
    ///
    /// # Errors
    /// No lanes, a lane starting above the model or writing below its start block; model
    /// errors.
    pub fn run_lanes(
        &self,
        model: &dyn ResumableModel,
        lanes: &[Lane],
        max_rows: usize,
    ) -> Result<Tensor> {
        Ok(gpt_core::run_lanes(model, self.past.as_ref(), lanes, max_rows)?.logits)
    }
}

/// The last position of batch row 0: `[1, pos, ...]` → `[...]`.
fn last(act: &Tensor) -> Result<Tensor> {
    Ok(act.f_select(1, -1)?.f_select(0, 0)?)
}

/// Probabilities `softmax(logits)[.., answer]` in f64, `[..]`.
///
/// # Errors
/// libtorch errors.
pub fn answer_probs(logits: &Tensor, answer: i64) -> Result<Vec<f64>> {
    let p = logits
        .f_to_kind(Kind::Double)?
        .f_softmax(-1, Kind::Double)?
        .f_select(-1, answer)?
        .f_flatten(0, -1)?;
    Ok(Vec::<f64>::try_from(&p)?)
}

/// Whether each row's top-1 prediction is `answer`, for logits `[.., vocab]`.
///
/// # Errors
/// libtorch errors.
pub fn top1_hits(logits: &Tensor, answer: i64) -> Result<Vec<bool>> {
    let top = logits.f_argmax(-1, false)?.f_flatten(0, -1)?;
    Ok(Vec::<i64>::try_from(&top)?
        .into_iter()
        .map(|t| t == answer)
        .collect())
}
