//! `factscope trace`: one causal trace (hidden / MLP / attention grids) with pictures.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use causal_trace::noise::{embedding_std, Corruption, NoiseLevel};
use causal_trace::{
    GridSpec, Sever, SubjectPrompt, TokenSelection, TraceGrid, TraceKind, TraceSetup, Tracer,
};
use clap::{Args, ValueEnum};
use gpt_core::{HookableModel, LoadedModel, Progress};
use viz::{BarPlot, BarSeries, Figure};

use super::common::ModelArgs;
use super::progress::ProgressView;

/// `--kind`.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum KindArg {
    /// Block outputs.
    Hidden,
    /// MLP outputs (windowed).
    Mlp,
    /// Attention outputs (windowed).
    Attn,
    /// All three.
    All,
}

impl KindArg {
    /// The trace kinds selected.
    pub fn kinds(self) -> Vec<TraceKind> {
        match self {
            KindArg::Hidden => vec![TraceKind::Hidden],
            KindArg::Mlp => vec![TraceKind::Mlp],
            KindArg::Attn => vec![TraceKind::Attn],
            KindArg::All => TraceKind::ALL.to_vec(),
        }
    }
}

/// Arguments of `factscope trace`.
#[derive(Args, Debug)]
pub struct TraceArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The prompt.
    #[arg(long)]
    prompt: String,
    /// The subject, as it occurs in the prompt.
    #[arg(long)]
    subject: String,
    /// What to restore.
    #[arg(long, value_enum, default_value_t = KindArg::All)]
    kind: KindArg,
    /// Number of corrupted runs.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true)]
    samples: usize,
    /// Noise = K × the std of the subject's token embeddings (ROME's rule) [default: 3].
    #[arg(long, value_name = "K", conflicts_with = "noise_std")]
    noise_scale: Option<f64>,
    /// Noise with this fixed std.
    #[arg(long, value_name = "S")]
    noise_std: Option<f64>,
    /// Layers restored together for MLP / attention traces.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true)]
    window: usize,
    /// Noise seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Folder for the grids (JSON) and pictures (SVG, PNG).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write into --out even though it holds files factscope did not write (they are kept;
    /// a file with an output's name is still never replaced).
    #[arg(long)]
    force: bool,
    /// Print the grids as JSON to stdout (instead of the summary).
    #[arg(long)]
    json: bool,
    /// Also trace the last subject token with the MLP and with attention severed (frozen at
    /// their corrupted values), and plot the three effects per layer (`severed.{svg,png}`).
    #[arg(long)]
    severed: bool,
    /// The answer the prompt should get (e.g. "Paris"); if the model predicts something
    /// else, that is reported and the trace follows the model's actual answer.
    #[arg(long)]
    expect: Option<String>,
    /// Which occurrence of the subject to trace when it occurs more than once (0 = first).
    #[arg(long, default_value_t = 0)]
    subject_occurrence: usize,
}

/// The corruption chosen by `--noise-scale` / `--noise-std`, with σ over `subjects`.
pub fn corruption(
    loaded: &LoadedModel,
    noise_scale: Option<f64>,
    noise_std: Option<f64>,
    subjects: &[String],
) -> anyhow::Result<(Corruption, Option<f64>)> {
    if let Some(s) = noise_std {
        if !(s.is_finite() && s >= 0.0) {
            bail!("--noise-std {s} must be a finite number >= 0");
        }
        return Ok((
            Corruption::Gaussian {
                level: NoiseLevel::Std(s),
            },
            None,
        ));
    }
    let k = noise_scale.unwrap_or(3.0);
    if !(k.is_finite() && k >= 0.0) {
        bail!("--noise-scale {k} must be a finite number >= 0");
    }
    let sigma = embedding_std(&loaded.model, &loaded.tokenizer, subjects)?;
    Ok((
        Corruption::Gaussian {
            level: NoiseLevel::EmbeddingStdMultiple(k),
        },
        Some(sigma),
    ))
}

/// A short model name for figure labels (file stem).
pub fn model_name(path: &Path) -> String {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
    stem.split('.').next().unwrap_or(stem).to_string()
}

/// Runs `factscope trace`.
pub fn run(args: TraceArgs) -> anyhow::Result<()> {
    if args.samples == 0 {
        bail!("--samples must be at least 1");
    }
    // Check where results go before any work, so an unusable --out loses nothing, and claim
    // every name a trace may write (the one output-folder rule).
    if let Some(out) = &args.out {
        super::common::claim_outputs(out, args.force, &output_names())?;
    }
    let loaded = args.model.load()?;
    let n_layers = loaded.model.config().n_layers;
    if args.window == 0 || args.window > n_layers {
        bail!(
            "--window {} must be between 1 and the model's {n_layers} layers",
            args.window
        );
    }
    let prompt = SubjectPrompt::with_occurrence(
        &loaded.tokenizer,
        &args.prompt,
        &args.subject,
        args.subject_occurrence,
    )?;
    if prompt.occurrences > 1 {
        eprintln!(
            "warning: the subject {:?} occurs {} times in the prompt; tracing occurrence {} (tokens {}..{}; choose with --subject-occurrence N, from 0)",
            args.subject,
            prompt.occurrences,
            prompt.occurrence,
            prompt.subject_range.start,
            prompt.subject_range.end
        );
    }
    let (corruption, sigma) = corruption(
        &loaded,
        args.noise_scale,
        args.noise_std,
        std::slice::from_ref(&args.subject),
    )?;
    let setup = TraceSetup {
        samples: args.samples,
        corruption,
        sigma,
        seed: args.seed,
    };
    let started = std::time::Instant::now();
    let tracer = Tracer::new(&loaded.model, &loaded.tokenizer, prompt, setup, None)?;
    warn_if_noise_ineffective(tracer.clean_score(), tracer.corrupted_score());
    if let Some(expect) = &args.expect {
        let actual = &tracer.answer().text;
        if actual.trim() != expect.trim() {
            eprintln!(
                "warning: the model answers {actual:?} (p = {:.3}), not {expect:?}; tracing its actual answer",
                tracer.clean_score()
            );
        }
    }
    let mut specs: Vec<GridSpec> = args
        .kind
        .kinds()
        .into_iter()
        .map(|kind| GridSpec {
            window: args.window,
            ..GridSpec::new(kind)
        })
        .collect();
    if args.severed {
        for sever in [None, Some(Sever::Mlp), Some(Sever::Attn)] {
            specs.push(GridSpec {
                tokens: TokenSelection::SubjectLast,
                sever,
                ..GridSpec::new(TraceKind::Hidden)
            });
        }
    }
    let grids = grids_with_progress(&tracer, &specs, !args.json)?;
    let elapsed = started.elapsed();
    if let Some(out) = &args.out {
        write_grids(&grids, out, &model_name(&loaded.path))?;
        if args.severed {
            let plot = severed_plot(&grids[grids.len() - 3..])?;
            plot.save(&out.join("severed.svg"))?;
            plot.save(&out.join("severed.png"))?;
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&grids)?);
        return Ok(());
    }
    print_summary(&grids, sigma, elapsed);
    if let Some(out) = &args.out {
        println!("wrote grids and pictures to {}", out.display());
    }
    Ok(())
}

/// Computes the grids of `specs` with progress counted over every token row of every grid
/// (each grid's own stage, e.g. `mlp trace`), shown on stderr when `show`.
pub fn grids_with_progress(
    tracer: &Tracer<'_>,
    specs: &[GridSpec],
    show: bool,
) -> anyhow::Result<Vec<TraceGrid>> {
    let rows_per_grid = |s: &GridSpec| match &s.tokens {
        TokenSelection::All => tracer.prompt().len(),
        TokenSelection::SubjectLast => 1,
        TokenSelection::Indices(ix) => ix.len(),
    };
    let total: usize = specs.iter().map(rows_per_grid).sum();
    let mut view = ProgressView::shown_if(show, "");
    let mut grids = Vec::with_capacity(specs.len());
    let mut done_before = 0;
    for spec in specs {
        grids.push(tracer.grid_with_progress(spec, &mut |p: &Progress| {
            // One count over all the grids' rows.
            view.show(&Progress {
                done: done_before + p.done,
                total: Some(total as u64),
                ..p.clone()
            });
            ControlFlow::Continue(())
        })?);
        done_before += rows_per_grid(spec) as u64;
    }
    view.finish();
    Ok(grids)
}

/// The severed comparison (the paper's Figure 7 for one prompt): per layer, the effect of
/// restoring the last subject token's state (score − corrupted score) ordinarily, with the
/// MLP severed, and with attention severed.
fn severed_plot(grids: &[TraceGrid]) -> anyhow::Result<BarPlot> {
    let names = ["ordinary", "MLP severed", "attention severed"];
    let series = grids
        .iter()
        .zip(names)
        .map(|(g, name)| {
            let row = g.scores.first().cloned().unwrap_or_default();
            BarSeries::new(name, row.iter().map(|v| v - g.corrupted_score).collect())
        })
        .collect();
    let first = grids.first().context("no grids")?;
    let token = first
        .rows
        .first()
        .and_then(|&t| first.tokens.get(t))
        .cloned()
        .unwrap_or_default();
    Ok(BarPlot {
        categories: (0..first.n_layers).map(|l| l.to_string()).collect(),
        series,
        title: format!(
            "Effect of restoring the last subject token {token:?}\nwith MLP or attention severed"
        ),
        x_label: "layer of the restored state".into(),
        y_label: format!("{} − corrupted", first.metric),
    })
}

/// Every file name [`write_grids`] and the severed plot may write into `--out`, so that they
/// can be claimed before work starts.
pub fn output_names() -> Vec<String> {
    let mut stems = Vec::new();
    for kind in TraceKind::ALL {
        let k = kind.name();
        stems.push(format!("trace_{k}"));
        stems.push(format!("trace_{k}_rows"));
        for sever in ["mlp", "attn"] {
            stems.push(format!("trace_{k}_severed_{sever}"));
        }
    }
    stems.push("severed".into());
    stems
        .iter()
        .flat_map(|s| ["json", "svg", "png"].map(|ext| format!("{s}.{ext}")))
        .collect()
}

/// Writes `trace_{kind}.json`, `.svg` and `.png` for each grid.
pub fn write_grids(grids: &[TraceGrid], out: &Path, model_name: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for g in grids {
        let stem = match (g.sever, g.rows.len() == g.tokens.len()) {
            (None, true) => format!("trace_{}", g.kind.name()),
            (None, false) => format!("trace_{}_rows", g.kind.name()),
            (Some(s), _) => format!("trace_{}_severed_{s:?}", g.kind.name()).to_lowercase(),
        };
        let json = serde_json::to_vec_pretty(g)?;
        viz::write_atomic(&out.join(format!("{stem}.json")), &json)?;
        let map = g.to_heatmap(model_name);
        map.save(&out.join(format!("{stem}.svg")))?;
        map.save(&out.join(format!("{stem}.png")))?;
    }
    Ok(())
}

/// Warns (stderr) when the corrupted runs do not score below the clean run: the noise is
/// too weak to remove the fact (or so large or odd that the corrupted runs score above the
/// clean one), so the trace shows nothing.
pub fn warn_if_noise_ineffective(clean: f64, corrupted: f64) {
    // "Below" beyond rounding: with no noise the batched corrupted runs still differ from
    // the clean run in the last bits.
    let margin = 1e-4 * clean.abs();
    if corrupted >= clean - margin || corrupted.is_nan() || clean.is_nan() {
        let hint = if corrupted > clean + margin {
            "the noise makes the answer more likely: check its level (--noise-scale, --noise-std)"
        } else {
            "try a larger --noise-scale or --noise-std"
        };
        eprintln!(
            "warning: the corrupted run scores {corrupted:.4}, not below the clean run's {clean:.4}: the noise does not remove the fact; results are not meaningful ({hint})"
        );
    }
}

/// Prints the answer, the clean and corrupted scores and the strongest cell of each grid;
/// `sigma` (the subject embeddings' std, when known) spells out the relative noise level.
pub fn print_summary(grids: &[TraceGrid], sigma: Option<f64>, elapsed: std::time::Duration) {
    let Some(first) = grids.first() else { return };
    let (b, e) = first.subject_range;
    println!(
        "prompt: {:?}\nsubject: {:?} (tokens {b}..{e})\nanswer: {:?}  clean {} = {:.4}, corrupted = {:.4}\nnoise: {}, {} samples, seed {}",
        first.prompt,
        first.subject,
        first.answer.text,
        first.metric,
        first.clean_score,
        first.corrupted_score,
        first.noise.describe(sigma),
        first.samples,
        first.seed
    );
    for g in grids {
        let mut best = (f64::NEG_INFINITY, 0, 0);
        for (r, row) in g.scores.iter().enumerate() {
            for (l, &v) in row.iter().enumerate() {
                if v > best.0 {
                    best = (v, g.rows[r], l);
                }
            }
        }
        let (v, t, l) = best;
        let label = match g.sever {
            None => g.kind.name().to_string(),
            Some(Sever::Mlp) => "hidden, MLP severed".to_string(),
            Some(Sever::Attn) => "hidden, attention severed".to_string(),
        };
        println!(
            "  {label:<6} strongest restoration: token {t} {:?}{} at layer {l}: {v:.4}",
            g.tokens.get(t).map(String::as_str).unwrap_or(""),
            if t >= b && t < e { "*" } else { "" }
        );
    }
    println!("traced in {:.2} s", elapsed.as_secs_f64());
}
