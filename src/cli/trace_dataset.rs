//! `factscope trace-dataset`: causal traces of every known fact of a known-facts file, with
//! averages per token category (ROME §1.5), figures, and per-case results that let an
//! interrupted run resume.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use causal_trace::dataset::{
    load_known_facts, run_dataset, DatasetReport, DatasetRun, KindSummary, KnownFact, TokenCategory,
};
use causal_trace::noise::{Corruption, NoiseLevel};
use causal_trace::TraceKind;
use clap::Args;

use super::common::ModelArgs;
use super::progress::ProgressView;

/// Arguments of `factscope trace-dataset`.
#[derive(Args, Debug)]
pub struct TraceDatasetArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The known-facts file (JSON list in the `known_1000.json` format).
    #[arg(long, value_name = "FILE")]
    facts: PathBuf,
    /// Only the first N records.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    limit: Option<usize>,
    /// Folder for `summary.json`, the figures and the per-case results (`cases/`); a
    /// case already traced there with the same settings is reused, so a run resumes.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Write into --out even though it holds files factscope did not write (they are kept;
    /// a file with an output's name is still never replaced).
    #[arg(long)]
    force: bool,
    /// Corrupted runs per prompt.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true)]
    samples: usize,
    /// Noise = K × σ, σ the std of the token embeddings of all subjects of the file (ROME).
    #[arg(long, value_name = "K", default_value_t = 3.0)]
    noise_scale: f64,
    /// Noise seed (the same for every prompt).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Layers restored together for MLP / attention traces.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true)]
    window: usize,
    /// Trace shard K of N only (0-based): every N-th fact starting at K, into the shared
    /// --out (per-case files never collide). The noise σ is still taken over all facts, so a
    /// last run without --shard reuses every traced case and writes the full summary.
    #[arg(long, value_name = "K/N", allow_hyphen_values = true)]
    shard: Option<super::evaluate::Shard>,
    /// Also average the severed comparison at the last subject token (MLP / attention
    /// frozen at corrupted values) and draw `severed.{svg,png}`.
    #[arg(long)]
    severed: bool,
}

/// The model's name in figure titles: the file or folder name up to its first dot.
fn model_name(path: &Path) -> String {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
    stem.split('.').next().unwrap_or(stem).to_string()
}

/// A score to four decimals, or `n/a` when there is none.
fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.4}"))
}

/// The best average indirect effect of a token category with its layer, or `n/a`.
fn best(k: &KindSummary, cat: TokenCategory) -> String {
    let c = k.category(cat);
    match (c.best_layer, c.best_aie) {
        (Some(l), Some(v)) => format!("{v:.4} at layer {l}"),
        _ => "n/a".into(),
    }
}

/// Runs `factscope trace-dataset`.
pub fn run(args: TraceDatasetArgs) -> anyhow::Result<()> {
    check_args(&args)?;
    let facts = load_known_facts(&args.facts)?;
    claim_out(&args)?;
    let loaded = args.model.load()?;
    let (facts, sigma, limit) = select_facts(&args, &loaded, facts)?;
    let options = DatasetRun {
        samples: args.samples,
        noise: Corruption::Gaussian {
            level: NoiseLevel::EmbeddingStdMultiple(args.noise_scale),
        },
        sigma,
        window: args.window,
        seed: args.seed,
        kinds: TraceKind::ALL.to_vec(),
        limit,
        figure_formats: vec!["svg".into(), "png".into()],
        model_name: model_name(&loaded.path),
        severed: args.severed,
    };
    let mut view = ProgressView::new("");
    let start = Instant::now();
    let report = run_dataset(
        &loaded.model,
        &loaded.tokenizer,
        &facts,
        &options,
        &args.out,
        &mut view.callback(),
    )
    .with_context(|| {
        format!(
            "tracing {} into {}",
            args.facts.display(),
            args.out.display()
        )
    })?;
    view.finish();
    let done = Done {
        args: &args,
        report: &report,
        facts: facts.len(),
        wall: start.elapsed().as_secs_f64(),
    };
    print_counts(&done);
    print_effects(&report);
    print_redone(&done);
    Ok(())
}

/// Refuses sample counts and noise scales no trace can use, before anything is read.
fn check_args(args: &TraceDatasetArgs) -> anyhow::Result<()> {
    if args.samples == 0 {
        bail!("--samples must be at least 1");
    }
    if !(args.noise_scale.is_finite() && args.noise_scale >= 0.0) {
        bail!(
            "--noise-scale {} must be a finite number >= 0",
            args.noise_scale
        );
    }
    Ok(())
}

/// Checks where results go before any work, so an unusable --out loses nothing, and claims
/// every output name (the one output-folder rule: a user's file is never replaced).
fn claim_out(args: &TraceDatasetArgs) -> anyhow::Result<()> {
    let mut names: Vec<String> = vec!["cases".into(), "summary.json".into()];
    for ext in ["svg", "png"] {
        for kind in TraceKind::ALL {
            names.push(format!("avg_{}.{ext}", kind.name()));
            names.push(format!("lines_{}.{ext}", kind.name()));
        }
        names.push(format!("severed.{ext}"));
    }
    super::common::claim_outputs(&args.out, args.force, &names)
}

/// The facts to trace, the noise σ fixed in advance (with --shard) and the limit left for
/// the library: without --shard all facts, σ from them and --limit; with it, this shard of
/// the first --limit facts, σ over every fact of the file (ROME's) and no further limit.
fn select_facts(
    args: &TraceDatasetArgs,
    loaded: &gpt_core::LoadedModel,
    mut facts: Vec<KnownFact>,
) -> anyhow::Result<(Vec<KnownFact>, Option<f64>, Option<usize>)> {
    let Some(shard) = args.shard else {
        return Ok((facts, None, args.limit));
    };
    // ROME's σ is over every fact of the file; fix it before taking the shard.
    let subjects: Vec<String> = facts.iter().map(|f| f.subject.clone()).collect();
    let sigma = causal_trace::noise::embedding_std(&loaded.model, &loaded.tokenizer, &subjects)?;
    facts.truncate(args.limit.unwrap_or(facts.len()));
    let facts = counterfact::dataset::shard(&facts, shard.k, shard.n)?;
    Ok((facts, Some(sigma), None))
}

/// What the printing steps read: the arguments, the run's report, the number of facts
/// traced (or reused) and the run's wall time.
struct Done<'a> {
    args: &'a TraceDatasetArgs,
    report: &'a DatasetReport,
    facts: usize,
    wall: f64,
}

/// Prints how many facts are known, the time taken, the noise and the first failures.
fn print_counts(done: &Done<'_>) {
    let (args, report) = (done.args, done.report);
    let s = &report.summary;
    println!(
        "{}: known {}/{} ({} not known, {} failed)",
        args.facts.display(),
        s.known,
        s.total,
        s.unknown,
        s.failed
    );
    let per_case = if report.traced > 0 {
        format!(
            ", {:.2} s per known case",
            report.trace_seconds / report.traced as f64
        )
    } else {
        String::new()
    };
    println!(
        "traced {} cases in {:.1} s{per_case}; reused {}; total {:.1} s",
        report.traced, report.trace_seconds, report.reused, done.wall
    );
    if let Some(scale) = report.noise.scale() {
        // σ (the std of the embeddings of all the file's subjects) from the resolved scale.
        let sigma = (args.noise_scale > 0.0).then(|| scale / args.noise_scale);
        println!(
            "noise: {}, σ over the {} subjects of the file, {} samples, seed {}",
            report.noise.describe(sigma),
            done.facts,
            args.samples,
            args.seed
        );
    }
    for f in s.failures.iter().take(5) {
        println!("  failed {}: {}", f.known_id, f.reason);
    }
    if s.failures.len() > 5 {
        println!(
            "  ... {} more failures in summary.json",
            s.failures.len() - 5
        );
    }
}

/// Prints the averages: the total effect, each kind's best AIE at the last subject token and
/// at the last token, and the severed comparison.
fn print_effects(report: &DatasetReport) {
    let s = &report.summary;
    if let Some(k) = s.kinds.first() {
        // Clean and corrupted scores belong to the prompt, so every kind has the same ATE.
        let te = &k.total_effect;
        let ci = match (te.ci_low, te.ci_high) {
            (Some(lo), Some(hi)) => format!(" (95% CI [{lo:.4}, {hi:.4}])"),
            _ => String::new(),
        };
        println!(
            "average total effect {}{ci} over {} known cases: clean {}, corrupted {}",
            fmt(te.mean),
            k.cases,
            fmt(k.high),
            fmt(k.low),
        );
    }
    for k in &s.kinds {
        println!(
            "{:<6} best AIE: last subject token {}; last token {}",
            k.kind.name(),
            best(k, TokenCategory::LastSubject),
            best(k, TokenCategory::Last),
        );
    }
    if let Some(sev) = &s.severed {
        let peak = |e: &[causal_trace::dataset::Estimate]| {
            e.iter()
                .enumerate()
                .filter_map(|(l, x)| x.mean.map(|m| (l, m)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map_or("-".to_string(), |(l, m)| format!("{m:.4} at layer {l}"))
        };
        println!(
            "severed (last subject token, {} cases): ordinary {}; MLP severed {}; attention severed {}",
            sev.cases,
            peak(&sev.ordinary),
            peak(&sev.mlp_severed),
            peak(&sev.attn_severed)
        );
    }
}

/// Prints the cases of an earlier run traced again (their files failed validation) and
/// what was written where.
fn print_redone(done: &Done<'_>) {
    let report = done.report;
    if !report.redone.is_empty() {
        println!(
            "traced again {} case(s) whose results from an earlier run failed validation:",
            report.redone.len()
        );
        for r in report.redone.iter().take(10) {
            println!("  case {}: {}", r.known_id, r.reason);
        }
        if report.redone.len() > 10 {
            println!("  ... {} more", report.redone.len() - 10);
        }
    }
    println!(
        "wrote {} files to {} (per-case results in {})",
        report.written.len(),
        done.args.out.display(),
        done.args.out.join("cases").display()
    );
}
