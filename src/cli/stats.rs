//! `factscope stats`: key statistics `C = E[k kᵀ]` of one layer over a corpus (resumable).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::bail;
use clap::Args;
use gpt_core::{HookableModel, LoadedModel};
use rome::{generated_corpus, Corpus, GeneratedCorpus, KeyStats, KeyStatsRun, StatsOptions};

use super::common::ModelArgs;
use super::progress::ProgressView;

/// Arguments of `factscope stats`.
#[derive(Args, Debug)]
pub struct StatsArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The layer whose MLP keys are counted.
    #[arg(long, allow_negative_numbers = true)]
    layer: usize,
    /// A text file (documents separated by blank lines), a .jsonl file with a `text` field, a
    /// folder of either, or `generated` (text the model samples itself, seeded).
    #[arg(long, default_value = "generated")]
    corpus: String,
    /// Documents are truncated to this many tokens.
    #[arg(long, default_value_t = 1024)]
    max_length: usize,
    /// Stop after this many tokens.
    #[arg(long)]
    max_tokens: Option<u64>,
    /// Where the statistics go (safetensors); a run resumes from it [default: the cache].
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Reads or samples the corpus `spec` (a path or `generated`), with a progress bar.
pub fn load_corpus(loaded: &LoadedModel, spec: &str) -> anyhow::Result<Corpus> {
    if spec == "generated" {
        let settings = GeneratedCorpus::default();
        let mut view = ProgressView::new("");
        let corpus = generated_corpus(
            &loaded.model,
            &loaded.tokenizer,
            settings,
            &mut view.callback(),
        )?;
        view.finish();
        return Ok(corpus);
    }
    Ok(Corpus::from_path(Path::new(spec))?)
}

/// Computes (or resumes) key statistics with a progress bar; prints tokens per second.
pub fn compute_with_progress(
    loaded: &LoadedModel,
    corpus: &Corpus,
    options: &StatsOptions,
    path: &Path,
) -> anyhow::Result<KeyStats> {
    let mut view = ProgressView::new(&format!("layer {}", options.layer));
    // What an existing checkpoint already holds, so the figures below are this run's own.
    let tokens_before = KeyStats::load(path).map_or(0, |s| s.meta.tokens);
    let started = Instant::now();
    let stats = KeyStatsRun::new(&loaded.model, &loaded.tokenizer, corpus, options)
        .checkpoint(path)
        .progress(&mut view.callback())
        .compute()?;
    view.finish();
    let secs = started.elapsed().as_secs_f64();
    let new_tokens = stats.meta.tokens.saturating_sub(tokens_before);
    if new_tokens == 0 {
        eprintln!(
            "key statistics: {} tokens from {} documents, already complete in {} (nothing to add)",
            stats.meta.tokens,
            stats.meta.texts,
            path.display()
        );
    } else {
        eprintln!(
            "key statistics: {} tokens from {} documents → {} ({new_tokens} tokens counted in this run's {secs:.1} s, {:.0} tokens/s)",
            stats.meta.tokens,
            stats.meta.texts,
            path.display(),
            new_tokens as f64 / secs.max(1e-9),
        );
    }
    Ok(stats)
}

/// Runs `factscope stats`.
pub fn run(args: StatsArgs) -> anyhow::Result<()> {
    if let Some(out) = &args.out {
        super::common::check_out_file("--out", out, true)?;
    }
    let loaded = args.model.load()?;
    let n_layers = loaded.model.config().n_layers;
    if args.layer >= n_layers {
        bail!(
            "--layer {} is out of range: the model has {n_layers} layers",
            args.layer
        );
    }
    let corpus = load_corpus(&loaded, &args.corpus)?;
    let options = StatsOptions {
        max_length: args.max_length,
        max_tokens: args.max_tokens,
        ..StatsOptions::new(args.layer)
    };
    let fingerprint = rome::model_fingerprint(&loaded.model, args.layer)?;
    let path = match &args.out {
        Some(p) => p.clone(),
        None => {
            rome::StatsCache::default_location().path(&fingerprint, args.layer, &corpus.fingerprint)
        }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        super::common::check_out_dir("the statistics folder", dir)?;
    }
    let stats = compute_with_progress(&loaded, &corpus, &options, &path)?;
    println!(
        "layer {}: C over {} tokens of {} ({} documents) in {}",
        stats.meta.layer,
        stats.meta.tokens,
        stats.meta.corpus_source,
        stats.meta.texts,
        path.display()
    );
    Ok(())
}
