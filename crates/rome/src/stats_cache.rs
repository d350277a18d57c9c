//! The per-user cache of key statistics: one file per model (fingerprint), layer and corpus,
//! so that every edit of a model at a layer reuses the statistics computed once — from the
//! command line and from library code alike.

use std::path::{Path, PathBuf};

use gpt_core::progress::ProgressFn;
use gpt_core::{EditableModel, Tokenizer};

use crate::corpus::{generated_corpus, Corpus, GeneratedCorpus};
use crate::error::Result;
use crate::stats::{model_fingerprint, KeyStats, KeyStatsRun, StatsOptions};

/// The statistics' subfolder, versioned: `stats` held statistics of Hugging Face models
/// whose `tokenizer.json` puts a BOS first (Llama, Mistral, Gemma folders) computed without
/// it, from before factscope put it there; a new folder keeps them from being reused.
const STATS_FOLDER: &str = "stats-2";

/// A folder of cached key statistics (`<dir>/stats-2/<model>_layer<L>_<corpus>.safetensors`).
///
/// ```no_run
/// use gpt_core::progress;
/// use rome::{GeneratedCorpus, StatsCache};
/// # fn main() -> rome::Result<()> {
/// let m = gpt_core::load_model("models/SmolLM2-135M-Instruct.Q4_1.gguf".as_ref(), Default::default())?;
/// let cache = StatsCache::default_location();
/// // Statistics of layer 4 over text the model samples itself: computed on first use only.
/// let stats = cache.generated(&m.model, &m.tokenizer, 4, GeneratedCorpus::default(), &mut progress::ignore)?;
/// let c = stats.c()?; // [d_mlp, d_mlp]
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsCache {
    dir: PathBuf,
}

impl StatsCache {
    /// A cache in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The per-user cache: `$FACTSCOPE_CACHE`, else `$XDG_CACHE_HOME/factscope`, else
    /// `~/.cache/factscope`, else `./.factscope-cache`.
    pub fn default_location() -> Self {
        let dir = if let Some(dir) = std::env::var_os("FACTSCOPE_CACHE") {
            PathBuf::from(dir)
        } else if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
            PathBuf::from(dir).join("factscope")
        } else if let Some(home) = std::env::var_os("HOME") {
            PathBuf::from(home).join(".cache").join("factscope")
        } else {
            PathBuf::from(".factscope-cache")
        };
        Self::new(dir)
    }

    /// The cache folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of the statistics of a model (by [`model_fingerprint`]), layer and corpus key
    /// (a [`Corpus::fingerprint`], or [`StatsCache::generated_key`]).
    pub fn path(&self, model: &str, layer: usize, corpus_key: &str) -> PathBuf {
        self.dir
            .join(STATS_FOLDER)
            .join(format!("{model}_layer{layer}_{corpus_key}.safetensors"))
    }

    /// The corpus key of a model-sampled corpus: its settings name it (sampling is seeded), so
    /// a complete cache is found without sampling the corpus again.
    pub fn generated_key(settings: &GeneratedCorpus) -> String {
        format!(
            "generated-{}x{}-seed{}",
            settings.documents, settings.tokens_per_document, settings.seed
        )
    }

    /// The statistics of `layer` over `corpus_key`: the cached file when it is complete and
    /// was made for this model and layer; otherwise computed (resuming an unfinished cache
    /// file) over the corpus `corpus()` returns — called only then — with default
    /// [`StatsOptions`], and cached.
    ///
    /// # Errors
    /// An unusable cache folder, the corpus' errors, statistics errors; [`crate::Error::Cancelled`]
    /// when `progress` stops the computation (the cache keeps a checkpoint).
    pub fn get_or_compute(
        &self,
        model: &dyn EditableModel,
        tokenizer: &Tokenizer,
        layer: usize,
        corpus_key: &str,
        corpus: impl FnOnce() -> Result<Corpus>,
        progress: &mut ProgressFn<'_>,
    ) -> Result<KeyStats> {
        if let Some(stats) = self.complete(model, layer, corpus_key)? {
            return Ok(stats);
        }
        let fingerprint = model_fingerprint(model, layer)?;
        let path = self.path(&fingerprint, layer, corpus_key);
        if let Some(dir) = path.parent() {
            factscope_common::fsio::ensure_writable_dir(dir)?;
        }
        let corpus = corpus()?;
        let stats = KeyStatsRun::new(model, tokenizer, &corpus, &StatsOptions::new(layer))
            .checkpoint(&path)
            .progress(progress)
            .compute()?;
        stats.check_for(&path, &fingerprint, layer)?;
        Ok(stats)
    }

    /// [`StatsCache::get_or_compute`] over text the model samples itself with `settings`.
    ///
    /// # Errors
    /// As [`StatsCache::get_or_compute`].
    pub fn generated(
        &self,
        model: &dyn EditableModel,
        tokenizer: &Tokenizer,
        layer: usize,
        settings: GeneratedCorpus,
        progress: &mut ProgressFn<'_>,
    ) -> Result<KeyStats> {
        let key = Self::generated_key(&settings);
        if let Some(stats) = self.complete(model, layer, &key)? {
            return Ok(stats);
        }
        // Sampling and counting report through the same callback, one after the other.
        let corpus = generated_corpus(model.as_hookable(), tokenizer, settings, progress)?;
        self.get_or_compute(model, tokenizer, layer, &key, || Ok(corpus), progress)
    }

    /// The cached statistics of `layer` over `corpus_key` if they are complete and were made
    /// for this model.
    ///
    /// # Errors
    /// The fingerprint's errors (an unreadable or foreign cache file is simply not used).
    pub fn complete(
        &self,
        model: &dyn EditableModel,
        layer: usize,
        corpus_key: &str,
    ) -> Result<Option<KeyStats>> {
        let fingerprint = model_fingerprint(model, layer)?;
        let path = self.path(&fingerprint, layer, corpus_key);
        Ok(KeyStats::load(&path)
            .ok()
            .filter(|s| s.meta.complete && s.check_for(&path, &fingerprint, layer).is_ok()))
    }
}
