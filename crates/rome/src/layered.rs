//! The machinery MEMIT, AlphaEdit and EMMET share (reference §3, §8): the target residual `z`
//! of each fact optimised at the last edited layer's output, then, layer by layer, the keys
//! of all facts with the model as edited so far and the remaining residual spread over the
//! remaining layers. Only the per-layer solve differs; each method passes its own
//! ([`LayerSolve`]).

use gpt_core::progress::{self, Progress, ProgressFn};
use gpt_core::tch::{Device, Kind, Tensor};
use gpt_core::{
    EditUndo, EditableModel, HookPoint, Layer, ResumableModel, Tokenizer, WeightDelta, WeightId,
};

use crate::delta::{optimize_deltas, DeltaSpec};
use crate::error::{Error, Result};
use crate::hparams::RomeHparams;
use crate::request::RewriteRequest;
use crate::rome::{at_subjects, keys_and_values, locate, Located, Schedule};
use crate::target_cache::TargetCache;

/// Requests whose target residuals `z` are optimised together, in one padded batch per
/// step (each with its own δ, loss, Adam state and early stop; the results are those of
/// one request at a time up to rounding). Larger batches use a GPU better; on a CPU the
/// cost per request is about the same at any size.
pub const TARGET_BATCH: usize = 32;

/// A method's per-layer solve: given the position `index` of the layer in the edited list,
/// the keys `[d_mlp, n]` (f64, CPU) and the residuals `[d_model, n]` (f64, CPU, already
/// divided by the layers remaining), the dense change `[d_model, d_mlp]` of that layer's
/// MLP output projection.
pub(crate) type LayerSolve<'s> = dyn FnMut(usize, &Tensor, &Tensor) -> Result<Tensor> + 's;

/// What a layered run is: its name and progress stages, the edited layers and the z
/// optimisation.
pub(crate) struct LayeredSpec<'a> {
    /// The method's name, for messages.
    pub method: &'static str,
    /// The first progress stage (one `z` per request).
    pub targets_stage: &'static str,
    /// The second progress stage (one update per layer).
    pub layers_stage: &'static str,
    /// The edited layers, ascending.
    pub layers: &'a [usize],
    /// The z settings (`layer` is ignored: z sits at the last edited layer).
    pub z: &'a RomeHparams,
    /// Whether to compute each edited layer's keys again with every layer's change applied
    /// (AlphaEdit's key history, the reference's `cache_c`).
    pub keys_after: bool,
    /// Where target residuals are looked up before they are fitted, and stored after.
    pub cache: Option<&'a TargetCache>,
    /// The method's own checks of its inputs (statistics per layer), run after the
    /// requests' and layers' checks and before anything is computed.
    pub check: &'a dyn Fn() -> Result<()>,
}

/// The result of a layered run.
/// The result of a layered method without key history (MEMIT, EMMET): one dense change per
/// layer and how they were found.
#[derive(Debug)]
pub struct LayeredEdit {
    /// The changes of `blocks.{l}.mlp.W_out`, in layer order.
    pub deltas: Vec<WeightDelta>,
    /// `[n, d_model]`: the target residuals.
    pub z: Tensor,
    /// The z losses of each request.
    pub losses: Vec<Vec<f64>>,
}

impl From<Layered> for LayeredEdit {
    fn from(run: Layered) -> Self {
        Self {
            deltas: run.deltas,
            z: run.z,
            losses: run.losses,
        }
    }
}

pub(crate) struct Layered {
    /// The changes of `blocks.{l}.mlp.W_out`, in layer order.
    pub deltas: Vec<WeightDelta>,
    /// `[n, d_model]`: the target residuals.
    pub z: Tensor,
    /// The z losses of each request.
    pub losses: Vec<Vec<f64>>,
    /// With [`LayeredSpec::keys_after`]: per edited layer, the keys `[d_mlp, n]` (f64, CPU)
    /// with all the changes applied; empty otherwise.
    pub keys_after: Vec<Tensor>,
}

/// The residual leaving block `layer` at each prompt's subject token, `[n, d_model]`.
fn residuals_at<M: ResumableModel + ?Sized>(
    model: &M,
    layer: usize,
    prompts: &[Located],
) -> Result<Tensor> {
    let point = HookPoint::resid_post(layer);
    at_subjects(model, prompts, &[point])?
        .pop()
        .ok_or_else(|| gpt_core::Error::NoSuchHookPoint { point }.into())
}

/// The key of each request at `layer`, `[d_mlp, n]` f64 on the CPU: ½ the bare prompt's +
/// ½ the mean of the templated ones (MEMIT's `compute_ks`).
fn request_keys<M: ResumableModel + ?Sized>(
    model: &M,
    layer: usize,
    prompts: &[Vec<Located>],
) -> Result<Tensor> {
    let mut keys = Vec::new();
    for p in prompts {
        let (k, _) = keys_and_values(model, layer, p)?;
        let k = k.f_to_kind(Kind::Double)?.f_to_device(Device::Cpu)?;
        let bare_k = k.f_select(0, 0)?;
        let key = if k.size()[0] > 1 {
            let rest = k
                .f_narrow(0, 1, k.size()[0] - 1)?
                .f_mean_dim(0, false, Kind::Double)?;
            bare_k.f_add(&rest)?.f_div_scalar(2.0)?
        } else {
            bare_k
        };
        keys.push(key);
    }
    Ok(Tensor::f_stack(&keys, 1)?)
}

/// Runs the shared loop for all `requests` together, solving each layer with `solve`, and
/// leaves the model as it was (the per-layer changes are applied while later layers are
/// computed, then undone). `templates` are the context templates (the bare `"{}"` first).
/// `progress` hears of the spec's two stages, each before its first unit and after each, and
/// the targets' also after every optimisation step (with its `steps` count).
///
/// # Errors
/// Malformed requests, layers out of range or not ascending, model errors, `solve`'s
/// errors; [`Error::Cancelled`] when `progress` stops it (the model is left as it was).
pub(crate) fn compute_layered<M: EditableModel + ResumableModel + ?Sized>(
    model: &mut M,
    tokenizer: &Tokenizer,
    requests: &[RewriteRequest],
    spec: &LayeredSpec<'_>,
    templates: &[String],
    solve: &mut LayerSolve<'_>,
    progress: &mut ProgressFn<'_>,
) -> Result<Layered> {
    let setup = Setup::new(
        model.config().n_layers,
        tokenizer,
        requests,
        spec,
        templates,
    )?;
    let (z, losses) = target_residuals(&*model, &setup, progress)?;
    let mut updates = LayerUpdates::default();
    let result = updates.apply(model, &setup, &z, solve, progress);
    // Leave the model as it was, whatever happened.
    for undo in updates.undos.iter().rev() {
        model.undo(undo)?;
    }
    result?;
    Ok(Layered {
        deltas: updates.deltas,
        z,
        losses,
        keys_after: updates.keys_after,
    })
}

/// What every step of a layered run reads: the checked inputs, each request located in
/// every template, and the z settings at the last edited layer.
struct Setup<'a> {
    tokenizer: &'a Tokenizer,
    requests: &'a [RewriteRequest],
    spec: &'a LayeredSpec<'a>,
    templates: &'a [String],
    /// Each request's prompts: the templates filled in (the bare prompt first).
    prompts: Vec<Vec<Located>>,
    /// The z settings, `layer` set to [`Setup::last`].
    z_hp: RomeHparams,
    /// The last edited layer, at whose output z sits.
    last: usize,
}

impl<'a> Setup<'a> {
    /// Checks the requests, the layers and the method's inputs (in that order, so the first
    /// error is the same whichever method runs) and locates the prompts.
    fn new(
        n_layers: usize,
        tokenizer: &'a Tokenizer,
        requests: &'a [RewriteRequest],
        spec: &'a LayeredSpec<'a>,
        templates: &'a [String],
    ) -> Result<Self> {
        if requests.is_empty() {
            return Err(Error::InvalidInput(format!(
                "{} needs at least one request",
                spec.method
            )));
        }
        gpt_core::check_joint_requests(requests)?;
        if spec.layers.is_empty() || spec.layers.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::InvalidInput(format!(
                "{} layers {:?} must be non-empty and strictly ascending",
                spec.method, spec.layers
            )));
        }
        let last = *spec.layers.last().unwrap_or(&0);
        let mut z_hp = spec.z.clone();
        z_hp.layer = last;
        z_hp.validate(n_layers)?;
        (spec.check)()?;
        for r in requests {
            r.validate()?;
        }
        let prompts = requests
            .iter()
            .map(|r| {
                templates
                    .iter()
                    .map(|t| locate(tokenizer, t, r))
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            tokenizer,
            requests,
            spec,
            templates,
            prompts,
            z_hp,
            last,
        })
    }

    /// The first stage's progress: `done` target residuals of all.
    fn targets_progress(&self, done: usize) -> Progress {
        Progress::new(
            self.spec.targets_stage,
            done as u64,
            Some(self.requests.len() as u64),
            "requests",
        )
    }

    /// The second stage's progress: `done` layers of all.
    fn layers_progress(&self, done: usize) -> Progress {
        Progress::new(
            self.spec.layers_stage,
            done as u64,
            Some(self.spec.layers.len() as u64),
            "layers",
        )
    }
}

/// A target residual `z` (f64, on the model's device) and its z losses.
type Target = (Tensor, Vec<f64>);

/// The target residuals z at the last layer's output, `[n, d_model]` f64 on the CPU, and
/// the z losses of each request: from the cache where it has them, else optimised.
fn target_residuals<M: EditableModel + ResumableModel + ?Sized>(
    model: &M,
    setup: &Setup<'_>,
    progress: &mut ProgressFn<'_>,
) -> Result<(Tensor, Vec<Vec<f64>>)> {
    // Looked up by content (the model's state, layer, request, settings), so the state is
    // fingerprinted once for all requests.
    let state = match setup.spec.cache {
        Some(_) => Some(TargetCache::model_state(model)?),
        None => None,
    };
    let mut found: Vec<Option<Target>> = Vec::with_capacity(setup.requests.len());
    for r in setup.requests {
        found.push(match (setup.spec.cache, &state) {
            (Some(cache), Some(state)) => {
                cache.get(state, setup.last, r, &setup.z_hp, setup.templates)?
            }
            _ => None,
        });
    }
    fit_missing(model, setup, state.as_deref(), &mut found, progress)?;
    let (mut zs, mut losses) = (Vec::new(), Vec::new());
    for (z, l) in found.into_iter().flatten() {
        zs.push(z.f_to_device(Device::Cpu)?);
        losses.push(l);
    }
    let z = Tensor::f_stack(&zs, 0)?.f_to_device(Device::Cpu)?; // [n, d_model]
    Ok((z, losses))
}

/// Optimises the target residuals `found` lacks, [`TARGET_BATCH`] at a time, and stores
/// them in the cache (`state`: the model's, when there is a cache).
fn fit_missing<M: ResumableModel + ?Sized>(
    model: &M,
    setup: &Setup<'_>,
    state: Option<&str>,
    found: &mut [Option<Target>],
    progress: &mut ProgressFn<'_>,
) -> Result<()> {
    let (requests, last) = (setup.requests, setup.last);
    let missing: Vec<usize> = (0..requests.len())
        .filter(|&i| found[i].is_none())
        .collect();
    let specs: Vec<DeltaSpec<'_>> = missing
        .iter()
        .map(|&i| DeltaSpec {
            tokenizer: setup.tokenizer,
            request: &requests[i],
            hp: &setup.z_hp,
            key_prompts: &setup.prompts[i],
            point: HookPoint::resid_post(last),
            layer: last,
            schedule: Schedule::Fast,
        })
        .collect();
    let mut done = requests.len() - missing.len();
    progress::report(progress, setup.targets_progress(done))?;
    for (chunk, indices) in specs.chunks(TARGET_BATCH).zip(missing.chunks(TARGET_BATCH)) {
        let before = done;
        let mut reported = before;
        let fits = optimize_deltas(model, chunk, &mut |fit| {
            // Every request of a chunk is done at its end: that is reported once, below.
            // Between, every step reports where the chunk stands with its `steps` count
            // (so that a caller can stop within a fit).
            if fit.finished < chunk.len() {
                reported = reported.max(before + fit.finished);
                let event = setup.targets_progress(reported);
                progress::report(progress, event.with_count("steps", fit.steps as u64))?;
            }
            Ok(())
        })?;
        for (fit, &i) in fits.into_iter().zip(indices) {
            let z = fit.target_init.f_add(&fit.delta)?.f_to_kind(Kind::Double)?;
            if let (Some(cache), Some(state)) = (setup.spec.cache, state) {
                cache.put(
                    state,
                    (last, &requests[i], &setup.z_hp, setup.templates),
                    &z,
                    &fit.losses,
                )?;
            }
            found[i] = Some((z, fit.losses));
        }
        done += chunk.len();
        progress::report(progress, setup.targets_progress(done))?;
    }
    Ok(())
}

/// The per-layer changes of a layered run as they are made, with their undo records (so
/// the caller can restore the model whether or not every layer was done).
#[derive(Default)]
struct LayerUpdates {
    deltas: Vec<WeightDelta>,
    undos: Vec<EditUndo>,
    keys_after: Vec<Tensor>,
}

impl LayerUpdates {
    /// Layer by layer: the keys with the model as edited so far, the remaining residual
    /// towards `z` (`[n, d_model]`) spread over the layers left, `solve`'s change applied;
    /// then, if the spec asks, every layer's keys again.
    fn apply<M: EditableModel + ResumableModel + ?Sized>(
        &mut self,
        model: &mut M,
        setup: &Setup<'_>,
        z: &Tensor,
        solve: &mut LayerSolve<'_>,
        progress: &mut ProgressFn<'_>,
    ) -> Result<()> {
        let (spec, prompts) = (setup.spec, &setup.prompts);
        let bare: Vec<Located> = prompts.iter().map(|p| p[0].clone()).collect();
        progress::report(progress, setup.layers_progress(0))?;
        for (i, &layer) in spec.layers.iter().enumerate() {
            // Keys of every request with the model as edited so far.
            let keys = request_keys(&*model, layer, prompts)?;
            let current = residuals_at(&*model, setup.last, &bare)?
                .f_to_kind(Kind::Double)?
                .f_to_device(Device::Cpu)?;
            let remaining = (spec.layers.len() - i) as f64;
            let resid = z
                .f_sub(&current)?
                .f_transpose(0, 1)?
                .f_div_scalar(remaining)?; // [d, n]
            let dw = solve(i, &keys, &resid)?;
            let delta = WeightDelta::Dense {
                target: WeightId::MlpOut(Layer(layer)),
                delta: dw,
            };
            self.undos.push(model.apply(&delta)?);
            self.deltas.push(delta);
            progress::report(progress, setup.layers_progress(i + 1))?;
        }
        if spec.keys_after {
            // With every layer changed, as the reference's `cache_c` update sees the model.
            for &layer in spec.layers {
                self.keys_after.push(request_keys(&*model, layer, prompts)?);
            }
        }
        Ok(())
    }
}
