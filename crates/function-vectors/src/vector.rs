//! The function vector: `v_t = Σ_{(l,h)∈A} W_O^(l)[:, h·d_h:(h+1)·d_h] · z̄_t[l, h]`, a
//! residual-stream vector `[d_model]`, and its addition to `blocks.{l}.hook_resid_post` at
//! the last position.
//!
//! Out-projection biases (GPT-2's `c_proj`) are left out: the reference's `|A|·b_O` is an
//! artifact of running the whole out-projection module once per head.

use gpt_core::intervention::{SiteWrite, Sites};
use gpt_core::steering::{SteerPositions, SteeringVector};
use gpt_core::tch::{Device, Kind, Tensor};
use gpt_core::{
    EditableModel, ForwardOptions, HookPoint, Layer, ResumableModel, TokenBatch, WeightId,
};

use crate::activations::MeanActivations;
use crate::error::{Error, Result};
use crate::resume::BaseRun;
use crate::scan::HeadScore;

/// The reference's default edit layer: about a third of the depth, `⌊n_layers / 3⌋`
/// (SmolLM2-135M: 10, GPT-2 small: 4, GPT-2 XL: 16, GPT-J: 9).
pub fn default_layer(n_layers: usize) -> usize {
    n_layers / 3
}

/// The function vector `v` (`[d_model]`) at `layer` as a [`SteeringVector`]: added to
/// `blocks.{layer}.hook_resid_post` at the last position, as this crate evaluates it (save
/// it with [`SteeringVector::save_control_vector`] for llama.cpp, which adds it at every
/// position).
///
/// # Errors
/// A vector of another width than `d_model`.
pub fn steering_vector(v: &Tensor, layer: usize, d_model: usize) -> Result<SteeringVector> {
    Ok(SteeringVector::new(d_model, SteerPositions::Last).with_direction(layer, v)?)
}

/// Checks that every head lies inside a model of `n_layers × n_heads`.
///
/// # Errors
/// [`Error::HeadOutOfRange`] for the first head outside.
pub fn check_heads(heads: &[HeadScore], n_layers: usize, n_heads: usize) -> Result<()> {
    if let Some(h) = heads
        .iter()
        .find(|h| h.layer >= n_layers || h.head >= n_heads)
    {
        return Err(Error::HeadOutOfRange {
            layer: h.layer,
            head: h.head,
            n_layers,
            n_heads,
        });
    }
    Ok(())
}

/// `v = Σ_{(l,h) ∈ heads} W_O^(l)[:, h·d_h:(h+1)·d_h] · z̄[l, h]`, `[d_model]` f64 on the
/// CPU. `W_O` is read as `[d_model, n_heads·d_head]` ([`WeightId::AttnOut`]).
///
/// # Errors
/// A head out of range; mean activations of another shape; model errors.
pub fn function_vector(
    model: &dyn EditableModel,
    mean: &MeanActivations,
    heads: &[HeadScore],
) -> Result<Tensor> {
    let c = model.config();
    check_heads(heads, c.n_layers, c.n_heads)?;
    let dh = c.d_head as i64;
    let _guard = gpt_core::tch::no_grad_guard();
    let mut v = Tensor::f_zeros([c.d_model as i64], (Kind::Double, Device::Cpu))?;
    for h in heads {
        let w = model
            .weight(WeightId::AttnOut(Layer(h.layer)))?
            .f_narrow(1, h.head as i64 * dh, dh)?
            .f_to_device(Device::Cpu)?
            .f_to_kind(Kind::Double)?;
        v = v.f_add(&w.f_mv(&mean.head(h.layer, h.head)?)?)?;
    }
    Ok(v)
}

fn check_layer(model: &dyn ResumableModel, layer: usize, what: &'static str) -> Result<()> {
    let n_layers = model.config().n_layers;
    if layer >= n_layers {
        return Err(Error::LayerOutOfRange {
            what,
            layer,
            n_layers,
        });
    }
    Ok(())
}

/// Logits at the last position with `vector` added to `blocks.{l}.hook_resid_post` at the
/// last position, for each `l` in `layers`: `[layers, vocab]`, on one base pass (fast
/// schedule: each layer's lane runs only the last position through blocks `l+1..`).
///
/// # Errors
/// A layer out of range; model errors.
pub fn add_at_layers(
    model: &dyn ResumableModel,
    base: &BaseRun,
    vector: &Tensor,
    layers: &[usize],
    max_rows: usize,
) -> Result<Tensor> {
    let _guard = gpt_core::tch::no_grad_guard();
    let lanes = layers
        .iter()
        .map(|&l| {
            check_layer(model, l, "FV layer")?;
            let entering = base.entering(l + 1)?;
            let v = vector
                .f_to_device(entering.device())?
                .f_to_kind(entering.kind())?;
            base.lane(l + 1, &entering.f_add(&v)?, Vec::new())
        })
        .collect::<Result<Vec<_>>>()?;
    base.run_lanes(model, &lanes, max_rows)
}

/// The naive oracle of [`add_at_layers`] for one layer: a full pass with
/// `SiteWrite::add(blocks.{layer}.hook_resid_post, last position, vector)`; logits `[vocab]`.
///
/// # Errors
/// A layer out of range; model errors.
pub fn add_at_layer_naive(
    model: &dyn ResumableModel,
    ids: &[i64],
    vector: &Tensor,
    layer: usize,
) -> Result<Tensor> {
    check_layer(model, layer, "FV layer")?;
    let _guard = gpt_core::tch::no_grad_guard();
    let batch = TokenBatch::single(ids, model.device())?;
    let mut write = SiteWrite::add(
        HookPoint::resid_post(layer),
        Sites::position(-1),
        vector.shallow_clone(),
    );
    let logits = model
        .forward_with(&batch, ForwardOptions::last(), &mut write)?
        .logits()?;
    Ok(logits.f_select(0, 0)?)
}
