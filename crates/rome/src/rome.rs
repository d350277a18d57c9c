//! ROME (Meng et al. 2022): context templates, the key `k*`, the value `v*` by optimisation,
//! and the rank-one update (reference §2.3–§2.8).

use gpt_core::intervention::{read_sites, StopAt};
use gpt_core::tch::{Device, Kind, Tensor};
use gpt_core::{
    generate, target_tokens, BlocksInput, CacheHook, EditableModel, ForwardOptions,
    GenerateOptions, HookPoint, KvCache, Layer, Padding, ResumableModel, Sampling, SiteWrite,
    Sites, TokenBatch, Tokenizer, WeightDelta, WeightId,
};

use crate::adam::Adam;
use crate::error::{Error, Result};
use crate::hparams::{RomeHparams, RomeVariant};
use crate::request::RewriteRequest;
use crate::update::rank_one_update;

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

/// How v* is optimised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum VSchedule {
    /// Everything δ cannot change is computed once: the keys and values of the tokens before
    /// each prompt's subject and the residual entering block `L`. Each step runs only the
    /// tokens from the subject on through blocks `L..` (and backpropagates through them) and
    /// unembeds only the positions the loss reads.
    #[default]
    Fast,
    /// Every step runs the whole model and unembeds every position, as the reference does:
    /// the oracle of [`VSchedule::Fast`].
    Naive,
}

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

/// Computes one ROME edit of `request` (never changing the model): the weight change of
/// `blocks.{hp.layer}.mlp.W_out` that makes the model continue the request's prompt with
/// its target. `c` is the key second moment `E[k kᵀ]` of that layer (`None` with
/// `mom2_adjustment` off); `templates` are the context templates
/// ([`context_templates`]).
///
/// # Errors
/// A malformed request, a target that tokenises to nothing, a layer out of range, a
/// singular `C`, model errors.
pub fn compute_rome<M: EditableModel + ResumableModel + ?Sized>(
    model: &M,
    tokenizer: &Tokenizer,
    request: &RewriteRequest,
    hp: &RomeHparams,
    c: Option<&Tensor>,
    templates: &[String],
    schedule: VSchedule,
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

    let fit = optimize_delta(
        model,
        tokenizer,
        request,
        hp,
        &key_prompts,
        HookPoint::mlp_out(layer),
        layer,
        schedule,
    )?;
    let (target_init, delta, losses) = (fit.target_init, fit.delta, fit.losses);
    let v_star = target_init.f_add(&delta)?.f_to_kind(Kind::Double)?;

    let d_mlp = config.d_mlp as i64;
    let c = match (hp.mom2_adjustment, c) {
        (true, Some(c)) => c.f_to_kind(Kind::Double)?,
        (true, None) => {
            return Err(Error::InvalidInput(
                "mom2_adjustment needs the key statistics C".into(),
            ))
        }
        (false, _) => Tensor::f_eye(d_mlp, (Kind::Double, Device::Cpu))?,
    }
    .f_to_device(Device::Cpu)?;
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

/// What [`optimize_delta`] found: the value at the edited site before the edit, the
/// optimised change, and the loss per step.
pub(crate) struct DeltaFit {
    /// `[d_model]`: the activation at `point` for the bare prompt's subject, before the edit.
    pub target_init: Tensor,
    /// `[d_model]`: the optimised δ.
    pub delta: Tensor,
    /// The loss at each step.
    pub losses: Vec<f64>,
}

/// Optimises a vector δ added at `point` (a `[batch, pos, d_model]` site of block `layer`)
/// at each rewriting prompt's subject so that the model continues `request` with its target
/// (ROME's v*, MEMIT's z: NLL + KL("{} is a") + weight decay, Adam, norm clamp, early stop).
/// `key_prompts` are the templates filled with the request (the first is the bare prompt).
#[allow(clippy::too_many_arguments)]
pub(crate) fn optimize_delta<M: ResumableModel + ?Sized>(
    model: &M,
    tokenizer: &Tokenizer,
    request: &RewriteRequest,
    hp: &RomeHparams,
    key_prompts: &[Located],
    point: HookPoint,
    layer: usize,
    schedule: VSchedule,
) -> Result<DeltaFit> {
    let config = model.config();
    let device = model.device();
    let target = target_tokens(tokenizer, &request.target)?;
    let t_len = target.len();
    // Rewriting prompts: each template with the prompt and the target's first T−1 tokens,
    // then "{subject} is a" for the KL term.
    let mut rows: Vec<Located> = key_prompts
        .iter()
        .map(|p| {
            let mut ids = p.ids.clone();
            ids.extend_from_slice(&target[..t_len - 1]);
            Located {
                ids,
                subject_last: p.subject_last,
            }
        })
        .collect();
    let kl_request = RewriteRequest {
        prompt: "{} is a".into(),
        ..request.clone()
    };
    rows.push(locate(tokenizer, "{}", &kl_request)?);
    let n_rewrite = rows.len() - 1;
    let seqs: Vec<Vec<i64>> = rows.iter().map(|r| r.ids.clone()).collect();
    let batch = TokenBatch::pad(&seqs, Padding::Right, 0, device)?;
    let lookup = Sites::per_row(rows.iter().map(|r| r.subject_last as i64));

    // The positions the loss reads: rewriting prompt i predicts target j at
    // (len_i − T + j); the KL row reads its subject position.
    let mut read_rows = Vec::new();
    let mut read_pos = Vec::new();
    for (i, r) in rows.iter().enumerate().take(n_rewrite) {
        for j in 0..t_len {
            read_rows.push(i as i64);
            read_pos.push((r.ids.len() - t_len + j) as i64);
        }
    }
    read_rows.push(n_rewrite as i64);
    read_pos.push(rows[n_rewrite].subject_last as i64);
    let read_rows_t = Tensor::f_from_slice(&read_rows)?.f_to_device(device)?;
    let read_pos_t = Tensor::f_from_slice(&read_pos)?.f_to_device(device)?;
    let target_ids = Tensor::f_from_slice(&target)?
        .f_to_device(device)?
        .f_repeat([n_rewrite as i64])?
        .f_unsqueeze(1)?;

    let resumed = match schedule {
        VSchedule::Fast => Some(Resumed::prepare(model, &batch, &rows, layer)?),
        VSchedule::Naive => None,
    };
    // Where δ goes and where the loss reads, in the coordinates of the pass that runs.
    let (lookup, read_pos_t) = match &resumed {
        Some(r) => (
            Sites::per_row(vec![0; rows.len()]),
            Tensor::f_from_slice(&r.shift(&read_rows, &read_pos))?.f_to_device(device)?,
        ),
        None => (lookup, read_pos_t),
    };

    let d_model = config.d_model as i64;
    let mut delta =
        Tensor::f_zeros([d_model], (model.kind(), device))?.f_set_requires_grad(true)?;
    let mut adam = Adam::new(&delta, hp.v_lr)?;
    let mut target_init: Option<Tensor> = None;
    let mut kl_init: Option<Tensor> = None;
    let mut losses = Vec::new();
    for step in 0..hp.v_num_grad_steps {
        // Records the activation before δ is added (target_init), then adds δ.
        let mut record = CacheHook::new(|p| p == point);
        let add = SiteWrite::add(
            HookPoint::mlp_out(layer),
            lookup.clone(),
            delta.shallow_clone(),
        );
        let mut hooks = (&mut record, add);
        // Log-probabilities at the read positions, [reads, vocab].
        let logp = match &resumed {
            Some(resumed) => {
                let out = model
                    .forward_blocks(resumed.input(layer..config.n_layers), &mut hooks)?
                    .resid()?;
                let picked = out.f_index(&[Some(&read_rows_t), Some(&read_pos_t)])?;
                model.unembed(&picked)?
            }
            None => {
                let options = ForwardOptions::all();
                let logits = model.forward_with(&batch, options, &mut hooks)?.logits()?;
                logits.f_index(&[Some(&read_rows_t), Some(&read_pos_t)])?
            }
        }
        .f_log_softmax(-1, Kind::Float)?;
        drop(hooks);
        if target_init.is_none() {
            let out = record.cache.try_get(point)?;
            let at = if resumed.is_some() {
                0
            } else {
                rows[0].subject_last
            };
            target_init = Some(out.f_select(0, 0)?.f_select(0, at as i64)?.f_detach()?);
        }
        let n_reads = (n_rewrite * t_len) as i64;
        let nll = logp
            .f_narrow(0, 0, n_reads)?
            .f_gather(1, &target_ids, false)?
            .f_neg()?
            .f_mean(Kind::Float)?; // mean over prompts of the per-token mean = same as ROME
        let kl_cur = logp.f_narrow(0, n_reads, 1)?;
        let kl_init_lp = match &kl_init {
            Some(k) => k.shallow_clone(),
            None => {
                let k = kl_cur.f_detach()?;
                kl_init = Some(k.shallow_clone());
                k
            }
        };
        // KL(P_cur ‖ P_init) = Σ p_cur (log p_cur − log p_init).
        let kl = kl_cur
            .f_exp()?
            .f_mul(&kl_cur.f_sub(&kl_init_lp)?)?
            .f_sum(Kind::Float)?
            .f_mul_scalar(hp.kl_factor)?;
        let init_norm = target_init
            .as_ref()
            .map_or(Ok(1.0), |t| t.f_norm().and_then(|n| n.f_double_value(&[])))?;
        let wd = delta
            .f_norm()?
            .f_mul_scalar(hp.v_weight_decay / (init_norm * init_norm).max(1e-12))?;
        let loss = nll.f_add(&kl)?.f_add(&wd)?;
        let loss_value = loss.f_double_value(&[])?;
        losses.push(loss_value);
        if !loss_value.is_finite() {
            return Err(gpt_core::Error::NonFinite {
                what: format!("the v* loss at step {step}"),
                count: 1,
            }
            .into());
        }
        if loss_value < hp.early_stop_loss || step + 1 == hp.v_num_grad_steps {
            break;
        }
        let grads = Tensor::f_run_backward(&[&loss], &[&delta], false, false)?;
        let grad = grads
            .into_iter()
            .next()
            .ok_or_else(|| Error::InvalidInput("no gradient reached δ".into()))?;
        adam.step(&mut delta, &grad)?;
        // Project δ back into the ball of radius clamp·‖v₀‖.
        let max_norm = hp.clamp_norm_factor * init_norm;
        let norm = delta.f_norm()?.f_double_value(&[])?;
        if norm > max_norm {
            gpt_core::tch::no_grad(|| -> Result<()> {
                let _ = delta.f_mul_scalar_(max_norm / norm)?;
                Ok(())
            })?;
        }
    }
    let target_init = target_init.ok_or(gpt_core::Error::NoSuchHookPoint { point })?;
    Ok(DeltaFit {
        target_init,
        delta: delta.f_detach()?,
        losses,
    })
}

/// The fixed part of the fast v* schedule. δ is added at each row's subject token `s`, so
/// nothing before `s` changes (attention is causal) and nothing below block `L` changes: the
/// keys and values of positions `< s` and the residual entering block `L` at positions `≥ s`
/// are computed once, and each step runs only the positions from `s` on (the "suffix",
/// right-padded to the longest) through blocks `L..`, attending to the cached prefix.
struct Resumed {
    /// `[rows, S, d_model]`: the residual entering block `L` at each row's suffix.
    resid: Tensor,
    /// `[rows, S]`: the suffix's absolute positions (rotary needs them).
    positions: Tensor,
    /// Keys and values of the first `P = max s` positions (padding masked).
    past: Option<KvCache>,
    /// `[rows, P + S]`: which cached and suffix positions are real tokens.
    mask: Tensor,
    /// Each row's subject position `s` (the suffix's first token).
    starts: Vec<i64>,
}

impl Resumed {
    /// One pass without gradients over the whole (right-padded) batch, keeping the keys and
    /// values of every layer and the residual entering `layer`.
    fn prepare<M: ResumableModel + ?Sized>(
        model: &M,
        batch: &TokenBatch,
        rows: &[Located],
        layer: usize,
    ) -> Result<Self> {
        let _guard = gpt_core::tch::no_grad_guard();
        let device = model.device();
        let point = HookPoint::resid_pre(layer);
        let mut record = CacheHook::new(|p| p == point);
        let mut kv = KvCache::new();
        let options = ForwardOptions::last().with_cache(&mut kv);
        let _ = model.forward_with(batch, options, &mut record)?;
        let full = record.into_cache().try_get(point)?.shallow_clone(); // [rows, T, d]
        let (n, t, d) = full.size3()?;
        let starts: Vec<i64> = rows.iter().map(|r| r.subject_last as i64).collect();
        let lens: Vec<i64> = rows.iter().map(|r| r.ids.len() as i64).collect();
        let p = starts.iter().copied().max().unwrap_or(0);
        let s = starts
            .iter()
            .zip(&lens)
            .map(|(a, l)| l - a)
            .max()
            .unwrap_or(1);
        // Suffix position j of row r is token s_r + j (clamped inside the batch for padding).
        let mut index = Vec::with_capacity((n * s) as usize);
        let mut mask = Vec::with_capacity((n * (p + s)) as usize);
        for (&start, &len) in starts.iter().zip(&lens) {
            index.extend((0..s).map(|j| (start + j).min(t - 1)));
            mask.extend((0..p).map(|j| i64::from(j < start)));
            mask.extend((0..s).map(|j| i64::from(start + j < len)));
        }
        let index = Tensor::f_from_slice(&index)?
            .f_view([n, s])?
            .f_to_device(device)?;
        let resid = full.f_gather(
            1,
            &index.f_unsqueeze(-1)?.f_expand([n, s, d], false)?,
            false,
        )?;
        let positions = batch
            .positions
            .f_to_device(device)?
            .f_gather(1, &index, false)?;
        let mask = Tensor::f_from_slice(&mask)?
            .f_view([n, p + s])?
            .f_to_device(device)?;
        let past = if p > 0 {
            Some(kv.prefix(p as usize)?)
        } else {
            None
        };
        Ok(Self {
            resid,
            positions,
            past,
            mask,
            starts,
        })
    }

    /// The input of one step: the suffix through `layers`.
    fn input(&self, layers: std::ops::Range<usize>) -> BlocksInput<'_> {
        BlocksInput {
            layers,
            resid: self.resid.shallow_clone(),
            positions: self.positions.shallow_clone(),
            past: self.past.as_ref(),
            attention_mask: Some(self.mask.shallow_clone()),
            last_position_only: false,
        }
    }

    /// Positions of the full prompts (`rows[i]`, `pos[i]`) in suffix coordinates.
    fn shift(&self, rows: &[i64], pos: &[i64]) -> Vec<i64> {
        rows.iter()
            .zip(pos)
            .map(|(&r, &p)| p - self.starts.get(r as usize).copied().unwrap_or(0))
            .collect()
    }
}
