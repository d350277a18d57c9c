//! Resumed lanes: one recorded pass, then many edited runs that each resume it from a block.
//!
//! An edit at block `j` and positions `≥ t` of a prompt changes nothing below block `j` and
//! nothing at positions `< t` (attention is causal). So a run with such an edit (a
//! "lane") need not start from the tokens: it starts from a [`BaseRun`]'s residual entering
//! block `j` at positions `t..` (`s = T − t` of them), attends to the base run's cached keys
//! and values of positions `< t`, and only the last position is unembedded.
//!
//! [`run_lanes`] runs many lanes of one base run together, block by block: a lane joins the
//! batch at its first block, so block `j` runs one batch of every lane started by then
//! (`lanes × b` rows of `[s, d_model]`). The last block computes only the last position. The
//! callers decide what a lane is:
//!
//! - causal tracing (`causal-trace`): one lane per (token `t`, layer), `b` = the corrupted
//!   samples; restoring a hidden state is the lane's initial residual, restoring an MLP or
//!   attention output over a window of layers (or severing one) is a [`LaneWrite`] per
//!   block;
//! - the head scan (`function-vectors`): one lane per head, `b = 1`, `s = 1` (the last
//!   position), a [`LaneWrite`] setting one head of `hook_z` at its block; the function
//!   vector's layer sweep: the vector added to the lane's initial residual.
//!
//! What is specific stays with them: which sites are written, with what, and the metric read
//! from the logits.

mod base;
#[cfg(test)]
mod tests;

pub use base::BaseRun;

use tch::{Kind, Tensor};

use crate::error::{Error, Result};
use crate::hook::{BlockSite, HookPoint};
use crate::intervention::{SiteWrite, Sites, Values, WriteOp};
use crate::model::{BlocksInput, KvCache, ResumableModel};

/// One write of a lane: `act[row, position(, head)] (=|+=) values` at a block hook point,
/// in every row of the lane.
#[derive(Debug)]
pub struct LaneWrite {
    /// A block hook point at or above the lane's first block.
    pub point: HookPoint,
    /// Position within the lane's positions (`0..s`; `0` is the first resumed token).
    pub position: usize,
    /// One head of `hook_z`, or `None` for the whole entry.
    pub head: Option<usize>,
    /// Set or add.
    pub op: WriteOp,
    /// The entry `E` (e.g. `[d_model]`, or `[d_head]` with a head), the same in every row of
    /// the lane, or `[b, E]`, one per row.
    pub values: Tensor,
}

impl LaneWrite {
    /// `act[.., position] = values`.
    pub fn set(point: HookPoint, position: usize, values: Tensor) -> Self {
        Self {
            point,
            position,
            head: None,
            op: WriteOp::Set,
            values,
        }
    }

    /// `act[.., position] += values`.
    pub fn add(point: HookPoint, position: usize, values: Tensor) -> Self {
        Self {
            op: WriteOp::Add,
            ..Self::set(point, position, values)
        }
    }

    /// Narrows the write to one head (for `hook_z`; `values` then `[d_head]` or `[b,
    /// d_head]`).
    #[must_use]
    pub fn head(mut self, head: usize) -> Self {
        self.head = Some(head);
        self
    }
}

/// One edited run resumed from a base run.
#[derive(Debug)]
pub struct Lane {
    /// The first block it runs (`n_layers`: none, only the unembedding).
    pub start: usize,
    /// The residual entering block `start` at the resumed positions, `[b, s, d_model]`
    /// (usually [`BaseRun::entering`] narrowed to them, possibly edited).
    pub init: Tensor,
    /// Writes at blocks `start..` (a lane should not set one site twice).
    pub writes: Vec<LaneWrite>,
}

/// The logits of [`run_lanes`] and what it ran.
#[derive(Debug)]
pub struct LaneLogits {
    /// `[lanes · b, vocab]`: the last position's logits, lane `i` in rows `i·b..(i+1)·b`.
    pub logits: Tensor,
    /// `rows_per_block[j]`: rows that ran block `j` (over all chunks; for cost accounting:
    /// each ran `s` positions, the last block only the last one).
    pub rows_per_block: Vec<usize>,
}

/// Runs `lanes` from a base run and returns their logits at the last position.
///
/// `past`: the base run's keys and values of the positions before the lanes' (batch `b`,
/// [`BaseRun::past`]); the lanes' `s` positions follow them. Every lane has the same `b` and
/// `s`. At most `max_rows` rows (`max_rows / b` lanes, at least one) run in one batch. Writes
/// at sites after `hook_resid_pre` of the last block act only at the last position (the
/// only one computed there; writes at other positions could not reach it).
///
/// # Errors
/// No lanes; lanes of different shapes; a lane starting above the model; a write outside
/// the lane's blocks or positions; a past of another batch size; model errors.
pub fn run_lanes(
    model: &dyn ResumableModel,
    past: Option<&KvCache>,
    lanes: &[Lane],
    max_rows: usize,
) -> Result<LaneLogits> {
    let _guard = tch::no_grad_guard();
    let shape = check(model, past, lanes)?;
    let per_chunk = (max_rows / shape.b as usize).max(1);
    let mut rows_per_block = vec![0; model.config().n_layers];
    let mut parts = Vec::new();
    for chunk in lanes.chunks(per_chunk) {
        parts.push(run_chunk(model, past, chunk, shape, &mut rows_per_block)?);
    }
    Ok(LaneLogits {
        logits: Tensor::f_cat(&parts, 0)?,
        rows_per_block,
    })
}

/// Rows per lane `b`, positions `s`.
#[derive(Clone, Copy)]
struct Shape {
    b: i64,
    s: i64,
}

fn check(model: &dyn ResumableModel, past: Option<&KvCache>, lanes: &[Lane]) -> Result<Shape> {
    let n_layers = model.config().n_layers;
    let first = lanes
        .first()
        .ok_or_else(|| Error::InvalidInput("no lanes to run".into()))?;
    let size = first.init.size();
    let &[b, s, _] = size.as_slice() else {
        return Err(Error::InvalidInput(format!(
            "a lane's initial residual must be [rows, pos, d_model], got {size:?}"
        )));
    };
    for (i, lane) in lanes.iter().enumerate() {
        if lane.start > n_layers {
            return Err(Error::LayerOutOfRange {
                layer: lane.start,
                n_layers,
            });
        }
        if lane.init.size() != size {
            return Err(Error::InvalidInput(format!(
                "lane {i} starts from {:?}, lane 0 from {size:?}",
                lane.init.size()
            )));
        }
        for w in &lane.writes {
            let ok = w
                .point
                .layer()
                .is_some_and(|l| (lane.start..n_layers).contains(&l.0));
            if !ok || w.position as i64 >= s {
                return Err(Error::InvalidInput(format!(
                    "lane {i} (blocks {}.., {s} positions) writes {} at position {}",
                    lane.start, w.point, w.position
                )));
            }
        }
    }
    if let Some(past) = past {
        let batch = (0..past.n_layers())
            .find_map(|l| past.layer(l))
            .and_then(|(k, _)| k.size().first().copied());
        if batch.is_some_and(|pb| pb != b) {
            return Err(Error::InvalidInput(format!(
                "lanes of {b} rows over a past of batch {batch:?}"
            )));
        }
    }
    Ok(Shape { b, s })
}

/// The batch of one chunk: the lanes admitted so far, in batch order.
struct Batch<'l> {
    lanes: &'l [Lane],
    shape: Shape,
    /// Lane index of each group of `b` rows.
    order: Vec<usize>,
    state: Option<Tensor>,
}

impl Batch<'_> {
    /// Appends the lanes whose first block is `j` (keeping only the last position when they
    /// join after the final block, which kept only that one).
    fn admit(&mut self, j: usize, after_last: bool) -> Result<()> {
        let mut parts: Vec<Tensor> = self.state.take().into_iter().collect();
        for (i, lane) in self.lanes.iter().enumerate().filter(|(_, l)| l.start == j) {
            parts.push(if after_last {
                lane.init.f_narrow(1, self.shape.s - 1, 1)?
            } else {
                lane.init.shallow_clone()
            });
            self.order.push(i);
        }
        self.state = match parts.len() {
            0 => None,
            1 => parts.pop(),
            _ => Some(Tensor::f_cat(&parts, 0)?),
        };
        Ok(())
    }

    /// The writes of every admitted lane at block `j`, one [`SiteWrite`] per (point,
    /// position, head, op) over all the rows it applies to.
    fn writes(&self, j: usize, last_block: bool) -> Vec<SiteWrite<'static>> {
        let b = self.shape.b as usize;
        let mut groups: Vec<WriteGroup> = Vec::new();
        for (g, &i) in self.order.iter().enumerate() {
            for w in &self.lanes[i].writes {
                if w.point.layer().map(|l| l.0) != Some(j) {
                    continue;
                }
                // The last block computes one position after hook_resid_pre.
                let position = match w.point {
                    HookPoint::Block(_, BlockSite::ResidPre) => w.position as i64,
                    _ if last_block && w.position as i64 != self.shape.s - 1 => continue,
                    _ if last_block => 0,
                    _ => w.position as i64,
                };
                let key = (w.point, position, w.head, w.op);
                let rows = g * b..(g + 1) * b;
                match groups.iter_mut().find(|x| x.key == key) {
                    Some(group) => {
                        group.rows.extend(rows);
                        group.values.push(w.values.shallow_clone());
                    }
                    None => groups.push(WriteGroup {
                        key,
                        rows: rows.collect(),
                        values: vec![w.values.shallow_clone()],
                    }),
                }
            }
        }
        groups.into_iter().map(|g| g.into_write(b)).collect()
    }

    /// Keys/values of the past for block `j`, repeated for every admitted lane.
    fn past(&self, past: Option<&KvCache>, j: usize, n_layers: usize) -> Result<Option<KvCache>> {
        let Some(past) = past else { return Ok(None) };
        let (k, v) = past
            .layer(j)
            .ok_or_else(|| Error::InvalidInput(format!("no cached keys/values for layer {j}")))?;
        let groups = self.order.len() as i64;
        // Row g·b + r is the past's row r (a view when b = 1).
        let rep = |x: &Tensor| -> Result<Tensor> {
            let mut size = x.size();
            let mut expanded = vec![groups];
            expanded.extend(&size);
            size[0] *= groups;
            Ok(x.f_unsqueeze(0)?
                .f_expand(&expanded, false)?
                .f_reshape(&size)?)
        };
        let mut layers: Vec<Option<(Tensor, Tensor)>> = (0..n_layers).map(|_| None).collect();
        layers[j] = Some((rep(k)?, rep(v)?));
        Ok(Some(KvCache::from_layers(past.len(), layers)?))
    }
}

/// The writes of several lanes that share a point, position, head and operation.
struct WriteGroup {
    key: (HookPoint, i64, Option<usize>, WriteOp),
    rows: Vec<usize>,
    values: Vec<Tensor>,
}

impl WriteGroup {
    fn into_write(mut self, b: usize) -> SiteWrite<'static> {
        let (point, position, head, op) = self.key;
        let mut sites = Sites::position(position).rows(self.rows);
        if let Some(h) = head {
            sites = sites.head(h);
        }
        let values = if self.values.len() == 1 {
            Values::Tensor(self.values.remove(0))
        } else {
            // Each lane's values as [b, E] (E known from the activation), then stacked.
            let parts = self.values;
            Values::Fn(Box::new(move |act: &Tensor| {
                let skip = if head.is_some() { 3 } else { 2 };
                let entry: Vec<i64> = act.size().into_iter().skip(skip).collect();
                let mut one = vec![-1];
                one.extend(&entry);
                let mut rows = vec![b as i64];
                rows.extend(&entry);
                let fitted = parts
                    .iter()
                    .map(|v| {
                        let v = v.f_reshape(&one)?;
                        Ok(if v.size()[0] == 1 {
                            v.f_expand(&rows, false)?
                        } else {
                            v
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Tensor::f_cat(&fitted, 0)?)
            }))
        };
        SiteWrite::new(point, sites, op, values)
    }
}

fn run_chunk(
    model: &dyn ResumableModel,
    past: Option<&KvCache>,
    lanes: &[Lane],
    shape: Shape,
    rows_per_block: &mut [usize],
) -> Result<Tensor> {
    let n_layers = model.config().n_layers;
    let device = model.device();
    let first = past.map_or(0, KvCache::len) as i64;
    let positions =
        Tensor::f_arange_start(first, first + shape.s, (Kind::Int64, device))?.f_unsqueeze(0)?;
    let mut batch = Batch {
        lanes,
        shape,
        order: Vec::with_capacity(lanes.len()),
        state: None,
    };
    for (j, ran) in rows_per_block.iter_mut().enumerate().take(n_layers) {
        batch.admit(j, false)?;
        let Some(x) = batch.state.take() else {
            continue;
        };
        let rows = batch.order.len() as i64 * shape.b;
        let last_block = j + 1 == n_layers;
        let mut writes = batch.writes(j, last_block);
        let past = batch.past(past, j, n_layers)?;
        let input = BlocksInput {
            layers: j..j + 1,
            resid: x,
            positions: positions.f_expand([rows, shape.s], false)?,
            past: past.as_ref(),
            attention_mask: None,
            last_position_only: last_block,
        };
        batch.state = Some(model.forward_blocks(input, &mut writes)?.resid()?);
        *ran += rows as usize;
    }
    batch.admit(n_layers, true)?;
    let state = batch
        .state
        .take()
        .ok_or_else(|| Error::InvalidInput("no lanes to run".into()))?;
    let logits = model.unembed(&state.f_select(1, -1)?)?;
    // Back to lane order (groups of b rows); admission keeps lanes sorted by start, so this
    // is usually the identity.
    if batch.order.windows(2).all(|w| w[0] < w[1]) {
        return Ok(logits);
    }
    let b = shape.b;
    let mut index = vec![0i64; batch.order.len() * b as usize];
    for (g, &i) in batch.order.iter().enumerate() {
        for r in 0..b {
            index[i * b as usize + r as usize] = g as i64 * b + r;
        }
    }
    let index = Tensor::f_from_slice(&index)?.f_to_device(device)?;
    Ok(logits.f_index_select(0, &index)?)
}
