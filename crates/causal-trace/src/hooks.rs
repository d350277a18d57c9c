//! The interventions tracing uses: corrupting the subject embedding, restoring states from
//! the clean row, and overwriting one position with given values.

use std::ops::Range;

use gpt_core::intervention::copy_of;
use gpt_core::tch::Tensor;
use gpt_core::{HookAction, HookPoint, Intervention};

/// At `hook_embed`, rows `rows.start..` (as many as `corrupted` has) get the corrupted
/// subject embeddings at the subject's positions.
pub(crate) struct CorruptEmbed<'a> {
    corrupted: &'a Tensor,
    span: Range<usize>,
    first_row: i64,
}

impl<'a> CorruptEmbed<'a> {
    /// `corrupted: [N, span, d]`, written to rows `first_row..first_row + N`.
    pub fn new(corrupted: &'a Tensor, span: Range<usize>, first_row: i64) -> Self {
        Self {
            corrupted,
            span,
            first_row,
        }
    }
}

impl Intervention for CorruptEmbed<'_> {
    fn wants(&self, point: HookPoint) -> bool {
        point == HookPoint::Embed
    }

    fn visit(&mut self, _point: HookPoint, act: &Tensor) -> gpt_core::Result<HookAction> {
        let n = self.corrupted.size().first().copied().unwrap_or(0);
        let out = copy_of(act)?;
        let (b, len) = (
            self.span.start as i64,
            (self.span.end - self.span.start) as i64,
        );
        let mut region = out.f_narrow(0, self.first_row, n)?.f_narrow(1, b, len)?;
        region.f_copy_(self.corrupted)?;
        Ok(HookAction::Replace(out))
    }
}

/// Sets position `pos` of rows `1..` to the values of row 0 at the given points (restoring
/// a clean state inside a batch whose row 0 is the clean run).
pub(crate) struct RestoreFromRow0 {
    pub points: Vec<HookPoint>,
    pub pos: i64,
}

impl Intervention for RestoreFromRow0 {
    fn wants(&self, point: HookPoint) -> bool {
        self.points.contains(&point)
    }

    fn visit(&mut self, _point: HookPoint, act: &Tensor) -> gpt_core::Result<HookAction> {
        let rows = act.size().first().copied().unwrap_or(0);
        let out = copy_of(act)?;
        let clean = act.f_narrow(0, 0, 1)?.f_narrow(1, self.pos, 1)?;
        let mut target = out.f_narrow(0, 1, rows - 1)?.f_narrow(1, self.pos, 1)?;
        target.f_copy_(&clean.f_expand_as(&target)?)?;
        Ok(HookAction::Replace(out))
    }
}

/// Overwrites position `pos` of every row where `mask` is true with `values`, at one point.
pub(crate) struct SetPosition {
    pub point: HookPoint,
    pub pos: i64,
    /// `[rows]` bool.
    pub mask: Tensor,
    /// `[rows, d]` (or broadcastable).
    pub values: Tensor,
}

/// A list of [`SetPosition`]s applied in order.
pub(crate) struct SetPositions(pub Vec<SetPosition>);

impl Intervention for SetPositions {
    fn wants(&self, point: HookPoint) -> bool {
        self.0.iter().any(|s| s.point == point)
    }

    fn visit(&mut self, point: HookPoint, act: &Tensor) -> gpt_core::Result<HookAction> {
        let out = copy_of(act)?;
        for s in self.0.iter().filter(|s| s.point == point) {
            let current = out.f_select(1, s.pos)?;
            let mask = s.mask.f_unsqueeze(1)?;
            let updated = s.values.f_where_self(&mask, &current)?;
            out.f_select(1, s.pos)?.f_copy_(&updated)?;
        }
        Ok(HookAction::Replace(out))
    }
}
