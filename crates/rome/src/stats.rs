//! Key statistics: `C = E[k kᵀ]`, the uncentred second moment of the MLP keys (the input of
//! the edited projection, `blocks.{L}.mlp.hook_post`) over a corpus, per token, padding
//! excluded. Streaming and mergeable ([`SecondMoment`], f64 sums), computed only up to block
//! `L` (the pass stops there), in batches of similar lengths; resumable from atomic
//! checkpoints; cached in a safetensors file whose metadata names the model, layer and
//! corpus, so a cache for anything else is refused.

use std::collections::HashMap;
use std::path::Path;

use gpt_core::intervention::{from_fn, HookAction};
use gpt_core::progress::{self, Progress, ProgressFn};
use gpt_core::tch::{Kind, Tensor};
use gpt_core::{EditableModel, HookPoint, Layer, Padding, TokenBatch, Tokenizer, WeightId};
use serde::{Deserialize, Serialize};

use crate::corpus::Corpus;
use crate::error::{Error, Result};
use crate::st_file;
use crate::update::SecondMoment;

/// The metadata key under which [`StatsMeta`] is stored (as JSON) in the safetensors file.
const META_KEY: &str = "factscope.key_stats";
/// The tensor name of `Σ k kᵀ`.
const SUM_KEY: &str = "mom2.sum";

/// How to compute key statistics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatsOptions {
    /// The edited layer (keys of `blocks.{layer}.mlp.hook_post`).
    pub layer: usize,
    /// Documents are truncated to this many tokens (ROME: the model's context, 1024 for GPT-2;
    /// never more than the model's context).
    pub max_length: usize,
    /// Stop after this many tokens in all (`None`: the whole corpus).
    pub max_tokens: Option<u64>,
    /// Tokens per forward batch (padding included), bounding memory.
    pub batch_tokens: usize,
    /// Write a checkpoint after every this many documents.
    pub checkpoint_every: usize,
}

impl StatsOptions {
    /// Defaults for `layer`: max length 1024, whole corpus, 4096-token batches, checkpoints
    /// every 64 documents.
    pub fn new(layer: usize) -> Self {
        Self {
            layer,
            max_length: 1024,
            max_tokens: None,
            batch_tokens: 4096,
            checkpoint_every: 64,
        }
    }
}

/// What a statistics file was computed from (stored with it, checked when it is used).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsMeta {
    /// [`model_fingerprint`] of the model.
    pub model: String,
    /// The layer.
    pub layer: usize,
    /// Key dimension (`d_mlp`).
    pub d_mlp: usize,
    /// The corpus fingerprint ([`Corpus::fingerprint`]).
    pub corpus: String,
    /// Where the corpus came from (informative).
    pub corpus_source: String,
    /// Documents consumed so far (a resumed run skips these).
    pub texts: usize,
    /// Tokens (keys) counted.
    pub tokens: u64,
    /// Truncation length.
    pub max_length: usize,
    /// Token budget.
    pub max_tokens: Option<u64>,
    /// Whether the whole corpus (or budget) was processed; `false` for a checkpoint.
    pub complete: bool,
    /// Storage dtype of the sum (`f64`).
    pub dtype: String,
}

/// Key statistics of one layer: the running second moment and what it was computed from.
#[derive(Debug)]
pub struct KeyStats {
    /// Provenance.
    pub meta: StatsMeta,
    /// `Σ k kᵀ` and the count.
    pub moment: SecondMoment,
}

/// The stage a statistics run reports: documents consumed of the corpus (those of the
/// checkpoint it resumed from included), with the count `tokens` (keys counted so far).
pub const STATS_STAGE: &str = "key statistics";

/// A fingerprint of a model for cache keys: its config and the bytes of the edited layer's
/// MLP output projection (so a different checkpoint of the same shape differs).
///
/// # Errors
/// A layer out of range; libtorch errors.
pub fn model_fingerprint(model: &dyn EditableModel, layer: usize) -> Result<String> {
    Ok(gpt_core::model_fingerprint(
        model,
        WeightId::MlpOut(Layer(layer)),
    )?)
}

impl KeyStats {
    /// `C = E[k kᵀ]`, f64 `[d_mlp, d_mlp]`.
    ///
    /// # Errors
    /// Statistics of no token.
    pub fn c(&self) -> Result<Tensor> {
        self.moment.moment()
    }

    /// Checks that these statistics are for `model_fingerprint` at `layer` (and complete).
    ///
    /// # Errors
    /// [`Error::Stats`] saying what differs.
    pub fn check_for(&self, path: &Path, model_fingerprint: &str, layer: usize) -> Result<()> {
        let bad = |reason: String| Error::Stats {
            path: path.to_path_buf(),
            reason,
        };
        if self.meta.layer != layer {
            return Err(bad(format!(
                "computed for layer {}, not layer {layer}",
                self.meta.layer
            )));
        }
        if self.meta.model != model_fingerprint {
            return Err(bad(format!(
                "computed for another model (fingerprint {} ≠ {model_fingerprint})",
                self.meta.model
            )));
        }
        if !self.meta.complete {
            return Err(bad(format!(
                "an unfinished checkpoint ({} documents): finish it with `factscope stats` first",
                self.meta.texts
            )));
        }
        Ok(())
    }

    /// Writes the statistics atomically: a safetensors file with the f64 tensor `mom2.sum`
    /// and the metadata as JSON under `factscope.key_stats`.
    ///
    /// # Errors
    /// Serialisation or write failures naming the file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string(&self.meta).map_err(|e| Error::Stats {
            path: path.to_path_buf(),
            reason: format!("cannot serialise metadata: {e}"),
        })?;
        let meta = HashMap::from([
            (META_KEY.to_string(), json),
            ("count".to_string(), self.moment.count.to_string()),
        ]);
        st_file::write(path, &[(SUM_KEY.to_string(), &self.moment.sum)], meta)
    }

    /// Reads statistics written by [`KeyStats::save`].
    ///
    /// # Errors
    /// [`Error::Stats`] for an unreadable, truncated or corrupt file, or one without the
    /// metadata or the tensor.
    pub fn load(path: &Path) -> Result<Self> {
        let file = st_file::read(path)?;
        let meta: StatsMeta = serde_json::from_str(file.meta(META_KEY)?)
            .map_err(|e| file.error(format!("bad `{META_KEY}` metadata: {e}")))?;
        let count: u64 = file
            .meta("count")?
            .parse()
            .map_err(|e| file.error(format!("bad `count` metadata: {e}")))?;
        let sum = file
            .tensor(SUM_KEY)?
            .ok_or_else(|| file.error(format!("no tensor `{SUM_KEY}`")))?;
        let d = meta.d_mlp as i64;
        if sum.size() != [d, d] {
            return Err(file.error(format!(
                "`{SUM_KEY}` has shape {:?}, expected [{d}, {d}]",
                sum.size()
            )));
        }
        let stats = Self {
            meta,
            moment: SecondMoment { sum, count },
        };
        stats.validate().map_err(|reason| file.error(reason))?;
        Ok(stats)
    }

    /// Checks that the numbers can be a second moment: finite, symmetric, a non-negative
    /// diagonal, and keys counted if the file says it is complete. A file that fails would
    /// otherwise surface much later as a failed Cholesky solve.
    fn validate(&self) -> std::result::Result<(), String> {
        let m = &self.moment;
        if self.meta.complete && m.count == 0 {
            return Err("it counts 0 keys (`count` is 0) but says it is complete".into());
        }
        let check = || -> Result<Option<String>> {
            let sum = m.sum.f_to_kind(Kind::Double)?;
            if !bool::try_from(sum.f_isfinite()?.f_all()?)? {
                return Ok(Some("`mom2.sum` has NaN or infinite values".into()));
            }
            let min_diag = sum.f_diagonal(0, 0, 1)?.f_min()?.f_double_value(&[])?;
            if min_diag < 0.0 {
                return Ok(Some(format!(
                    "`mom2.sum` has a negative diagonal entry ({min_diag}): not a sum of k kᵀ"
                )));
            }
            let scale = sum
                .f_abs()?
                .f_max()?
                .f_double_value(&[])?
                .max(f64::MIN_POSITIVE);
            let asym = sum
                .f_sub(&sum.f_transpose(0, 1)?)?
                .f_abs()?
                .f_max()?
                .f_double_value(&[])?;
            if asym > 1e-6 * scale {
                return Ok(Some(format!(
                    "`mom2.sum` is not symmetric (max |S − Sᵀ| = {asym:.3e}): not a sum of k kᵀ"
                )));
            }
            Ok(None)
        };
        match check() {
            Ok(None) => Ok(()),
            Ok(Some(reason)) => Err(reason),
            Err(e) => Err(format!("cannot check `mom2.sum`: {e}")),
        }
    }
}

/// Token ids of each document, truncated to `max_length`, one entry per document (empty for
/// one that tokenises to nothing), so indices stay those of the corpus.
fn tokenize(tokenizer: &Tokenizer, docs: &[String], max_length: usize) -> Result<Vec<Vec<i64>>> {
    let mut out = Vec::with_capacity(docs.len());
    for d in docs {
        let mut ids = tokenizer.encode(d)?.ids;
        ids.truncate(max_length);
        out.push(ids);
    }
    Ok(out)
}

/// Adds the keys of `seqs` at `layer` to `moment`, in batches of at most `batch_tokens`
/// tokens (sequences sorted by length, so that little padding is computed). Each pass stops
/// right after the keys are seen. Returns the tokens counted.
fn accumulate(
    model: &dyn EditableModel,
    layer: usize,
    mut seqs: Vec<Vec<i64>>,
    batch_tokens: usize,
    moment: &mut SecondMoment,
) -> Result<u64> {
    seqs.retain(|s| !s.is_empty());
    seqs.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let point = HookPoint::mlp_post(layer);
    let mut counted = 0u64;
    let mut i = 0;
    while i < seqs.len() {
        let width = seqs[i].len();
        let rows = (batch_tokens / width.max(1)).max(1);
        let batch_seqs = &seqs[i..(i + rows).min(seqs.len())];
        i += batch_seqs.len();
        let batch = TokenBatch::pad(batch_seqs, Padding::Right, 0, model.device())?;
        let mut keys: Option<Tensor> = None;
        let mut grab = from_fn(
            |p| p == point,
            |_, act| {
                keys = Some(act.shallow_clone());
                Ok(HookAction::Stop)
            },
        );
        let _ = model.forward_hooked(&batch, &mut grab)?;
        let keys = keys.ok_or(gpt_core::Error::NoSuchHookPoint { point })?;
        let mask = batch.attention_mask.f_to_device(keys.device())?.f_ne(0)?;
        let real = keys.f_index(&[Some(mask)])?; // [tokens, d_mlp]
        counted += real.size().first().copied().unwrap_or(0) as u64;
        moment.add(&real)?;
    }
    Ok(counted)
}

/// A key-statistics computation: the statistics of `options.layer` over a corpus, with an
/// optional checkpoint file and progress callback (builder; nothing runs before
/// [`KeyStatsRun::compute`]).
///
/// # Example
/// ```no_run
/// use gpt_core::progress;
/// use rome::{Corpus, KeyStatsRun, StatsOptions};
/// # fn main() -> rome::Result<()> {
/// let m = gpt_core::load_model("models/SmolLM2-135M-Instruct.Q4_1.gguf".as_ref(), Default::default())?;
/// let corpus = Corpus::from_path("wikitext.jsonl".as_ref())?;
/// let stats = KeyStatsRun::new(&m.model, &m.tokenizer, &corpus, &StatsOptions::new(4))
///     .checkpoint("layer4.safetensors".as_ref())
///     .progress(&mut progress::watch(|p| eprintln!("{p}")))
///     .compute()?;
/// println!("C over {} tokens", stats.meta.tokens);
/// # Ok(()) }
/// ```
pub struct KeyStatsRun<'a> {
    model: &'a dyn EditableModel,
    tokenizer: &'a Tokenizer,
    corpus: &'a Corpus,
    options: &'a StatsOptions,
    checkpoint: Option<&'a Path>,
    progress: Option<&'a mut ProgressFn<'a>>,
}

impl<'a> KeyStatsRun<'a> {
    /// Statistics of `options.layer` of `model` over `corpus`, without a checkpoint and
    /// without progress reports.
    pub fn new(
        model: &'a dyn EditableModel,
        tokenizer: &'a Tokenizer,
        corpus: &'a Corpus,
        options: &'a StatsOptions,
    ) -> Self {
        Self {
            model,
            tokenizer,
            corpus,
            options,
            checkpoint: None,
            progress: None,
        }
    }

    /// Resume from and write checkpoints to `path` every `options.checkpoint_every`
    /// documents; the final statistics are written there too.
    #[must_use]
    pub fn checkpoint(mut self, path: &'a Path) -> Self {
        self.checkpoint = Some(path);
        self
    }

    /// Report [`STATS_STAGE`] to `progress` before the first chunk and after each (a
    /// checkpoint is written before each report after the first). Stopping it returns
    /// [`Error::Cancelled`] (after the checkpoint; a stop at the report of the finished run
    /// is ignored).
    #[must_use]
    pub fn progress(mut self, progress: &'a mut ProgressFn<'a>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Computes the statistics. A resumed run gives the same `C`, bit for bit, as an
    /// uninterrupted one.
    ///
    /// # Errors
    /// A checkpoint for another model, layer, corpus or setting (refused, never
    /// overwritten); settings out of range; model and write errors; [`Error::Cancelled`].
    pub fn compute(self) -> Result<KeyStats> {
        let mut quiet = progress::ignore;
        let progress: &mut ProgressFn<'_> = match self.progress {
            Some(p) => p,
            None => &mut quiet,
        };
        compute_key_stats(
            self.model,
            self.tokenizer,
            self.corpus,
            self.options,
            self.checkpoint,
            progress,
        )
    }
}

/// [`KeyStatsRun::compute`].
fn compute_key_stats(
    model: &dyn EditableModel,
    tokenizer: &Tokenizer,
    corpus: &Corpus,
    options: &StatsOptions,
    checkpoint: Option<&Path>,
    progress: &mut ProgressFn<'_>,
) -> Result<KeyStats> {
    check_options(model, corpus, options)?;
    let _guard = gpt_core::tch::no_grad_guard();
    let mut stats = start_or_resume(model, corpus, options, checkpoint)?;
    let pass = Pass {
        model,
        tokenizer,
        corpus,
        options,
    };
    progress::report(progress, pass.progress(&stats.meta))?;
    while !stats.meta.complete {
        pass.advance(&mut stats)?;
        if let Some(path) = checkpoint {
            stats.save(path)?;
        }
        match progress::report(progress, pass.progress(&stats.meta)) {
            // Nothing is left to stop once the run is complete.
            Err(cancelled) if !stats.meta.complete => return Err(cancelled.into()),
            _ => {}
        }
    }
    Ok(stats)
}

/// Refuses a layer out of range, zero sizes, an empty corpus and a budget of 0 tokens.
fn check_options(model: &dyn EditableModel, corpus: &Corpus, options: &StatsOptions) -> Result<()> {
    let n_layers = model.config().n_layers;
    if options.layer >= n_layers {
        return Err(gpt_core::Error::LayerOutOfRange {
            layer: options.layer,
            n_layers,
        }
        .into());
    }
    if options.max_length == 0 || options.batch_tokens == 0 || options.checkpoint_every == 0 {
        return Err(Error::InvalidInput(
            "max length, batch tokens and checkpoint interval must be at least 1".into(),
        ));
    }
    if corpus.is_empty() {
        return Err(Error::InvalidInput("the corpus has no documents".into()));
    }
    if options.max_tokens == Some(0) {
        return Err(Error::InvalidInput(
            "a token budget of 0 counts no key: give at least 1 token, or no budget".into(),
        ));
    }
    Ok(())
}

/// The statistics to continue: the checkpoint's when there is one (refused when it was
/// computed from anything else), else none counted yet.
fn start_or_resume(
    model: &dyn EditableModel,
    corpus: &Corpus,
    options: &StatsOptions,
    checkpoint: Option<&Path>,
) -> Result<KeyStats> {
    let d_mlp = model.config().d_mlp;
    let fresh = StatsMeta {
        model: model_fingerprint(model, options.layer)?,
        layer: options.layer,
        d_mlp,
        corpus: corpus.fingerprint.clone(),
        corpus_source: corpus.source.clone(),
        texts: 0,
        tokens: 0,
        max_length: options.max_length,
        max_tokens: options.max_tokens,
        complete: false,
        dtype: "f64".into(),
    };
    let Some(path) = checkpoint.filter(|p| p.exists()) else {
        return Ok(KeyStats {
            meta: fresh,
            moment: SecondMoment::new(d_mlp)?,
        });
    };
    let previous = KeyStats::load(path)?;
    // What must match: everything but the progress and where the corpus was read from.
    let same = |m: &StatsMeta| StatsMeta {
        texts: 0,
        tokens: 0,
        complete: false,
        corpus_source: String::new(),
        ..m.clone()
    };
    if same(&previous.meta) != same(&fresh) {
        return Err(Error::Stats {
            path: path.to_path_buf(),
            reason: format!(
                "it holds statistics of another model, layer, corpus or setting ({} layer {} corpus {} max length {} budget {:?}); refusing to continue or overwrite it",
                previous.meta.model, previous.meta.layer, previous.meta.corpus, previous.meta.max_length, previous.meta.max_tokens
            ),
        });
    }
    Ok(previous)
}

/// What a statistics pass over the corpus reads: the model, the corpus and the settings.
struct Pass<'a> {
    model: &'a dyn EditableModel,
    tokenizer: &'a Tokenizer,
    corpus: &'a Corpus,
    options: &'a StatsOptions,
}

impl Pass<'_> {
    /// The progress of statistics `meta`: documents consumed, tokens counted.
    fn progress(&self, meta: &StatsMeta) -> Progress {
        Progress::new(
            STATS_STAGE,
            meta.texts as u64,
            Some(self.corpus.len() as u64),
            "documents",
        )
        .with_count("tokens", meta.tokens)
    }

    /// Adds the next `checkpoint_every` documents (within the token budget) to `stats`, or
    /// marks them complete when the corpus or the budget is used up.
    fn advance(&self, stats: &mut KeyStats) -> Result<()> {
        let options = self.options;
        let total = self.corpus.len();
        let budget_left = options
            .max_tokens
            .map(|m| m.saturating_sub(stats.meta.tokens));
        let start = stats.meta.texts;
        let end = (start + options.checkpoint_every).min(total);
        if start >= total || budget_left == Some(0) {
            stats.meta.complete = true;
            return Ok(());
        }
        // Never longer than the model's context.
        let max_length = options.max_length.min(self.model.config().n_ctx);
        let mut seqs = tokenize(
            self.tokenizer,
            &self.corpus.documents[start..end],
            max_length,
        )?;
        let consumed = match budget_left {
            Some(left) => spend_budget(&mut seqs, left).map_or(end, |i| start + i + 1),
            None => end,
        };
        let n = accumulate(
            self.model,
            options.layer,
            seqs,
            options.batch_tokens,
            &mut stats.moment,
        )?;
        stats.meta.tokens += n;
        stats.meta.texts = consumed;
        if options.max_tokens.is_some_and(|m| stats.meta.tokens >= m) {
            stats.meta.complete = true;
        }
        Ok(())
    }
}

/// Truncates `seqs` to `left` tokens in all (those after the budget runs out are emptied);
/// returns the index of the one that used the last token, if the budget ran out. Documents
/// consumed are then only those up to it, so the provenance (`texts`) names exactly the
/// documents the statistics come from.
fn spend_budget(seqs: &mut [Vec<i64>], mut left: u64) -> Option<usize> {
    let mut last = None;
    for (i, s) in seqs.iter_mut().enumerate() {
        if left == 0 {
            s.clear();
            continue;
        }
        let take = (s.len() as u64).min(left);
        s.truncate(take as usize);
        left -= take;
        if left == 0 {
            last = Some(i);
        }
    }
    last
}
