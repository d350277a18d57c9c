//! Activation patching between two clean prompts: run a *source* prompt, then run a *base*
//! prompt with some of its activations replaced by the source's (e.g. the "Megan Rapinoe"
//! states patched into a "Shaquille O'Neal" prompt), per position or per attention head.

use gpt_core::tch::{Device, Kind};
use gpt_core::{BlockSite, CacheHook, HookPoint, HookableModel, SiteWrite, Sites, TokenBatch};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One patched activation: `base[point][base_pos] ← source[point][source_pos]`, for one
/// attention head of `hook_z` when `head` is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchSite {
    /// The hook point (any block site; `hook_z` for heads).
    pub point: HookPoint,
    /// Token position in the source prompt.
    pub source_pos: usize,
    /// Token position in the base prompt.
    pub base_pos: usize,
    /// One head of `blocks.{l}.attn.hook_z` (`[batch, pos, head, d_head]`) instead of the
    /// whole activation.
    pub head: Option<usize>,
}

/// The sites that carry the subject's last token from source to base in `layers`: the
/// block outputs (`hook_resid_post`) at each prompt's last subject token.
pub fn last_subject_sites(
    layers: std::ops::Range<usize>,
    source_pos: usize,
    base_pos: usize,
) -> Vec<PatchSite> {
    layers
        .map(|l| PatchSite {
            point: HookPoint::resid_post(l),
            source_pos,
            base_pos,
            head: None,
        })
        .collect()
}

/// The next-token distribution of a patched run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PatchResult {
    /// Probabilities at the base prompt's last position, `[vocab]`.
    pub probs: Vec<f32>,
}

impl PatchResult {
    /// Probability of one token.
    pub fn prob(&self, token: i64) -> f64 {
        usize::try_from(token)
            .ok()
            .and_then(|t| self.probs.get(t))
            .map_or(0.0, |&p| f64::from(p))
    }

    /// The most probable token.
    pub fn top(&self) -> i64 {
        self.probs
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i as i64)
    }
}

impl PatchSite {
    /// This site as a [`SiteWrite`] reading from the source run `cache`.
    fn write<'a>(&self, cache: &'a gpt_core::ActivationCache) -> SiteWrite<'a> {
        let at = |pos: usize| {
            let sites = Sites::position(pos as i64);
            match self.head {
                Some(h) => sites.head(h),
                None => sites,
            }
        };
        SiteWrite::patch(self.point, at(self.base_pos), cache, at(self.source_pos))
    }
}

/// Runs `source`, then `base` with the activations at `sites` taken from the source run.
///
/// # Errors
/// Positions outside either prompt, a head on a point other than `hook_z` or out of range,
/// hook points the model lacks, model errors.
pub fn patch_run(
    model: &dyn HookableModel,
    source: &[i64],
    base: &[i64],
    sites: &[PatchSite],
) -> Result<PatchResult> {
    let c = model.config();
    let points: Vec<HookPoint> = model.hook_points();
    for (i, s) in sites.iter().enumerate() {
        let bad = |why: String| {
            Err(Error::InvalidInput(format!(
                "patch site {i} ({}): {why}",
                s.point
            )))
        };
        if !points.contains(&s.point) {
            return bad("the model has no such hook point".into());
        }
        if s.source_pos >= source.len() {
            return bad(format!(
                "source position {} is outside its {} tokens",
                s.source_pos,
                source.len()
            ));
        }
        if s.base_pos >= base.len() {
            return bad(format!(
                "base position {} is outside its {} tokens",
                s.base_pos,
                base.len()
            ));
        }
        if let Some(h) = s.head {
            if !matches!(s.point, HookPoint::Block(_, BlockSite::Z)) {
                return bad("a head can only be patched at blocks.{l}.attn.hook_z".into());
            }
            if h >= c.n_heads {
                return bad(format!(
                    "head {h} is out of range (the model has {} heads)",
                    c.n_heads
                ));
            }
        }
    }
    let _guard = gpt_core::tch::no_grad_guard();
    let device = model.device();
    let wanted: Vec<HookPoint> = sites.iter().map(|s| s.point).collect();
    let mut cache = CacheHook::new(|p| wanted.contains(&p));
    model.forward_hooked(&TokenBatch::single(source, device)?, &mut cache)?;
    let cache = cache.into_cache();
    let mut patch: Vec<SiteWrite<'_>> = sites.iter().map(|s| s.write(&cache)).collect();
    let logits = model
        .forward_hooked(&TokenBatch::single(base, device)?, &mut patch)?
        .logits()?;
    let probs = logits
        .f_select(1, -1)?
        .f_squeeze_dim(0)?
        .f_softmax(-1, Kind::Float)?
        .f_to_device(Device::Cpu)?;
    Ok(PatchResult {
        probs: Vec::<f32>::try_from(&probs)?,
    })
}
