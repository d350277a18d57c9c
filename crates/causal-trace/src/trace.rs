//! One causal trace: a clean run, corrupted runs, and the restoration grid.

use std::cell::Cell;

use gpt_core::progress::{self, Progress, ProgressFn};
use gpt_core::tch::{Device, Kind, Tensor};
use gpt_core::{
    check_finite, ActivationCache, BaseRun, BlockSite, ForwardOptions, HookPoint, HookableModel,
    ResumableModel, TokenBatch, Tokenizer,
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::flops;
use crate::hooks::corrupt_embed;
use crate::metric::{Metric, TokenProb};
use crate::noise::Corruption;
use gpt_core::{SubjectPrompt, TokenText};

/// Which state is restored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceKind {
    /// The block output (`blocks.{l}.hook_resid_post`), one layer at a time.
    Hidden,
    /// MLP outputs (`blocks.{l}.hook_mlp_out`) over a window of layers around `l`.
    Mlp,
    /// Attention outputs (`blocks.{l}.hook_attn_out`) over a window of layers around `l`.
    Attn,
}

impl TraceKind {
    /// All three kinds.
    pub const ALL: [TraceKind; 3] = [TraceKind::Hidden, TraceKind::Mlp, TraceKind::Attn];

    /// `hidden`, `mlp` or `attn`.
    pub fn name(self) -> &'static str {
        match self {
            TraceKind::Hidden => "hidden",
            TraceKind::Mlp => "mlp",
            TraceKind::Attn => "attn",
        }
    }

    pub(crate) fn site(self) -> BlockSite {
        match self {
            TraceKind::Hidden => BlockSite::ResidPost,
            TraceKind::Mlp => BlockSite::MlpOut,
            TraceKind::Attn => BlockSite::AttnOut,
        }
    }
}

impl std::str::FromStr for TraceKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "hidden" => Ok(TraceKind::Hidden),
            "mlp" => Ok(TraceKind::Mlp),
            "attn" => Ok(TraceKind::Attn),
            other => Err(Error::InvalidInput(format!(
                "unknown trace kind `{other}` (hidden, mlp, attn)"
            ))),
        }
    }
}

/// Which module a severed trace freezes at its corrupted values (at the traced token, in
/// every layer), so the restored state cannot act through it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sever {
    /// Freeze the MLP outputs.
    Mlp,
    /// Freeze the attention outputs.
    Attn,
}

impl Sever {
    pub(crate) fn site(self) -> BlockSite {
        match self {
            Sever::Mlp => BlockSite::MlpOut,
            Sever::Attn => BlockSite::AttnOut,
        }
    }
}

pub use gpt_core::Schedule;

/// Which tokens get a row in the grid.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSelection {
    /// Every token.
    #[default]
    All,
    /// Only the last subject token.
    SubjectLast,
    /// These token indices.
    Indices(Vec<usize>),
}

/// What one grid restores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GridSpec {
    /// Restored state.
    pub kind: TraceKind,
    /// Window of layers for MLP / attention (ignored for hidden); ROME uses 10.
    pub window: usize,
    /// Rows of the grid.
    pub tokens: TokenSelection,
    /// Freeze a module at its corrupted values (hidden traces only).
    pub sever: Option<Sever>,
    /// Fast or naive.
    pub schedule: Schedule,
}

impl GridSpec {
    /// A full grid of `kind` with window 10 and the fast schedule.
    pub fn new(kind: TraceKind) -> Self {
        Self {
            kind,
            window: 10,
            tokens: TokenSelection::All,
            sever: None,
            schedule: Schedule::Fast,
        }
    }

    /// The progress stage of this grid's token rows: `"{kind} trace"`, e.g. `"mlp trace"`,
    /// and for a severed one e.g. `"hidden trace, mlp severed"`.
    pub fn stage(&self) -> String {
        match self.sever {
            None => format!("{} trace", self.kind.name()),
            Some(Sever::Mlp) => format!("{} trace, mlp severed", self.kind.name()),
            Some(Sever::Attn) => format!("{} trace, attn severed", self.kind.name()),
        }
    }

    /// The half-open window of layers restored for center `layer` (ROME's rule:
    /// `[max(0, l − w/2), min(L, l + ⌈w/2⌉))`), or just `layer` for hidden traces.
    pub fn layers_for(&self, layer: usize, n_layers: usize) -> std::ops::Range<usize> {
        match self.kind {
            TraceKind::Hidden => layer..layer + 1,
            TraceKind::Mlp | TraceKind::Attn => {
                let lo = layer.saturating_sub(self.window / 2);
                let hi = (layer + self.window.div_ceil(2)).min(n_layers);
                lo..hi
            }
        }
    }
}

/// The corrupted runs shared by every grid of one prompt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceSetup {
    /// Number of corrupted rows (ROME: 10).
    pub samples: usize,
    /// The corruption; relative levels need `sigma`.
    pub corruption: Corruption,
    /// σ for relative noise levels (see [`crate::noise::embedding_std`]).
    pub sigma: Option<f64>,
    /// Seed of the noise.
    pub seed: u64,
}

/// The result of one trace: scores per (token, layer), serialisable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceGrid {
    /// The prompt.
    pub prompt: String,
    /// The subject.
    pub subject: String,
    /// What was restored.
    pub kind: TraceKind,
    /// Window of layers (1 for hidden).
    pub window: usize,
    /// The frozen module of a severed trace.
    pub sever: Option<Sever>,
    /// Decoded tokens of the prompt.
    pub tokens: Vec<String>,
    /// Token ids of the prompt.
    pub token_ids: Vec<i64>,
    /// Half-open token range of the subject.
    pub subject_range: (usize, usize),
    /// The token index of each row of `scores`.
    pub rows: Vec<usize>,
    /// Number of layers (columns).
    pub n_layers: usize,
    /// `scores[row][layer]`: the metric with that state restored, mean over corrupted rows.
    pub scores: Vec<Vec<f64>>,
    /// The metric on the clean run ("high score").
    pub clean_score: f64,
    /// The metric on the corrupted runs, nothing restored ("low score").
    pub corrupted_score: f64,
    /// The clean prediction measured by the default metric.
    pub answer: TokenText,
    /// Name of the metric.
    pub metric: String,
    /// Number of corrupted rows.
    pub samples: usize,
    /// The corruption, with its absolute scale.
    pub noise: Corruption,
    /// Noise seed.
    pub seed: u64,
    /// Schedule that computed the grid.
    pub schedule: Schedule,
}

/// A prompt with its clean and corrupted runs done, ready to compute grids.
pub struct Tracer<'m> {
    pub(crate) model: &'m dyn HookableModel,
    /// The same model where it resumes passes (the fast schedule needs it); `None` for a
    /// tracer of [`Tracer::for_hookable`].
    pub(crate) resumable: Option<&'m dyn ResumableModel>,
    pub(crate) prompt: SubjectPrompt,
    pub(crate) setup: TraceSetup,
    pub(crate) noise: Corruption,
    pub(crate) metric: Box<dyn Metric + 'm>,
    pub(crate) answer: TokenText,
    /// `[N, span, d]` corrupted subject embeddings.
    pub(crate) corrupted_embed: Tensor,
    /// Clean run, batch 1: resid_pre / resid_post / mlp_out / attn_out of every layer.
    pub(crate) clean: ActivationCache,
    /// Corrupted run, batch N, recorded for the fast schedule's lanes: the residual entering
    /// every block, mlp_out / attn_out of every layer, the keys/values.
    pub(crate) corrupted: BaseRun,
    pub(crate) clean_score: f64,
    pub(crate) corrupted_score: f64,
    pub(crate) flops: Cell<u64>,
}

fn cached_sites(p: HookPoint) -> bool {
    matches!(
        p,
        HookPoint::Block(
            _,
            BlockSite::ResidPre | BlockSite::ResidPost | BlockSite::MlpOut | BlockSite::AttnOut
        )
    )
}

impl<'m> Tracer<'m> {
    /// Runs the clean pass and the corrupted passes of `prompt`.
    ///
    /// `metric`: what to measure; `None` measures the probability of the clean prediction.
    ///
    /// # Errors
    /// `samples == 0`, an unresolved relative noise level, model errors.
    pub fn new(
        model: &'m dyn ResumableModel,
        tokenizer: &Tokenizer,
        prompt: SubjectPrompt,
        setup: TraceSetup,
        metric: Option<Box<dyn Metric + 'm>>,
    ) -> Result<Self> {
        Self::build(
            model.as_hookable(),
            Some(model),
            tokenizer,
            prompt,
            setup,
            metric,
        )
    }

    /// As [`Tracer::new`] for a model that only runs hooked passes (a
    /// [`HookableModel`] that is not a [`ResumableModel`], e.g. your own wrapper): its grids
    /// use [`Schedule::Naive`] (one full pass per cell); asking for the fast schedule is an
    /// error.
    ///
    /// # Errors
    /// As [`Tracer::new`].
    pub fn for_hookable(
        model: &'m dyn HookableModel,
        tokenizer: &Tokenizer,
        prompt: SubjectPrompt,
        setup: TraceSetup,
        metric: Option<Box<dyn Metric + 'm>>,
    ) -> Result<Self> {
        Self::build(model, None, tokenizer, prompt, setup, metric)
    }

    /// The model as a [`ResumableModel`], for the fast schedule.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a tracer of [`Tracer::for_hookable`].
    pub(crate) fn resumable(&self) -> Result<&'m dyn ResumableModel> {
        self.resumable.ok_or_else(|| {
            Error::InvalidInput(
                "the fast schedule resumes passes from cached states, which needs a ResumableModel; \
                 this tracer was made with Tracer::for_hookable: use Schedule::Naive"
                    .into(),
            )
        })
    }

    fn build(
        model: &'m dyn HookableModel,
        resumable: Option<&'m dyn ResumableModel>,
        tokenizer: &Tokenizer,
        prompt: SubjectPrompt,
        setup: TraceSetup,
        metric: Option<Box<dyn Metric + 'm>>,
    ) -> Result<Self> {
        if setup.samples == 0 {
            return Err(Error::InvalidInput("samples must be at least 1".into()));
        }
        let noise = match (setup.corruption.needs_sigma(), setup.sigma) {
            (false, _) => setup.corruption.clone(),
            (true, Some(sigma)) => setup.corruption.resolve(sigma),
            (true, None) => {
                return Err(Error::InvalidInput(
                    "the noise level is relative to the embedding std, but no sigma was given"
                        .into(),
                ))
            }
        };
        let _guard = gpt_core::tch::no_grad_guard();
        let device = model.device();
        let n = setup.samples;
        let (b, e) = (
            prompt.subject_range.start as i64,
            prompt.subject_range.end as i64,
        );
        let ids = Tensor::f_from_slice(&prompt.ids)?.f_to_device(device)?;
        let clean_subject = model.embed_tokens(&ids)?.f_narrow(0, b, e - b)?;
        let corrupted_embed = noise.corrupt(model, &clean_subject, n, setup.seed)?;

        let flops = Cell::new(0);
        let t = prompt.len();
        let one = TokenBatch::single(&prompt.ids, device)?;
        let (clean_logits, clean) = {
            let mut hook = gpt_core::CacheHook::new(cached_sites);
            let logits = model
                .forward_with(&one, ForwardOptions::last(), &mut hook)?
                .logits()?;
            (logits, hook.into_cache())
        };
        flops.set(flops.get() + flops::forward(model.config(), 1, t, 0, 1));
        let rows = TokenBatch::pad(&vec![prompt.ids.clone(); n], Default::default(), 0, device)?;
        let corrupted = BaseRun::new(
            model,
            &rows,
            &mut corrupt_embed(&corrupted_embed, prompt.subject_range.clone(), 0),
            &|p| {
                matches!(
                    p,
                    HookPoint::Block(_, BlockSite::MlpOut | BlockSite::AttnOut)
                )
            },
        )?;
        let corrupted_logits = corrupted.logits();
        flops.set(flops.get() + flops::forward(model.config(), n, t, 0, n));

        let clean_logits = clean_logits.f_to_kind(Kind::Float)?;
        check_finite(
            &clean_logits,
            &format!("the clean logits of {:?}", prompt.text),
        )?;
        check_finite(
            corrupted_logits,
            &format!(
                "the corrupted logits of {:?} (noise too large?)",
                prompt.text
            ),
        )?;
        let top = clean_logits
            .f_argmax(-1, false)?
            .f_to_device(Device::Cpu)?
            .f_int64_value(&[0])?;
        let answer = TokenText {
            id: top,
            text: tokenizer.token_text(top)?,
        };
        let metric = metric.unwrap_or_else(|| {
            Box::new(TokenProb {
                token: answer.id,
                text: answer.text.clone(),
            })
        });
        let clean_score = mean_score(metric.as_ref(), &clean_logits)?;
        let corrupted_score =
            mean_score(metric.as_ref(), &corrupted_logits.f_to_kind(Kind::Float)?)?;
        Ok(Self {
            model,
            resumable,
            prompt,
            setup,
            noise,
            metric,
            answer,
            corrupted_embed,
            clean,
            corrupted,
            clean_score,
            corrupted_score,
            flops,
        })
    }

    /// The clean prediction.
    pub fn answer(&self) -> &TokenText {
        &self.answer
    }

    /// The metric on the clean run.
    pub fn clean_score(&self) -> f64 {
        self.clean_score
    }

    /// The metric on the corrupted runs.
    pub fn corrupted_score(&self) -> f64 {
        self.corrupted_score
    }

    /// The prompt.
    pub fn prompt(&self) -> &SubjectPrompt {
        &self.prompt
    }

    /// Floating-point operations of the matrix products run so far (analytic count; see
    /// [`crate::flops`]).
    pub fn flops(&self) -> u64 {
        self.flops.get()
    }

    /// Computes one grid.
    ///
    /// # Errors
    /// A window of 0 or larger than the depth, a severed trace of a kind other than hidden,
    /// token indices out of range, model errors.
    pub fn grid(&self, spec: &GridSpec) -> Result<TraceGrid> {
        self.grid_with_progress(spec, &mut progress::ignore)
    }

    /// The `k` most probable next tokens of one restored cell — token `t` (a prompt position)
    /// restored at `layer` (for MLP and attention: the window `spec` centres there) while the
    /// subject is corrupted — as `(token id, mean probability over the noise samples)`, most
    /// probable first. The cell's grid value is the answer's probability in this
    /// distribution. Severed specs are not supported.
    ///
    /// # Errors
    /// `t` or `layer` out of range, a severed spec; model errors.
    pub fn restored_top_k(
        &self,
        spec: &GridSpec,
        t: usize,
        layer: usize,
        k: usize,
    ) -> Result<Vec<(i64, f64)>> {
        let n_layers = self.model.config().n_layers;
        if t >= self.prompt.len() || layer >= n_layers {
            return Err(Error::InvalidInput(format!(
                "cell (token {t}, layer {layer}) is outside the grid ({} tokens, {n_layers} layers)",
                self.prompt.len()
            )));
        }
        if spec.sever.is_some() {
            return Err(Error::InvalidInput(
                "the restored distribution of a severed cell is not supported".into(),
            ));
        }
        let _guard = gpt_core::tch::no_grad_guard();
        let p = crate::naive::cell_distribution(self, spec, t, layer)?;
        let k = k.min(p.size().first().copied().unwrap_or(0).max(0) as usize);
        let (values, ids) = p.f_topk(k as i64, -1, true, true)?;
        let values = Vec::<f64>::try_from(&values.f_to_kind(Kind::Double)?)?;
        let ids = Vec::<i64>::try_from(&ids)?;
        Ok(ids.into_iter().zip(values).collect())
    }

    /// [`Tracer::grid`], reporting token rows to `progress` before the first row and after
    /// each (a long prompt can take minutes: callers show progress). The stage is
    /// [`GridSpec::stage`], e.g. `"hidden trace"`.
    ///
    /// # Errors
    /// As [`Tracer::grid`]; [`Error::Cancelled`] when `progress` stops it.
    pub fn grid_with_progress(
        &self,
        spec: &GridSpec,
        progress: &mut ProgressFn<'_>,
    ) -> Result<TraceGrid> {
        let n_layers = self.model.config().n_layers;
        if spec.kind != TraceKind::Hidden && (spec.window == 0 || spec.window > n_layers) {
            return Err(Error::InvalidInput(format!(
                "window {} must be between 1 and the model's {n_layers} layers",
                spec.window
            )));
        }
        if spec.sever.is_some() && spec.kind != TraceKind::Hidden {
            return Err(Error::InvalidInput(
                "severed traces restore hidden states (kind hidden)".into(),
            ));
        }
        let rows: Vec<usize> = match &spec.tokens {
            TokenSelection::All => (0..self.prompt.len()).collect(),
            TokenSelection::SubjectLast => vec![self.prompt.last_subject_token()],
            TokenSelection::Indices(ix) => {
                if let Some(bad) = ix.iter().find(|&&i| i >= self.prompt.len()) {
                    return Err(Error::InvalidInput(format!(
                        "token index {bad} is outside the prompt's {} tokens",
                        self.prompt.len()
                    )));
                }
                ix.clone()
            }
        };
        let at =
            |done: usize| Progress::new(spec.stage(), done as u64, Some(rows.len() as u64), "rows");
        progress::report(progress, at(0))?;
        let _guard = gpt_core::tch::no_grad_guard();
        let mut scores = Vec::with_capacity(rows.len());
        for (done, &t) in rows.iter().enumerate() {
            let row = match spec.schedule {
                Schedule::Fast => crate::fast::token_row(self, spec, t)?,
                Schedule::Naive => crate::naive::token_row(self, spec, t)?,
            };
            if let Some(bad) = row.iter().find(|v| !v.is_finite()) {
                return Err(Error::InvalidInput(format!(
                    "the {} score of token {t} is {bad}: the model produced non-finite values",
                    self.metric.name()
                )));
            }
            scores.push(row);
            progress::report(progress, at(done + 1))?;
        }
        Ok(TraceGrid {
            prompt: self.prompt.text.clone(),
            subject: self.prompt.subject.clone(),
            kind: spec.kind,
            window: if spec.kind == TraceKind::Hidden {
                1
            } else {
                spec.window
            },
            sever: spec.sever,
            tokens: self.prompt.tokens.clone(),
            token_ids: self.prompt.ids.clone(),
            subject_range: (
                self.prompt.subject_range.start,
                self.prompt.subject_range.end,
            ),
            rows,
            n_layers,
            scores,
            clean_score: self.clean_score,
            corrupted_score: self.corrupted_score,
            answer: self.answer.clone(),
            metric: self.metric.name(),
            samples: self.setup.samples,
            noise: self.noise.clone(),
            seed: self.setup.seed,
            schedule: spec.schedule,
        })
    }

    /// Mean metric over rows of last-position logits `[rows, vocab]`, per group of `n`
    /// consecutive rows: `[groups]`.
    pub(crate) fn group_scores(&self, logits: &Tensor, groups: usize) -> Result<Vec<f64>> {
        let s = self.metric.score(&logits.f_to_kind(Kind::Float)?)?;
        let s = s
            .f_view([groups as i64, -1])?
            .f_mean_dim(1, false, Kind::Double)?;
        Ok(Vec::<f64>::try_from(&s.f_to_device(Device::Cpu)?)?)
    }

    pub(crate) fn add_flops(&self, f: u64) {
        self.flops.set(self.flops.get() + f);
    }
}

fn mean_score(metric: &dyn Metric, logits: &Tensor) -> Result<f64> {
    Ok(metric
        .score(logits)?
        .f_mean(Kind::Double)?
        .f_to_device(Device::Cpu)?
        .f_double_value(&[])?)
}
