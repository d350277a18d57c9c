//! Last-position resumption: the fast schedule shared by the head scan and the function
//! vector's layer sweep.
//!
//! An edit at the last position of a prompt (one head's `hook_z`, or a vector added to the
//! residual) changes nothing at earlier positions and nothing below its block. So one base
//! pass records, at the last position, the residual entering every block, plus the keys and
//! values of the earlier positions; each edited run ("lane") then starts at its block from
//! the recorded residual and runs only the last position through the blocks above,
//! attending to the cached keys/values. All lanes of a prompt run together, block by block:
//! a lane joins the batch at its first block (as the causal trace's fast schedule does),
//! and only the final residuals are unembedded.

use gpt_core::intervention::{HookAction, Intervention, SiteWrite, Sites};
use gpt_core::tch::{Kind, Tensor};
use gpt_core::{
    BlocksInput, ForwardOptions, HookPoint, KvCache, LogitsAt, ResumableModel, TokenBatch,
};

use crate::error::{Error, Result};

/// A base pass of one prompt, recorded for resumption.
#[derive(Debug)]
pub struct BaseRun {
    /// Prompt length `T`.
    pub len: usize,
    /// Logits at the last position, `[vocab]` (model dtype).
    pub logits: Tensor,
    /// `entering[j]`: the last position's residual entering block `j`, `[d_model]`, for
    /// `j = 0..=n_layers` (`entering[n_layers]` is the last block's output).
    entering: Vec<Tensor>,
    /// Keys/values of positions `0..T−1` (batch 1), `None` when `T = 1`.
    past: Option<KvCache>,
    /// `z[l, h]` at the last position, `[n_layers, n_heads, d_head]`, when recorded.
    pub z_last: Option<Tensor>,
}

/// Records the last position's residual entering each block and, optionally, `hook_z`.
struct Recorder {
    n_layers: usize,
    record_z: bool,
    entering: Vec<Option<Tensor>>,
    z: Vec<Option<Tensor>>,
}

impl Intervention for Recorder {
    fn wants(&self, point: HookPoint) -> bool {
        match point {
            HookPoint::Block(l, _) => {
                let l = l.0;
                point == HookPoint::resid_pre(l)
                    || (self.record_z && point == HookPoint::z(l))
                    || (l + 1 == self.n_layers && point == HookPoint::resid_post(l))
            }
            _ => false,
        }
    }

    fn visit(&mut self, point: HookPoint, act: &Tensor) -> Result<HookAction, gpt_core::Error> {
        let last = act.f_select(1, -1)?.f_select(0, 0)?.f_detach()?;
        if let HookPoint::Block(l, _) = point {
            let l = l.0;
            if point == HookPoint::resid_pre(l) {
                self.entering[l] = Some(last);
            } else if point == HookPoint::resid_post(l) {
                self.entering[l + 1] = Some(last);
            } else {
                self.z[l] = Some(last);
            }
        }
        Ok(HookAction::Continue)
    }
}

impl BaseRun {
    /// Runs `ids` (batch 1) once, recording what resumption needs (and `hook_z` at the last
    /// position when `record_z`).
    ///
    /// # Errors
    /// An empty prompt, a prompt longer than the context, model errors.
    pub fn new(model: &dyn ResumableModel, ids: &[i64], record_z: bool) -> Result<Self> {
        let _guard = gpt_core::tch::no_grad_guard();
        let n_layers = model.config().n_layers;
        let batch = TokenBatch::single(ids, model.device())?;
        let mut cache = KvCache::new();
        let mut rec = Recorder {
            n_layers,
            record_z,
            entering: (0..=n_layers).map(|_| None).collect(),
            z: (0..n_layers).map(|_| None).collect(),
        };
        let logits = model
            .forward_with(
                &batch,
                ForwardOptions {
                    kv_cache: Some(&mut cache),
                    logits: LogitsAt::Last,
                },
                &mut rec,
            )?
            .logits()?
            .f_select(0, 0)?;
        let missing = || Error::InvalidInput("the base pass did not reach every block".into());
        let entering = rec
            .entering
            .into_iter()
            .map(|t| t.ok_or_else(missing))
            .collect::<Result<Vec<_>>>()?;
        let z_last = if record_z {
            let z = rec
                .z
                .into_iter()
                .map(|t| t.ok_or_else(missing))
                .collect::<Result<Vec<_>>>()?;
            Some(Tensor::f_stack(&z, 0)?)
        } else {
            None
        };
        let len = ids.len();
        let past = if len > 1 {
            Some(cache.prefix(len - 1)?)
        } else {
            None
        };
        Ok(Self {
            len,
            logits,
            entering,
            past,
            z_last,
        })
    }

    /// The last position's residual entering block `j` (`j = n_layers`: the final
    /// residual), `[d_model]`.
    ///
    /// # Errors
    /// `j > n_layers`.
    pub fn entering(&self, j: usize) -> Result<&Tensor> {
        self.entering.get(j).ok_or(Error::LayerOutOfRange {
            what: "resumption",
            layer: j,
            n_layers: self.entering.len().saturating_sub(1),
        })
    }
}

/// One edited run of the last position.
#[derive(Debug)]
pub struct Lane {
    /// The first block it runs (`n_layers`: none, only the unembedding).
    pub start: usize,
    /// The residual entering block `start`, `[d_model]`.
    pub init: Tensor,
    /// `Some((layer, head, value))`: set `hook_z[layer][last, head] = value` (`[d_head]`);
    /// `layer` must be `start`.
    pub head: Option<(usize, usize, Tensor)>,
}

/// Runs lanes on one base pass and returns their logits at the last position,
/// `[lanes, vocab]`, in lane order. At most `max_rows` lanes run in one batch.
///
/// # Errors
/// A lane starting above the model or with a head edit outside its start block; model
/// errors.
pub fn run_lanes(
    model: &dyn ResumableModel,
    base: &BaseRun,
    lanes: &[Lane],
    max_rows: usize,
) -> Result<Tensor> {
    let _guard = gpt_core::tch::no_grad_guard();
    let mut parts = Vec::new();
    for chunk in lanes.chunks(max_rows.max(1)) {
        parts.push(run_chunk(model, base, chunk)?);
    }
    Ok(Tensor::f_cat(&parts, 0)?)
}

fn run_chunk(model: &dyn ResumableModel, base: &BaseRun, lanes: &[Lane]) -> Result<Tensor> {
    let n_layers = model.config().n_layers;
    let device = model.device();
    for lane in lanes {
        if lane.start > n_layers {
            return Err(Error::LayerOutOfRange {
                what: "lane start",
                layer: lane.start,
                n_layers,
            });
        }
        if let Some((l, _, _)) = &lane.head {
            if *l != lane.start {
                return Err(Error::InvalidInput(format!(
                    "a head edit at layer {l} in a lane starting at block {}",
                    lane.start
                )));
            }
        }
    }
    let last = (base.len - 1) as i64;
    let mut order: Vec<usize> = Vec::with_capacity(lanes.len());
    let mut state: Option<Tensor> = None;
    let admit =
        |j: usize, state: Option<Tensor>, order: &mut Vec<usize>| -> Result<Option<Tensor>> {
            let mut parts: Vec<Tensor> = state.into_iter().collect();
            let mut new = Vec::new();
            for (i, lane) in lanes.iter().enumerate().filter(|(_, l)| l.start == j) {
                new.push(lane.init.f_reshape([1, 1, -1])?);
                order.push(i);
            }
            if !new.is_empty() {
                parts.push(Tensor::f_cat(&new, 0)?);
            }
            Ok(match parts.len() {
                0 => None,
                1 => parts.pop(),
                _ => Some(Tensor::f_cat(&parts, 0)?),
            })
        };
    for j in 0..n_layers {
        state = admit(j, state.take(), &mut order)?;
        let Some(x) = state.take() else { continue };
        let rows = order.len() as i64;
        let mut edits: Vec<SiteWrite<'_>> = Vec::new();
        for (r, &i) in order.iter().enumerate() {
            if let (true, Some((_, h, value))) = (lanes[i].start == j, &lanes[i].head) {
                edits.push(SiteWrite::set(
                    HookPoint::z(j),
                    Sites::position(0).rows([r]).head(*h),
                    value.shallow_clone(),
                ));
            }
        }
        let past = match &base.past {
            Some(past) => {
                let (k, v) = past.layer(j).ok_or_else(|| {
                    Error::InvalidInput(format!("no cached keys/values for layer {j}"))
                })?;
                let mut layers: Vec<Option<(Tensor, Tensor)>> =
                    (0..n_layers).map(|_| None).collect();
                layers[j] = Some((
                    k.f_expand([rows, -1, -1, -1], false)?,
                    v.f_expand([rows, -1, -1, -1], false)?,
                ));
                Some(KvCache::from_layers(past.len(), layers)?)
            }
            None => None,
        };
        let input = BlocksInput {
            layers: j..j + 1,
            resid: x,
            positions: Tensor::f_full([rows, 1], last, (Kind::Int64, device))?,
            past: past.as_ref(),
            attention_mask: None,
            last_position_only: false,
        };
        state = Some(model.forward_blocks(input, &mut edits)?.resid()?);
    }
    let state = admit(n_layers, state, &mut order)?
        .ok_or_else(|| Error::InvalidInput("no lanes".into()))?;
    let logits = model.unembed(&state.f_select(1, 0)?)?;
    // Back to lane order: row r holds lane order[r].
    let mut inverse = vec![0i64; order.len()];
    for (r, &i) in order.iter().enumerate() {
        inverse[i] = r as i64;
    }
    let inverse = Tensor::f_from_slice(&inverse)?.f_to_device(device)?;
    Ok(logits.f_index_select(0, &inverse)?)
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
