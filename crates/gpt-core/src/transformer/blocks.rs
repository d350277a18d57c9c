//! The block loop: the one place where block hook points fire.

use tch::Tensor;

use super::{attention_allowed, hook, AttentionMask, BlockLayout, Transformer};
use crate::error::{Error, Result};
use crate::hook::{BlockSite, HookPoint};
use crate::intervention::{HookAction, Intervention};
use crate::model::{BlocksOutcome, KvCache};

/// The shared arguments of [`Transformer::run_blocks`].
pub(crate) struct BlockRun<'a> {
    pub layers: std::ops::Range<usize>,
    /// `[b, s]` positions of the new tokens.
    pub positions: &'a Tensor,
    /// `[b, past + s]` 1 = real token.
    pub attention_mask: &'a Tensor,
    pub past: Option<&'a KvCache>,
    /// The last block computes outputs for the last position only.
    pub last_position_only: bool,
}

/// Offers `act` to the intervention at `point`: `Some(activation to go on with)`, or `None`
/// when the intervention stops the pass. Replacements must keep the shape; they are moved to
/// the activation's device and dtype.
pub(crate) fn fire(
    hooks: &mut dyn Intervention,
    point: HookPoint,
    act: Tensor,
) -> Result<Option<Tensor>> {
    if !hooks.wants(point) {
        return Ok(Some(act));
    }
    match hooks.visit(point, &act)? {
        HookAction::Continue => Ok(Some(act)),
        HookAction::Stop => Ok(None),
        HookAction::Replace(new) => {
            if new.size() != act.size() {
                return Err(Error::ReplacementShape {
                    point,
                    expected: act.size(),
                    got: new.size(),
                });
            }
            Ok(Some(new.f_to_device(act.device())?.f_to_kind(act.kind())?))
        }
    }
}

impl Transformer {
    /// Runs `run.layers` on `resid: [b, s, d]`, firing the block hook points; appends each
    /// layer's keys/values (past included) to `new_kv` when given.
    pub(crate) fn run_blocks(
        &self,
        run: BlockRun<'_>,
        mut resid: Tensor,
        mut new_kv: Option<&mut Vec<Option<(Tensor, Tensor)>>>,
        hooks: &mut dyn Intervention,
    ) -> Result<BlocksOutcome> {
        let (b, s, _) = resid.size3()?;
        let past_len = run.past.map_or(0, |c| c.len) as i64;
        let heads = self.heads();
        let allowed = AttentionMask::new(
            attention_allowed(run.attention_mask, s, past_len, self.config.sliding_window)?,
            heads,
            self.kind,
        )?;
        // Gemma 2 alternates windowed and full layers: both masks, each layer picks one.
        let full = match &self.config.sliding_layers {
            Some(layers) if layers.iter().any(|&s| !s) => Some(AttentionMask::new(
                attention_allowed(run.attention_mask, s, past_len, None)?,
                heads,
                self.kind,
            )?),
            _ => None,
        };
        let rotary = self.rotary(run.positions)?;
        let rotary_sliding = self.rotary_sliding(run.positions)?;
        let last_layer = run.layers.end.checked_sub(1);
        for l in run.layers {
            let block = self.block(l)?;
            let at = |site| HookPoint::block(l, site);
            resid = hook!(
                hooks,
                at(BlockSite::ResidPre),
                resid,
                BlocksOutcome::Stopped
            );
            let x = block.ln1.forward(&resid)?;
            let first_query = if run.last_position_only && Some(l) == last_layer {
                s - 1
            } else {
                0
            };
            let cached = run.past.and_then(|c| c.layer(l));
            let windowed = match &self.config.sliding_layers {
                Some(layers) => layers.get(l).copied().unwrap_or(false),
                None => true,
            };
            let mask = match (&full, windowed) {
                (Some(full), false) => full,
                _ => &allowed,
            };
            let tables = match (&rotary_sliding, windowed) {
                (Some(sliding), true) => Some(sliding),
                _ => rotary.as_ref(),
            };
            let attn = block
                .attn
                .forward(heads, &x, mask, tables, cached, first_query)?;
            if let Some(new_kv) = new_kv.as_deref_mut() {
                new_kv.push(Some(attn.kv));
            }
            if first_query > 0 {
                resid = resid.f_narrow(1, first_query, s - first_query)?;
            }
            let z = hook!(hooks, at(BlockSite::Z), attn.z, BlocksOutcome::Stopped);
            let merged = z.f_reshape([b, s - first_query, heads.n_heads * heads.d_head])?;
            let attn_out = block.attn.o.forward(&merged)?;
            let attn_out = hook!(
                hooks,
                at(BlockSite::AttnOut),
                attn_out,
                BlocksOutcome::Stopped
            );
            let attn_added = match &block.post_norms {
                Some((after_attn, _)) => after_attn.forward(&attn_out)?,
                None => attn_out,
            };
            let (mlp_in, base) = match block.layout {
                BlockLayout::Sequential => {
                    let mid = resid.f_add(&attn_added)?;
                    let mid = hook!(hooks, at(BlockSite::ResidMid), mid, BlocksOutcome::Stopped);
                    (block.ln2.forward(&mid)?, mid)
                }
                // The MLP reads the block's input; attention's output joins the sum below.
                BlockLayout::Parallel => (block.ln2.forward(&resid)?, resid.f_add(&attn_added)?),
                BlockLayout::ParallelSharedNorm => {
                    let x = if first_query > 0 {
                        x.f_narrow(1, first_query, s - first_query)?
                    } else {
                        x
                    };
                    (x, resid.f_add(&attn_added)?)
                }
            };
            let post = block.mlp.post(&mlp_in)?;
            let post = hook!(hooks, at(BlockSite::MlpPost), post, BlocksOutcome::Stopped);
            let mlp_out = block.mlp.out(&post)?;
            let mlp_out = hook!(
                hooks,
                at(BlockSite::MlpOut),
                mlp_out,
                BlocksOutcome::Stopped
            );
            let mlp_added = match &block.post_norms {
                Some((_, after_mlp)) => after_mlp.forward(&mlp_out)?,
                None => mlp_out,
            };
            let post_resid = base.f_add(&mlp_added)?;
            resid = hook!(
                hooks,
                at(BlockSite::ResidPost),
                post_resid,
                BlocksOutcome::Stopped
            );
        }
        Ok(BlocksOutcome::Resid(resid))
    }
}
