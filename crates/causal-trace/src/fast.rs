//! The fast schedule ("Performance design" in `docs/ARCHITECTURE.md`), on gpt-core's resumed
//! lanes ([`gpt_core::lanes`]).
//!
//! Restoring a state at token `t` cannot change positions `< t`, nor anything below the first
//! restored layer. So for each token `t`, every layer's cell is a lane of the corrupted run:
//! it starts from the corrupted residual at its first affected block, runs only positions
//! `t..` (attending to the corrupted run's cached keys/values of positions `< t`), and only
//! the last position is unembedded; all cells of one token run together, block by block.
//! What is specific to tracing is here: which state a cell restores (its initial residual
//! for hidden states, writes at the window's blocks for MLP / attention outputs, writes
//! pinning the severed module) and the metric.

use gpt_core::tch::Tensor;
use gpt_core::{run_lanes, HookPoint, Lane, LaneWrite};

use crate::error::Result;
use crate::flops;
use crate::trace::{GridSpec, TraceKind, Tracer};

/// Scores of every layer for token `t`.
pub(crate) fn token_row(tracer: &Tracer<'_>, spec: &GridSpec, t: usize) -> Result<Vec<f64>> {
    let model = tracer.resumable()?;
    let c = model.config();
    let (n_layers, n) = (c.n_layers, tracer.setup.samples);
    let len = tracer.prompt.len();
    let s = len - t;
    // Corruption only touches the subject, so positions before it are identical in the clean
    // and corrupted runs at every layer: restoring them changes nothing.
    if t < tracer.prompt.subject_range.start {
        return Ok(vec![tracer.corrupted_score; n_layers]);
    }
    let lanes = (0..n_layers)
        .map(|layer| cell(tracer, spec, t, layer))
        .collect::<Result<Vec<_>>>()?;
    let past = tracer.corrupted.past(t)?;
    let out = run_lanes(model, past.as_ref(), &lanes, usize::MAX)?;
    for (j, &rows) in out.rows_per_block.iter().enumerate() {
        if rows > 0 {
            // The last block computes only the last position (its keys and values still
            // come from every position).
            tracer.add_flops(if j + 1 == n_layers {
                flops::last_block(c, rows, s, t)
            } else {
                flops::block(c, rows, s, t)
            });
        }
    }
    tracer.add_flops(flops::unembed(c, lanes.len() * n));
    // Lanes are in layer order.
    tracer.group_scores(&out.logits, lanes.len())
}

/// The lane of the cell (`t`, `layer`): `N` rows (the corrupted samples) over positions
/// `t..`.
fn cell(tracer: &Tracer<'_>, spec: &GridSpec, t: usize, layer: usize) -> Result<Lane> {
    let n_layers = tracer.model.config().n_layers;
    let (ti, s) = (t as i64, (tracer.prompt.len() - t) as i64);
    let n = tracer.setup.samples as i64;
    let corrupted = &tracer.corrupted;
    let mut writes = Vec::new();
    let (start, init) = match spec.kind {
        // The block output restored at `t`: the corrupted state entering the next block,
        // with the clean value at `t`.
        TraceKind::Hidden => {
            let state = corrupted.entering(layer + 1)?.f_narrow(1, ti, s)?;
            let state = gpt_core::intervention::copy_of(&state)?;
            let point = HookPoint::resid_post(layer);
            let clean = tracer.clean.try_get(point)?.f_select(1, ti)?; // [1, d]
            state
                .f_select(1, 0)?
                .f_copy_(&clean.f_expand([n, -1], false)?)?;
            (layer + 1, state)
        }
        // MLP / attention outputs restored at `t` over the window's blocks.
        TraceKind::Mlp | TraceKind::Attn => {
            let window = spec.layers_for(layer, n_layers);
            for j in window.clone() {
                let point = HookPoint::block(j, spec.kind.site());
                let clean = tracer.clean.try_get(point)?.f_select(1, ti)?; // [1, d]
                writes.push(LaneWrite::set(point, 0, clean));
            }
            let state = corrupted.entering(window.start)?.f_narrow(1, ti, s)?;
            (window.start, state)
        }
    };
    if let Some(sever) = spec.sever {
        // The restored state must not act through this module at `t`: pin it to the
        // corrupted run's value in every block the cell runs (row i: sample i).
        for j in start..n_layers {
            let point = HookPoint::block(j, sever.site());
            let pinned: Tensor = corrupted.acts().try_get(point)?.f_select(1, ti)?; // [N, d]
            writes.push(LaneWrite::set(point, 0, pinned));
        }
    }
    Ok(Lane {
        start,
        init,
        writes,
    })
}
