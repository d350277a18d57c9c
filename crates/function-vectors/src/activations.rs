//! Mean head activations: `z̄[l, h] = mean over prompts of z_{l,h}` at the last token, in
//! the space of `blocks.{l}.attn.hook_z` (a query head's output before the output
//! projection; under grouped-query attention, one slice per query head).

use gpt_core::progress::{self, Progress, ProgressFn};
use gpt_core::tch::{Kind, Tensor};
use gpt_core::ResumableModel;

use crate::error::{Error, Result};
use crate::prompt::IclPrompt;
use crate::resume::BaseRun;

/// The stage [`mean_head_activations`] reports, in prompts.
pub const MEAN_ACTIVATIONS_STAGE: &str = "mean activations";

/// `z̄`: per layer and query head, the mean output at the last token.
#[derive(Debug)]
pub struct MeanActivations {
    /// `[n_layers, n_heads, d_head]`, f64, on the CPU.
    pub mean: Tensor,
    /// Number of prompts averaged.
    pub n_prompts: usize,
}

impl MeanActivations {
    /// `z̄[layer, head]`, `[d_head]` (f64, CPU).
    ///
    /// # Errors
    /// [`Error::HeadOutOfRange`].
    pub fn head(&self, layer: usize, head: usize) -> Result<Tensor> {
        let size = self.mean.size();
        let (n_layers, n_heads) = (size[0] as usize, size[1] as usize);
        if layer >= n_layers || head >= n_heads {
            return Err(Error::HeadOutOfRange {
                layer,
                head,
                n_layers,
                n_heads,
            });
        }
        Ok(self
            .mean
            .f_select(0, layer as i64)?
            .f_select(0, head as i64)?)
    }
}

/// Averages `hook_z` at the last token of each prompt (one batch-1 pass per prompt):
/// `z̄ = (1/N) Σ_p z_p[l, h, last]`, accumulated in f64. `progress` hears of
/// [`MEAN_ACTIVATIONS_STAGE`] before the first prompt and after each.
///
/// # Errors
/// No prompts; model errors; [`Error::Cancelled`] when `progress` stops it.
pub fn mean_head_activations(
    model: &dyn ResumableModel,
    prompts: &[IclPrompt],
    progress: &mut ProgressFn<'_>,
) -> Result<MeanActivations> {
    if prompts.is_empty() {
        return Err(Error::InvalidInput(
            "mean activations need at least one prompt".into(),
        ));
    }
    let at = |done: usize| {
        Progress::new(
            MEAN_ACTIVATIONS_STAGE,
            done as u64,
            Some(prompts.len() as u64),
            "prompts",
        )
    };
    progress::report(progress, at(0))?;
    let mut sum: Option<Tensor> = None;
    for (i, p) in prompts.iter().enumerate() {
        let base = BaseRun::new(model, &p.ids, true)?;
        let z = base
            .z_last
            .ok_or_else(|| Error::InvalidInput("hook_z was not recorded".into()))?
            .f_to_kind(Kind::Double)?
            .f_to_device(gpt_core::tch::Device::Cpu)?;
        sum = Some(match sum {
            None => z,
            Some(s) => s.f_add(&z)?,
        });
        progress::report(progress, at(i + 1))?;
    }
    let mean = sum
        .ok_or_else(|| Error::InvalidInput("no prompts".into()))?
        .f_div_scalar(prompts.len() as f64)?;
    Ok(MeanActivations {
        mean,
        n_prompts: prompts.len(),
    })
}
