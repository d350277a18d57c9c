//! The optimisation of δ (ROME's v*, MEMIT's z): a vector added at `hook_mlp_out` of one
//! block at each rewriting prompt's subject so that the model continues the request with its
//! target (reference §2.5: NLL + KL("{} is a") + weight decay, Adam, norm clamp, early
//! stop), split by step: the rewriting prompts and what the loss reads
//! ([`Rewriting`]), the pass of one step in either schedule ([`Pass`]), the loss
//! ([`LossTerms`]), and the Adam step with its clamp ([`descend`]).

use gpt_core::intervention::Sites;
use gpt_core::tch::{Kind, Tensor};
use gpt_core::{
    target_tokens, BaseRun, BlocksInput, CacheHook, ForwardOptions, HookPoint, KvCache, NoHooks,
    Padding, ResumableModel, SiteWrite, TokenBatch, Tokenizer,
};

use crate::adam::Adam;
use crate::error::{Error, Result};
use crate::hparams::RomeHparams;
use crate::request::RewriteRequest;
use crate::rome::{locate, Located, Schedule};

/// What [`optimize_delta`] fits.
pub(crate) struct DeltaSpec<'a> {
    /// Tokenises the target and the KL prompt.
    pub tokenizer: &'a Tokenizer,
    /// The rewrite.
    pub request: &'a RewriteRequest,
    /// Steps, learning rate, KL factor, weight decay, clamp, early stop.
    pub hp: &'a RomeHparams,
    /// The templates filled with the request (the first is the bare prompt).
    pub key_prompts: &'a [Located],
    /// Where the value before the edit is read (`[batch, pos, d_model]`, in block `layer`):
    /// `hook_mlp_out` for ROME, `hook_resid_post` for MEMIT.
    pub point: HookPoint,
    /// The block at whose `hook_mlp_out` δ is added.
    pub layer: usize,
    /// Fast or naive.
    pub schedule: Schedule,
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

/// Optimises δ for one request (see the module documentation); `on_step` as in
/// [`optimize_deltas`].
pub(crate) fn optimize_delta<M: ResumableModel + ?Sized>(
    model: &M,
    spec: &DeltaSpec<'_>,
    on_step: &mut dyn FnMut(FitStep) -> Result<()>,
) -> Result<DeltaFit> {
    optimize_deltas(model, std::slice::from_ref(spec), on_step)?
        .pop()
        .ok_or_else(|| Error::InvalidInput("no request to fit".into()))
}

/// Where a fit stands after a step: what [`optimize_deltas`] tells its caller after every
/// optimisation step (its error stops the fit: how a caller cancels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FitStep {
    /// Steps taken (of at most `v_num_grad_steps`).
    pub steps: usize,
    /// Requests done (early-stopped or at the last step).
    pub finished: usize,
}

/// One request's optimisation state.
struct Fit {
    delta: Tensor,
    adam: Adam,
    target_init: Option<Tensor>,
    kl_init: Option<Tensor>,
    losses: Vec<f64>,
    done: bool,
}

/// Optimises one δ per spec, all requests' rewriting and KL prompts in one padded batch per
/// step (the fast schedule's base run shared), each request stopping at its own early-stop
/// loss and then leaving the batch. The specs must share the hyperparameters, hook point,
/// layer and schedule (one method's call); each δ's loss, gradient, Adam state and clamp are
/// its own — rows of a batch do not interact — so the results are those of one request at a
/// time, up to the rounding of a differently padded batch. `on_step` hears after every step
/// how many steps were taken and how many requests are done (its error stops the fit).
pub(crate) fn optimize_deltas<M: ResumableModel + ?Sized>(
    model: &M,
    specs: &[DeltaSpec<'_>],
    on_step: &mut dyn FnMut(FitStep) -> Result<()>,
) -> Result<Vec<DeltaFit>> {
    let Some(first) = specs.first() else {
        return Ok(Vec::new());
    };
    if let Some(i) = specs.iter().position(|s| {
        s.point != first.point || s.layer != first.layer || s.schedule != first.schedule
    }) {
        return Err(Error::InvalidInput(format!(
            "request {i} is fitted at another site than request 0: one batch fits one site"
        )));
    }
    let hp = first.hp;
    let parts = specs
        .iter()
        .map(|s| FactRows::new(s))
        .collect::<Result<Vec<_>>>()?;
    let d_model = model.config().d_model as i64;
    let mut fits = parts
        .iter()
        .map(|_| -> Result<Fit> {
            let delta = Tensor::f_zeros([d_model], (Kind::Float, model.device()))?
                .f_set_requires_grad(true)?;
            let adam = Adam::new(&delta, hp.v_lr)?;
            Ok(Fit {
                delta,
                adam,
                target_init: None,
                kl_init: None,
                losses: Vec::new(),
                done: false,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut step = 0;
    while step < hp.v_num_grad_steps {
        let active: Vec<usize> = (0..fits.len()).filter(|&i| !fits[i].done).collect();
        if active.is_empty() {
            break;
        }
        // One batch (and one base run) while the same requests are in it.
        let chosen: Vec<&FactRows> = active.iter().map(|&i| &parts[i]).collect();
        let prompts = Rewriting::join(model, &chosen)?;
        let pass = Pass::new(model, &prompts, first)?;
        while step < hp.v_num_grad_steps {
            let left = fit_step(
                model, first, specs, &parts, &mut fits, &active, &prompts, &pass, step,
            )?;
            step += 1;
            on_step(FitStep {
                steps: step,
                finished: fits.iter().filter(|f| f.done).count(),
            })?;
            if left < active.len() {
                break;
            }
        }
    }
    fits.into_iter()
        .map(|fit| {
            let target_init = fit
                .target_init
                .ok_or(gpt_core::Error::NoSuchHookPoint { point: first.point })?;
            Ok(DeltaFit {
                target_init,
                delta: fit.delta.f_detach()?,
                losses: fit.losses,
            })
        })
        .collect()
}

/// One step of every request in `active` (the batch `prompts` runs through `pass`): each
/// request's loss, and an Adam step for those not done; returns how many are still going.
#[allow(clippy::too_many_arguments)]
fn fit_step<M: ResumableModel + ?Sized>(
    model: &M,
    first: &DeltaSpec<'_>,
    specs: &[DeltaSpec<'_>],
    parts: &[FactRows],
    fits: &mut [Fit],
    active: &[usize],
    prompts: &Rewriting,
    pass: &Pass<'_>,
    step: usize,
) -> Result<usize> {
    let hp = first.hp;
    let deltas: Vec<Tensor> = active
        .iter()
        .map(|&i| fits[i].delta.shallow_clone())
        .collect();
    let values = Tensor::f_stack(&deltas, 0)?.f_index_select(0, &prompts.row_fact)?;
    let (logp, recorded) = pass.log_probs(model, first, &values)?;
    let mut total: Option<Tensor> = None;
    let mut stepping = Vec::new();
    for (k, &i) in active.iter().enumerate() {
        let fit = &mut fits[i];
        if fit.target_init.is_none() {
            fit.target_init = Some(recorded.f_select(0, k as i64)?.f_detach()?);
        }
        let init_norm = fit
            .target_init
            .as_ref()
            .map_or(Ok(1.0), |t| t.f_norm().and_then(|n| n.f_double_value(&[])))?;
        let part = &parts[i];
        let own = logp.f_narrow(0, prompts.read_start[k], part.reads())?;
        let loss =
            LossTerms::new(part, &own, &mut fit.kl_init, hp)?.total(&fit.delta, init_norm)?;
        let loss_value = loss.f_double_value(&[])?;
        fit.losses.push(loss_value);
        if !loss_value.is_finite() {
            return Err(gpt_core::Error::NonFinite {
                what: format!(
                    "the v* loss of request {i} (target {:?}) at step {step}",
                    specs[i].request.target
                ),
                count: 1,
            }
            .into());
        }
        if loss_value < hp.early_stop_loss || step + 1 == hp.v_num_grad_steps {
            fit.done = true;
            continue;
        }
        stepping.push((i, hp.clamp_norm_factor * init_norm));
        total = Some(match total {
            Some(t) => t.f_add(&loss)?,
            None => loss,
        });
    }
    if let Some(total) = total {
        // Each loss depends on its own δ only, so one backward pass of the sum gives every
        // δ its own gradient.
        let leaves: Vec<&Tensor> = stepping.iter().map(|(i, _)| &fits[*i].delta).collect();
        let grads = Tensor::f_run_backward(&[&total], &leaves, false, false)?;
        for ((i, max_norm), grad) in stepping.iter().zip(grads) {
            let fit = &mut fits[*i];
            descend(&mut fit.adam, &mut fit.delta, &grad, *max_norm)?;
        }
    }
    Ok(stepping.len())
}

/// One request's rewriting prompts (each template with the prompt and the target's first
/// `T − 1` tokens) and its KL prompt (`"{subject} is a"`, last), with the positions its
/// loss reads: rewriting prompt `i` predicts target token `j` at (`i`, `len_i − T + j`);
/// the KL row reads its subject position.
struct FactRows {
    rows: Vec<Located>,
    n_rewrite: usize,
    /// Target tokens `T`.
    t_len: usize,
    /// The target's tokens.
    target: Vec<i64>,
}

impl FactRows {
    fn new(spec: &DeltaSpec<'_>) -> Result<Self> {
        let target = target_tokens(spec.tokenizer, &spec.request.target)?;
        let t_len = target.len();
        let mut rows: Vec<Located> = spec
            .key_prompts
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
            ..spec.request.clone()
        };
        rows.push(locate(spec.tokenizer, "{}", &kl_request)?);
        let n_rewrite = rows.len() - 1;
        Ok(Self {
            rows,
            n_rewrite,
            t_len,
            target,
        })
    }

    /// Reads of this request's loss: `n_rewrite · T` target tokens, then the KL row.
    fn reads(&self) -> i64 {
        (self.n_rewrite * self.t_len + 1) as i64
    }
}

/// The rows of the requests of one step as one right-padded batch, request after request,
/// with where each request's rows and reads are.
struct Rewriting {
    rows: Vec<Located>,
    batch: TokenBatch,
    /// `[rows]`: the request (index in the batch) of each row.
    row_fact: Tensor,
    /// Each request's first row (its bare prompt).
    first_rows: Vec<i64>,
    /// Each request's first read.
    read_start: Vec<i64>,
    read_rows: Vec<i64>,
    read_pos: Vec<i64>,
}

impl Rewriting {
    fn join<M: ResumableModel + ?Sized>(model: &M, parts: &[&FactRows]) -> Result<Self> {
        let device = model.device();
        let mut rows: Vec<Located> = Vec::new();
        let (mut row_fact, mut first_rows, mut read_start) = (Vec::new(), Vec::new(), Vec::new());
        let (mut read_rows, mut read_pos) = (Vec::new(), Vec::new());
        for (k, part) in parts.iter().enumerate() {
            let offset = rows.len();
            first_rows.push(offset as i64);
            read_start.push(read_rows.len() as i64);
            for (i, r) in part.rows.iter().enumerate().take(part.n_rewrite) {
                for j in 0..part.t_len {
                    read_rows.push((offset + i) as i64);
                    read_pos.push((r.ids.len() - part.t_len + j) as i64);
                }
            }
            read_rows.push((offset + part.n_rewrite) as i64);
            read_pos.push(part.rows[part.n_rewrite].subject_last as i64);
            rows.extend(part.rows.iter().cloned());
            row_fact.extend(std::iter::repeat_n(k as i64, part.rows.len()));
        }
        let seqs: Vec<Vec<i64>> = rows.iter().map(|r| r.ids.clone()).collect();
        let batch = TokenBatch::pad(&seqs, Padding::Right, 0, device)?;
        Ok(Self {
            rows,
            batch,
            row_fact: Tensor::f_from_slice(&row_fact)?.f_to_device(device)?,
            first_rows,
            read_start,
            read_rows,
            read_pos,
        })
    }
}

/// How one step runs, and where δ goes and the loss reads in its coordinates.
struct Pass<'p> {
    /// `Some` for the fast schedule.
    resumed: Option<Resumed>,
    batch: &'p TokenBatch,
    /// Each row's subject token (position 0 of the suffix when resumed).
    lookup: Sites,
    read_rows: Tensor,
    read_pos: Tensor,
    /// Where each request's bare prompt's value before the edit is read: rows and positions.
    init_rows: Tensor,
    init_pos: Tensor,
}

impl<'p> Pass<'p> {
    fn new<M: ResumableModel + ?Sized>(
        model: &M,
        prompts: &'p Rewriting,
        spec: &DeltaSpec<'_>,
    ) -> Result<Self> {
        let device = model.device();
        let rows = &prompts.rows;
        let tensor =
            |v: &[i64]| -> Result<Tensor> { Ok(Tensor::f_from_slice(v)?.f_to_device(device)?) };
        let read_rows = tensor(&prompts.read_rows)?;
        let init_rows = tensor(&prompts.first_rows)?;
        let pass = match spec.schedule {
            Schedule::Fast => {
                let resumed = Resumed::prepare(model, &prompts.batch, rows, spec.layer)?;
                let read_pos = resumed.shift(&prompts.read_rows, &prompts.read_pos);
                Self {
                    lookup: Sites::per_row(vec![0; rows.len()]),
                    read_pos: tensor(&read_pos)?,
                    init_pos: tensor(&vec![0; prompts.first_rows.len()])?,
                    init_rows,
                    resumed: Some(resumed),
                    batch: &prompts.batch,
                    read_rows,
                }
            }
            Schedule::Naive => {
                let init_pos: Vec<i64> = prompts
                    .first_rows
                    .iter()
                    .map(|&r| rows[r as usize].subject_last as i64)
                    .collect();
                Self {
                    resumed: None,
                    batch: &prompts.batch,
                    lookup: Sites::per_row(rows.iter().map(|r| r.subject_last as i64)),
                    read_rows,
                    read_pos: tensor(&prompts.read_pos)?,
                    init_pos: tensor(&init_pos)?,
                    init_rows,
                }
            }
        };
        Ok(pass)
    }

    /// One pass with `values` (`[rows, d_model]`: each row's request's δ) added:
    /// log-probabilities at the read positions, `[reads, vocab]`, and each request's bare
    /// prompt's value at `spec.point` as recorded (before δ where it is added later),
    /// `[requests, d_model]`.
    fn log_probs<M: ResumableModel + ?Sized>(
        &self,
        model: &M,
        spec: &DeltaSpec<'_>,
        values: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let point = spec.point;
        let mut record = CacheHook::new(|p| p == point);
        let add = SiteWrite::add(
            HookPoint::mlp_out(spec.layer),
            self.lookup.clone(),
            values.shallow_clone(),
        );
        let mut hooks = (&mut record, add);
        let index = [Some(&self.read_rows), Some(&self.read_pos)];
        let logp = match &self.resumed {
            Some(resumed) => {
                let layers = spec.layer..model.config().n_layers;
                let out = model
                    .forward_blocks(resumed.input(layers), &mut hooks)?
                    .resid()?;
                model.unembed(&out.f_index(&index)?)?
            }
            None => {
                let options = ForwardOptions::all();
                let logits = model
                    .forward_with(self.batch, options, &mut hooks)?
                    .logits()?;
                logits.f_index(&index)?
            }
        }
        .f_log_softmax(-1, Kind::Float)?;
        drop(hooks);
        let recorded = record
            .cache
            .try_get(point)?
            .f_index(&[Some(&self.init_rows), Some(&self.init_pos)])?;
        Ok((logp, recorded))
    }
}

/// The loss of one step: the target's NLL over the rewriting prompts and the KL divergence
/// of the KL prompt's distribution from its first-step value.
struct LossTerms {
    nll: Tensor,
    kl: Tensor,
    weight_decay: f64,
}

impl LossTerms {
    /// `kl_init` is set at the first step.
    fn new(
        part: &FactRows,
        logp: &Tensor,
        kl_init: &mut Option<Tensor>,
        hp: &RomeHparams,
    ) -> Result<Self> {
        let n_reads = (part.n_rewrite * part.t_len) as i64;
        // `[n_rewrite · T, 1]`: the target token each rewriting read predicts.
        let target_ids = Tensor::f_from_slice(&part.target)?
            .f_to_device(logp.device())?
            .f_repeat([part.n_rewrite as i64])?
            .f_unsqueeze(1)?;
        let nll = logp
            .f_narrow(0, 0, n_reads)?
            .f_gather(1, &target_ids, false)?
            .f_neg()?
            .f_mean(Kind::Float)?; // mean over prompts of the per-token mean = same as ROME
        let kl_cur = logp.f_narrow(0, n_reads, 1)?;
        let kl_init_lp = match kl_init {
            Some(k) => k.shallow_clone(),
            None => {
                let k = kl_cur.f_detach()?;
                *kl_init = Some(k.shallow_clone());
                k
            }
        };
        // KL(P_cur ‖ P_init) = Σ p_cur (log p_cur − log p_init).
        let kl = kl_cur
            .f_exp()?
            .f_mul(&kl_cur.f_sub(&kl_init_lp)?)?
            .f_sum(Kind::Float)?
            .f_mul_scalar(hp.kl_factor)?;
        Ok(Self {
            nll,
            kl,
            weight_decay: hp.v_weight_decay,
        })
    }

    /// NLL + KL + weight decay `‖δ‖ · wd / ‖v₀‖²`.
    fn total(&self, delta: &Tensor, init_norm: f64) -> Result<Tensor> {
        let wd = delta
            .f_norm()?
            .f_mul_scalar(self.weight_decay / (init_norm * init_norm).max(1e-12))?;
        Ok(self.nll.f_add(&self.kl)?.f_add(&wd)?)
    }
}

/// One Adam step on δ from its gradient, then δ projected back into the ball of radius
/// `max_norm`.
fn descend(adam: &mut Adam, delta: &mut Tensor, grad: &Tensor, max_norm: f64) -> Result<()> {
    adam.step(delta, grad)?;
    let norm = delta.f_norm()?.f_double_value(&[])?;
    if norm > max_norm {
        gpt_core::tch::no_grad(|| -> Result<()> {
            let _ = delta.f_mul_scalar_(max_norm / norm)?;
            Ok(())
        })?;
    }
    Ok(())
}

/// The fixed part of the fast schedule. δ is added at each row's subject token `s`, so
/// nothing before `s` changes (attention is causal) and nothing below block `L` changes: the
/// keys and values of positions `< s` and the residual entering block `L` at positions `≥ s`
/// come from one [`BaseRun`], and each step runs only the positions from `s` on (the
/// "suffix", right-padded to the longest) through blocks `L..`, attending to the cached
/// prefix. Unlike the lanes of [`gpt_core::lanes`] (one prompt, many edits, each from its
/// own block, the last position read, no gradient), all rows here are different prompts
/// with the same edit at the same block, cached prefixes of different lengths, many read
/// positions, and gradients: only the base run is shared.
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
    /// One pass without gradients over the whole (right-padded) batch.
    fn prepare<M: ResumableModel + ?Sized>(
        model: &M,
        batch: &TokenBatch,
        rows: &[Located],
        layer: usize,
    ) -> Result<Self> {
        let _guard = gpt_core::tch::no_grad_guard();
        let device = model.device();
        let base = BaseRun::new(model, batch, &mut NoHooks, &|_| false)?;
        let full = base.entering(layer)?; // [rows, T, d]
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
        Ok(Self {
            resid,
            positions,
            past: base.past(p as usize)?,
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
