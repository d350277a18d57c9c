//! The interventions tracing uses, as [`SiteWrite`]s of gpt-core: corrupting the subject's
//! embeddings, restoring states from the clean row, and pinning a position to given values.

use std::ops::Range;

use gpt_core::tch::Tensor;
use gpt_core::{HookPoint, SiteWrite, Sites};

/// At `hook_embed`, rows `first_row..first_row + N` get the corrupted subject embeddings
/// `corrupted: [N, span, d]` at the subject's positions.
pub(crate) fn corrupt_embed(
    corrupted: &Tensor,
    span: Range<usize>,
    first_row: usize,
) -> SiteWrite<'static> {
    let n = corrupted.size().first().copied().unwrap_or(0).max(0) as usize;
    let sites = Sites::positions(span.map(|p| p as i64)).rows(first_row..first_row + n);
    SiteWrite::set(HookPoint::Embed, sites, corrupted.shallow_clone())
}

/// At each of `points`, position `pos` of rows `1..rows` gets row 0's value there (restoring a
/// clean state inside a batch whose row 0 is the clean run).
pub(crate) fn restore_from_row0(
    points: &[HookPoint],
    pos: i64,
    rows: usize,
) -> Vec<SiteWrite<'static>> {
    points
        .iter()
        .map(|&point| {
            SiteWrite::set_with(point, Sites::position(pos).rows(1..rows), move |act| {
                Ok(act.f_narrow(0, 0, 1)?.f_select(1, pos)?)
            })
        })
        .collect()
}

/// At `point`, position `pos` of `rows` gets `values` (`[len(rows), d]`, or `[d]` / `[1, d]`
/// for the same value in every row).
pub(crate) fn set_position(
    point: HookPoint,
    pos: i64,
    rows: Vec<usize>,
    values: Tensor,
) -> SiteWrite<'static> {
    SiteWrite::set(point, Sites::position(pos).rows(rows), values)
}
