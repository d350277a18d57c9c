//! The fast schedule (see "Performance design" in `docs/ARCHITECTURE.md`).
//!
//! Restoring a state at token `t` cannot change positions `< t`, nor anything below the first
//! restored layer. So for each token `t`, every layer's cell starts from the corrupted run's
//! residual at its first affected block, runs only positions `t..` (attending to the
//! corrupted run's cached keys/values of positions `< t`), and only the last position is
//! unembedded. All cells of one token run together, block by block: a cell joins the batch
//! at its first affected block, so block `j` runs one large batch of every cell started by
//! then (`cells × N` rows).

use gpt_core::tch::{Kind, Tensor};
use gpt_core::{BlocksInput, HookPoint, KvCache};

use crate::error::Result;
use crate::flops;
use crate::hooks::set_position;
use crate::trace::{GridSpec, TraceKind, Tracer};

/// One grid cell: restore around `layer`, first affected block `start`.
struct Cell {
    layer: usize,
    start: usize,
    /// Blocks whose restored site is set to its clean value (window kinds).
    window: std::ops::Range<usize>,
}

/// Scores of every layer for token `t`.
pub(crate) fn token_row(tracer: &Tracer<'_>, spec: &GridSpec, t: usize) -> Result<Vec<f64>> {
    let model = tracer.model;
    let c = model.config();
    let (n_layers, n) = (c.n_layers, tracer.setup.samples);
    let len = tracer.prompt.len();
    let s = (len - t) as i64;
    let device = model.device();
    let ti = t as i64;
    // Corruption only touches the subject, so positions before it are identical in the clean
    // and corrupted runs at every layer: restoring them changes nothing.
    if t < tracer.prompt.subject_range.start {
        return Ok(vec![tracer.corrupted_score; n_layers]);
    }

    let cells: Vec<Cell> = (0..n_layers)
        .map(|layer| {
            let window = spec.layers_for(layer, n_layers);
            let start = match spec.kind {
                TraceKind::Hidden => layer + 1,
                TraceKind::Mlp | TraceKind::Attn => window.start,
            };
            Cell {
                layer,
                start,
                window,
            }
        })
        .collect();

    // The state entering block `start` for a cell, `[N, s, d]`.
    let initial = |cell: &Cell| -> Result<Tensor> {
        match spec.kind {
            TraceKind::Hidden => {
                let point = HookPoint::resid_post(cell.layer);
                let corrupted = tracer.corrupted.try_get(point)?.f_narrow(1, ti, s)?;
                let state = gpt_core::intervention::copy_of(&corrupted)?;
                let clean = tracer.clean.try_get(point)?.f_select(1, ti)?; // [1, d]
                state
                    .f_select(1, 0)?
                    .f_copy_(&clean.f_expand([n as i64, -1], false)?)?;
                Ok(state)
            }
            TraceKind::Mlp | TraceKind::Attn => {
                let point = HookPoint::resid_pre(cell.start);
                Ok(tracer.corrupted.try_get(point)?.f_narrow(1, ti, s)?)
            }
        }
    };

    let positions_row = Tensor::f_arange_start(ti, len as i64, (Kind::Int64, device))?;
    let mut order: Vec<usize> = Vec::with_capacity(n_layers); // cell index of each batch group
    let mut state: Option<Tensor> = None;
    // Appends the cells whose first affected block is `start` to the batch (keeping only
    // the last position when they join after the final block, which kept only that one).
    let admit =
        |start: usize, state: Option<Tensor>, order: &mut Vec<usize>| -> Result<Option<Tensor>> {
            let mut parts: Vec<Tensor> = state.into_iter().collect();
            for (i, cell) in cells.iter().enumerate().filter(|(_, c)| c.start == start) {
                let init = initial(cell)?;
                parts.push(if start == n_layers {
                    init.f_narrow(1, s - 1, 1)?
                } else {
                    init
                });
                order.push(i);
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
        let groups = order.len();
        let rows = (groups * n) as i64;

        // The last block only needs the last position (its keys and values still come from
        // every position). Edits at position `t < len - 1` there cannot reach it: skip them.
        let final_block = j + 1 == n_layers;
        let edits_matter = !final_block || s == 1;
        // Interventions at block j, as row masks over the batch.
        let mut edits = Vec::new();
        if spec.kind != TraceKind::Hidden && edits_matter {
            let restored_rows: Vec<usize> = order
                .iter()
                .enumerate()
                .filter(|&(_, &i)| cells[i].window.contains(&j))
                .flat_map(|(g, _)| g * n..(g + 1) * n)
                .collect();
            if !restored_rows.is_empty() {
                let point = HookPoint::block(j, spec.kind.site());
                let clean = tracer.clean.try_get(point)?.f_select(1, ti)?; // [1, d]
                edits.push(set_position(point, 0, restored_rows, clean));
            }
        }
        if let (Some(sever), true) = (spec.sever, edits_matter) {
            // Every active cell's restored state must not act through this module at `t`:
            // pin it to the corrupted run's value (rows of each group are the N samples).
            let point = HookPoint::block(j, sever.site());
            let corrupted = tracer.corrupted.try_get(point)?.f_select(1, ti)?; // [N, d]
            let values = corrupted.f_repeat([groups as i64, 1])?;
            edits.push(set_position(point, 0, (0..rows as usize).collect(), values));
        }

        let past = if t > 0 {
            let (k, v) = tracer.corrupted_kv.layer(j).ok_or_else(|| {
                crate::Error::InvalidInput(format!("no cached keys/values for layer {j}"))
            })?;
            let rep = |x: &Tensor| -> Result<Tensor> {
                Ok(x.f_narrow(2, 0, ti)?.f_repeat([groups as i64, 1, 1, 1])?)
            };
            let mut layers: Vec<Option<(Tensor, Tensor)>> = (0..n_layers).map(|_| None).collect();
            layers[j] = Some((rep(k)?, rep(v)?));
            Some(KvCache::from_layers(t, layers)?)
        } else {
            None
        };
        let input = BlocksInput {
            layers: j..j + 1,
            resid: x,
            positions: positions_row.f_unsqueeze(0)?.f_expand([rows, s], false)?,
            past: past.as_ref(),
            attention_mask: None,
            last_position_only: final_block,
        };
        let out = model.forward_blocks(input, &mut edits)?.resid()?;
        tracer.add_flops(if final_block {
            flops::last_block(c, rows as usize, s as usize, t)
        } else {
            flops::block(c, rows as usize, s as usize, t)
        });
        state = Some(out);
    }

    // Cells restoring the last layer's output join after the last block.
    let state = admit(n_layers, state, &mut order)?;
    let Some(x) = state else {
        return Ok(Vec::new());
    };
    let last = x.f_select(1, -1)?; // [groups·N, d]
    let logits = model.unembed(&last)?;
    tracer.add_flops(flops::unembed(c, order.len() * n));
    let group_scores = tracer.group_scores(&logits, order.len())?;
    let mut row = vec![f64::NAN; n_layers];
    for (g, &i) in order.iter().enumerate() {
        row[cells[i].layer] = group_scores[g];
    }
    Ok(row)
}
