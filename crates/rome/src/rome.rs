//! ROME (Meng et al. 2022): context templates, the key `k*`, the value `v*` by optimisation,
//! and the rank-one update (reference §2.3–§2.8).

use gpt_core::intervention::{read_sites, StopAt};
use gpt_core::tch::{Device, Kind, Tensor};
use gpt_core::{
    generate, target_tokens, CacheHook, EditableModel, GenerateOptions, HookPoint, Layer, Padding,
    ResumableModel, Sampling, Sites, TokenBatch, Tokenizer, WeightDelta, WeightId,
};

use crate::delta::{optimize_delta, DeltaSpec};
use crate::error::{Error, Result};
use crate::hparams::{RomeHparams, RomeVariant};
use crate::request::RewriteRequest;
use crate::update::rank_one_update;
use gpt_core::progress::{self, Progress, ProgressFn};

/// Words the generated context templates start from (MEMIT / EasyEdit's variant of §2.3,
/// which works for any tokenizer).
const TEMPLATE_STARTS: [&str; 5] = ["The", "Therefore", "Because", "I", "You"];

/// ROME's context templates: `"{}"` plus, for each `(length, count)`, `count` texts of about
/// `length` tokens sampled from the model (top-k 5, seeded) followed by `". {}"`.
///
/// # Errors
/// Tokenizer and model errors.
pub fn context_templates(
    model: &dyn gpt_core::HookableModel,
    tokenizer: &Tokenizer,
    length_params: &[(usize, usize)],
    seed: u64,
) -> Result<Vec<String>> {
    let _guard = gpt_core::tch::no_grad_guard();
    let mut templates = vec!["{}".to_string()];
    let mut draw = seed;
    for &(length, count) in length_params {
        for i in 0..count {
            let start = TEMPLATE_STARTS[i % TEMPLATE_STARTS.len()];
            let ids = tokenizer.encode(start)?.ids;
            let options = GenerateOptions {
                max_new_tokens: length.saturating_sub(ids.len()).max(1),
                sampling: Sampling::TopK {
                    k: 5,
                    temperature: 1.0,
                    seed: draw,
                },
                stop_tokens: Vec::new(),
            };
            draw = draw.wrapping_add(1);
            let new = generate(model, &ids, &options)?;
            let text = tokenizer.decode(&[ids, new].concat())?;
            let text: String = text
                .replace(['{', '}'], "")
                .replace("\n\n", " ")
                .replace('\n', " ");
            templates.push(format!("{}. {{}}", text.trim()));
        }
    }
    Ok(templates)
}

/// One prompt of a batch, as token ids, with the index of its subject's last token.
#[derive(Clone, Debug)]
pub(crate) struct Located {
    pub ids: Vec<i64>,
    pub subject_last: usize,
}

/// Tokenises `template.format(prompt).format(subject)` and finds the subject's last token
/// (by characters, at the position the prompt puts it, not an earlier chance occurrence).
pub(crate) fn locate(
    tokenizer: &Tokenizer,
    template: &str,
    request: &RewriteRequest,
) -> Result<Located> {
    let (t_pre, t_post) = template.split_once("{}").unwrap_or((template, ""));
    let (p_pre, p_post) = request
        .prompt
        .split_once("{}")
        .unwrap_or((request.prompt.as_str(), ""));
    let text = format!("{t_pre}{p_pre}{}{p_post}{t_post}", request.subject);
    let start = t_pre.chars().count() + p_pre.chars().count();
    let chars = start..start + request.subject.chars().count();
    let enc = tokenizer.encode(&text)?;
    let range = enc
        .token_range(chars)
        .ok_or_else(|| gpt_core::Error::SubjectNotFound {
            subject: request.subject.clone(),
            prompt: text.clone(),
            occurrence: 0,
            occurrences: 0,
        })?;
    Ok(Located {
        ids: enc.ids,
        subject_last: range.end - 1,
    })
}

/// The activations at `points` (in execution order) at each prompt's subject token, each
/// `[n, ..]`: one batched pass, stopped after the last of them.
pub(crate) fn at_subjects<M: ResumableModel + ?Sized>(
    model: &M,
    prompts: &[Located],
    points: &[HookPoint],
) -> Result<Vec<Tensor>> {
    let _guard = gpt_core::tch::no_grad_guard();
    let seqs: Vec<Vec<i64>> = prompts.iter().map(|p| p.ids.clone()).collect();
    let batch = TokenBatch::pad(&seqs, Padding::Right, 0, model.device())?;
    let sites = Sites::per_row(prompts.iter().map(|p| p.subject_last as i64));
    let last = points.iter().copied().max().unwrap_or(HookPoint::Embed);
    let mut hooks = (CacheHook::new(|p| points.contains(&p)), StopAt(last));
    let _ = model.forward_hooked(&batch, &mut hooks)?;
    let cache = hooks.0.into_cache();
    points
        .iter()
        .map(|&p| Ok(read_sites(p, cache.try_get(p)?, &sites)?))
        .collect()
}

/// Keys (`mlp.hook_post`) and values (`hook_mlp_out`) of `layer` at each prompt's subject
/// token: `([n, d_mlp], [n, d_model])`.
pub(crate) fn keys_and_values<M: ResumableModel + ?Sized>(
    model: &M,
    layer: usize,
    prompts: &[Located],
) -> Result<(Tensor, Tensor)> {
    let mut found = at_subjects(
        model,
        prompts,
        &[HookPoint::mlp_post(layer), HookPoint::mlp_out(layer)],
    )?
    .into_iter();
    match (found.next(), found.next()) {
        (Some(keys), Some(values)) => Ok((keys, values)),
        _ => Err(gpt_core::Error::NoSuchHookPoint {
            point: HookPoint::mlp_out(layer),
        }
        .into()),
    }
}

pub use gpt_core::Schedule;

/// The result of one ROME edit: the weight change and how it was found.
#[derive(Debug)]
pub struct RomeEdit {
    /// The rank-one change of `blocks.{L}.mlp.W_out`.
    pub delta: WeightDelta,
    /// `[d_model]`: the value written.
    pub v_star: Tensor,
    /// `[d_mlp]`: the template-averaged key.
    pub k_star: Tensor,
    /// The loss at each optimisation step.
    pub losses: Vec<f64>,
    /// `‖ΔW‖_F`.
    pub delta_norm: f64,
    /// The context templates used.
    pub templates: Vec<String>,
}

/// The key second moment the update uses, `[d_mlp, d_mlp]` f64 on the CPU: `c` with
/// `mom2_adjustment`, else the identity.
fn update_moment(hp: &RomeHparams, c: Option<&Tensor>, d_mlp: i64) -> Result<Tensor> {
    let c = match (hp.mom2_adjustment, c) {
        (true, Some(c)) => c.f_to_kind(Kind::Double)?,
        (true, None) => {
            return Err(Error::InvalidInput(
                "mom2_adjustment needs the key statistics C".into(),
            ))
        }
        (false, _) => Tensor::f_eye(d_mlp, (Kind::Double, Device::Cpu))?,
    };
    Ok(c.f_to_device(Device::Cpu)?)
}

/// The progress stage of [`compute_rome`]: one unit per optimisation step of v* (at most
/// `v_num_grad_steps`; fewer when the loss stops early).
pub const V_STAGE: &str = "v* optimisation";

/// Computes one ROME edit of `request` (never changing the model): the weight change of
/// `blocks.{hp.layer}.mlp.W_out` that makes the model continue the request's prompt with
/// its target. `c` is the key second moment `E[k kᵀ]` of that layer (`None` with
/// `mom2_adjustment` off); `templates` are the context templates
/// ([`context_templates`]).
///
/// `progress` hears [`V_STAGE`] before the first optimisation step of v* and after each.
///
/// # Errors
/// A malformed request, a target that tokenises to nothing, a layer out of range, a
/// singular `C`, model errors; [`Error::Cancelled`] when `progress` stops it.
#[allow(clippy::too_many_arguments)]
pub fn compute_rome<M: EditableModel + ResumableModel + ?Sized>(
    model: &M,
    tokenizer: &Tokenizer,
    request: &RewriteRequest,
    hp: &RomeHparams,
    c: Option<&Tensor>,
    templates: &[String],
    schedule: Schedule,
    progress: &mut ProgressFn<'_>,
) -> Result<RomeEdit> {
    request.validate()?;
    let config = model.config();
    hp.validate(config.n_layers)?;
    if hp.mom2_adjustment && c.is_none() {
        return Err(Error::InvalidInput(
            "mom2_adjustment needs the key statistics C of the layer".into(),
        ));
    }
    let layer = hp.layer;
    // A target that tokenises to nothing is refused before any work.
    target_tokens(tokenizer, &request.target)?;

    // Keys and values at the subject over the templates: k* and the current outputs.
    let key_prompts = templates
        .iter()
        .map(|t| locate(tokenizer, t, request))
        .collect::<Result<Vec<_>>>()?;
    let (keys, values) = keys_and_values(model, layer, &key_prompts)?;
    let k_star = keys.f_mean_dim(0, false, Kind::Double)?;
    let bare_key = keys.f_select(0, 0)?.f_to_kind(Kind::Double)?;

    let at = |steps: usize| {
        Progress::new(
            V_STAGE,
            steps as u64,
            Some(hp.v_num_grad_steps as u64),
            "steps",
        )
    };
    progress::report(progress, at(0))?;
    let fit = optimize_delta(
        model,
        &DeltaSpec {
            tokenizer,
            request,
            hp,
            key_prompts: &key_prompts,
            point: HookPoint::mlp_out(layer),
            layer,
            schedule,
        },
        &mut |fit| Ok(progress::report(progress, at(fit.steps))?),
    )?;
    let (target_init, delta, losses) = (fit.target_init, fit.delta, fit.losses);
    let v_star = target_init.f_add(&delta)?.f_to_kind(Kind::Double)?;

    let c = update_moment(hp, c, config.d_mlp as i64)?;
    let k_star_cpu = k_star.f_to_device(Device::Cpu)?;
    let (k, residual) = match hp.variant {
        // W′k = v* at the bare prompt's key: the residual there is δ.
        RomeVariant::Original => (bare_key, delta.f_to_kind(Kind::Double)?),
        // W′k* = v*: the residual at k* is v* minus the template-averaged output.
        RomeVariant::RRome => {
            let mean_out = values.f_mean_dim(0, false, Kind::Double)?;
            (k_star.shallow_clone(), v_star.f_sub(&mean_out)?)
        }
    };
    let update = rank_one_update(
        &c,
        &k_star_cpu,
        &k.f_to_device(Device::Cpu)?,
        &residual.f_to_device(Device::Cpu)?,
    )?;
    let delta_norm = update.frobenius_norm()?;
    Ok(RomeEdit {
        delta: update.into_delta(WeightId::MlpOut(Layer(layer))),
        v_star,
        k_star,
        losses,
        delta_norm,
        templates: templates.to_vec(),
    })
}
