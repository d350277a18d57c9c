//! The naive schedule: one full forward pass (clean row + corrupted rows) per grid cell, as
//! the reference implementation does. Kept as the oracle of the fast schedule.

use gpt_core::{ActivationCache, ForwardOptions, HookPoint, TokenBatch};

use crate::error::Result;
use crate::flops;
use crate::hooks::{corrupt_embed, restore_from_row0, set_position};
use crate::trace::{GridSpec, Tracer};

/// Scores of every layer for token `t`.
pub(crate) fn token_row(tracer: &Tracer<'_>, spec: &GridSpec, t: usize) -> Result<Vec<f64>> {
    let model = tracer.model;
    let c = model.config();
    let n = tracer.setup.samples;
    let len = tracer.prompt.len();
    let batch = clean_and_corrupted_rows(tracer)?;
    let span = tracer.prompt.subject_range.clone();
    // Severed traces: a first pass records the frozen module's corrupted outputs (the
    // reference's two-pass rule; with common random numbers its values are the corrupted run's).
    let frozen: Option<ActivationCache> = match spec.sever {
        Some(sever) => {
            let site = sever.site();
            let mut hooks = (
                corrupt_embed(&tracer.corrupted_embed, span.clone(), 1),
                gpt_core::CacheHook::new(
                    move |p: HookPoint| matches!(p, HookPoint::Block(_, s) if s == site),
                ),
            );
            model.forward_with(&batch, ForwardOptions::last(), &mut hooks)?;
            tracer.add_flops(flops::forward(c, n + 1, len, 0, n + 1));
            Some(hooks.1.into_cache())
        }
        None => None,
    };
    let mut row = Vec::with_capacity(c.n_layers);
    for layer in 0..c.n_layers {
        let points = restored_points(spec, layer, c.n_layers);
        let mut freeze = Vec::new();
        if let (Some(sever), Some(frozen)) = (spec.sever, frozen.as_ref()) {
            for l in 0..c.n_layers {
                let point = HookPoint::block(l, sever.site());
                // Rows 1..=n (the corrupted ones) keep their first-pass values at `t`.
                let values = frozen
                    .try_get(point)?
                    .f_select(1, t as i64)?
                    .f_narrow(0, 1, n as i64)?;
                freeze.push(set_position(point, t as i64, (1..=n).collect(), values));
            }
        }
        let mut hooks = (
            (
                corrupt_embed(&tracer.corrupted_embed, span.clone(), 1),
                restore_from_row0(&points, t as i64, n + 1),
            ),
            freeze,
        );
        // Logits at every position, as the reference computes them; the score reads the last.
        let logits = model
            .forward_with(&batch, ForwardOptions::all(), &mut hooks)?
            .logits()?;
        tracer.add_flops(flops::forward(c, n + 1, len, 0, (n + 1) * len));
        let corrupted_rows = logits.f_narrow(0, 1, n as i64)?.f_select(1, -1)?;
        row.push(tracer.group_scores(&corrupted_rows, 1)?[0]);
    }
    Ok(row)
}

/// The next-token distribution of the restored run of one cell (not severed): the mean over
/// the corrupted rows of `softmax(logits)` at the last position, `[vocab]`, f32 on the CPU.
pub(crate) fn cell_distribution(
    tracer: &Tracer<'_>,
    spec: &GridSpec,
    t: usize,
    layer: usize,
) -> Result<gpt_core::tch::Tensor> {
    let model = tracer.model;
    let n = tracer.setup.samples;
    let batch = clean_and_corrupted_rows(tracer)?;
    let points = restored_points(spec, layer, model.config().n_layers);
    let span = tracer.prompt.subject_range.clone();
    let mut hooks = (
        corrupt_embed(&tracer.corrupted_embed, span, 1),
        restore_from_row0(&points, t as i64, n + 1),
    );
    // `[rows, vocab]`: the last position only.
    let logits = model
        .forward_with(&batch, ForwardOptions::last(), &mut hooks)?
        .logits()?;
    Ok(logits
        .f_narrow(0, 1, n as i64)?
        .f_softmax(-1, gpt_core::tch::Kind::Float)?
        .f_mean_dim(0, false, gpt_core::tch::Kind::Float)?
        .f_to_device(gpt_core::tch::Device::Cpu)?)
}

/// The prompt `1 + samples` times: row 0 stays clean, the others get the corruption.
fn clean_and_corrupted_rows(tracer: &Tracer<'_>) -> Result<TokenBatch> {
    Ok(TokenBatch::pad(
        &vec![tracer.prompt.ids.clone(); tracer.setup.samples + 1],
        Default::default(),
        0,
        tracer.model.device(),
    )?)
}

/// The hook points a cell at `layer` restores: the window `spec` centres there (one layer
/// for hidden states).
fn restored_points(spec: &GridSpec, layer: usize, n_layers: usize) -> Vec<HookPoint> {
    spec.layers_for(layer, n_layers)
        .map(|l| HookPoint::block(l, spec.kind.site()))
        .collect()
}
