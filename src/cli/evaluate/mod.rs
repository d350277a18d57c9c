//! `factscope evaluate`: run an editing method over CounterFact or zsRE cases (resumable,
//! sharded) and write per-case records, `summary.json`, `summary.md` and `report.html`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use counterfact::report::{report_html, Figure as ReportFigure};
use counterfact::{
    load_cases, markdown_table, run_cases, run_sequential, summarize_dir, Bootstrap,
    RetentionProbe, RunDir, RunOptions, RunSettings, SequentialOptions, Summary,
};
use gpt_core::{Editor, HookableModel};
use rome::{AlphaEditEditor, EmmetEditor, FtEditor, MemitEditor, RomeEditor, RomeVariant};
use viz::{BarPlot, BarSeries, Figure};

use super::common::{check_out_dir, ModelArgs};
use super::edit::{
    alphaedit_setup, emmet_setup, ft_hparams, key_stats_for, memit_setup, rome_hparams,
};

/// `--method` of `evaluate`.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum EvalMethod {
    /// No edit: the unedited model's scores.
    None,
    /// ROME.
    Rome,
    /// r-ROME.
    RRome,
    /// MEMIT (the cases of a --batch written jointly).
    Memit,
    /// FT-L.
    Ft,
    /// AlphaEdit (the cases of a --batch written jointly; each batch independent).
    #[value(name = "alphaedit")]
    AlphaEdit,
    /// EMMET (the cases of a --batch written jointly).
    Emmet,
}

impl EvalMethod {
    /// The method's name, as `--method` spells it.
    pub fn name(self) -> &'static str {
        match self {
            EvalMethod::None => "none",
            EvalMethod::Rome => "rome",
            EvalMethod::RRome => "r-rome",
            EvalMethod::Memit => "memit",
            EvalMethod::Ft => "ft",
            EvalMethod::AlphaEdit => "alphaedit",
            EvalMethod::Emmet => "emmet",
        }
    }
}

/// `--shard K/N`: every N-th case starting at K (0-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This shard (0-based).
    pub k: usize,
    /// Shards in all.
    pub n: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}`: expected K/N, e.g. 0/4"))?;
        let k: usize = k
            .trim()
            .parse()
            .map_err(|_| format!("`{s}`: K is not a number"))?;
        let n: usize = n
            .trim()
            .parse()
            .map_err(|_| format!("`{s}`: N is not a number"))?;
        if n == 0 || k >= n {
            return Err(format!(
                "`{s}`: need 0 ≤ K < N (shards are numbered from 0)"
            ));
        }
        Ok(Shard { k, n })
    }
}

/// Arguments of `factscope evaluate`.
#[derive(Args, Debug)]
pub struct EvaluateArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The cases: a JSON list of CounterFact records (original or compact schema), of zsRE
    /// records (MEND's evaluation split: `src`, `subject`, `alt`, `answers`, `rephrase`,
    /// `loc`, `loc_ans`; scored by token accuracy) or of known-facts records (method none).
    #[arg(long)]
    cases: PathBuf,
    /// The editing method.
    #[arg(long, value_enum, default_value_t = EvalMethod::Rome)]
    method: EvalMethod,
    /// Use the first N cases (before sharding).
    #[arg(long, allow_negative_numbers = true)]
    limit: Option<usize>,
    /// The edited layer [default: the preset's].
    #[arg(long, allow_negative_numbers = true)]
    layer: Option<usize>,
    /// Key statistics of the layer (from `factscope stats`) [default: the cache].
    #[arg(long)]
    stats: Option<PathBuf>,
    /// Cases edited together before scoring (MEMIT, AlphaEdit, EMMET, FT-L: jointly; others:
    /// in sequence).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// The run folder (records, summary.json, summary.md, report.html).
    #[arg(long)]
    out: PathBuf,
    /// Write into --out even though it holds files factscope did not write (they are kept;
    /// a file with an output's name is still never replaced).
    #[arg(long)]
    force: bool,
    /// Continue the run in --out (its settings must match).
    #[arg(long)]
    resume: bool,
    /// Run shard K of N (0-based): every N-th case starting at K; shards share --out.
    #[arg(long, allow_hyphen_values = true)]
    shard: Option<Shard>,
    /// Skip malformed records (counted and reported) instead of stopping.
    #[arg(long)]
    skip_bad: bool,
    /// Skip the fluency test (no generation).
    #[arg(long)]
    no_generation: bool,
    /// In edit runs, also measure the unedited model's fluency (doubles generation time; a
    /// `none` run over the same cases gives it too).
    #[arg(long)]
    pre_generation: bool,
    /// Seed of generation sampling and bootstrap intervals.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Hyperparameter preset: gpt2-xl, gpt2-medium, gpt2-large, gpt-j, neox-20b, llama-7b,
    /// smollm2, or `auto`: the one made for this model (by family, depth and width); for a
    /// model no preset was made for, `auto` needs --layer and uses the paper's GPT-2 XL values.
    #[arg(long, default_value = "auto")]
    preset: String,
    /// Add causal traces (hidden states, 10 samples, 3σ) of the first N cases' rewrite
    /// prompts before and after their edit to report.html (and `trace_examples/`).
    #[arg(long, default_value_t = 0)]
    trace_examples: usize,
    /// Worst cases listed in report.html.
    #[arg(long, default_value_t = 10)]
    worst: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Keep every edit: write --batch cases at a time into the same model (no restore), then
    /// score all edited cases on the model that holds them all (resumable; not with --shard).
    #[arg(long)]
    sequential: bool,
    /// With --sequential: also score everything edited so far every K edits (the curve in
    /// summary.json and report.html).
    #[arg(long, value_name = "K", requires = "sequential")]
    checkpoint_every: Option<usize>,
    /// With --sequential: held-out text for perplexity before, during and after the edits
    /// (a .jsonl file with `text` fields, plain text, or a folder of either). Keep it out of
    /// the key statistics: the default statistics come from model-sampled text, not from it.
    #[arg(long, requires = "sequential")]
    retention_text: Option<PathBuf>,
    /// Tokens of --retention-text used (from its start, in windows of up to 512 tokens).
    #[arg(long, default_value_t = 4096, requires = "retention_text")]
    retention_tokens: usize,
    /// Do not reuse or store MEMIT / AlphaEdit / EMMET target residuals in the per-user cache
    /// (by content: model, layer, request, z settings; a sweep over λ or the first layers
    /// reuses them; sequential runs never use it — each batch sees a new model).
    #[arg(long)]
    no_target_cache: bool,
    /// With --sequential: known-facts records (the `known_1000.json` format) whose top-1
    /// accuracy is measured before, during and after the edits; facts about an edited
    /// subject are left out.
    #[arg(long, requires = "sequential")]
    known_facts: Option<PathBuf>,
}

/// The editor for `method` with its statistics, and its hyperparameters as JSON.
fn editor_for(
    args: &EvaluateArgs,
    loaded: &gpt_core::LoadedModel,
) -> anyhow::Result<(Option<Box<dyn Editor>>, serde_json::Value)> {
    build_editor(
        args.method,
        &EditorSettings {
            preset: &args.preset,
            layer: args.layer,
            stats: args.stats.as_deref(),
            target_cache: target_cache(args),
            // Independent batches are scored and undone before the next: no key history
            // carries over (it would protect keys of edits no longer in the model, and make
            // a batch's result depend on the order of shards and resumes). Sequential runs
            // keep every edit, so each batch's keys join the history, as the reference does.
            history_updates: args.sequential,
        },
        loaded,
    )
}

/// What an editor is built from besides its method.
pub struct EditorSettings<'a> {
    /// The hyperparameter preset (`auto`: the one made for the model).
    pub preset: &'a str,
    /// The layer, overriding the preset's.
    pub layer: Option<usize>,
    /// Key statistics from this file instead of the per-user cache.
    pub stats: Option<&'a Path>,
    /// The target-residual cache of MEMIT, AlphaEdit and EMMET.
    pub target_cache: Option<rome::TargetCache>,
    /// AlphaEdit: whether each computation's keys join the protected history (when edits
    /// stay in the model).
    pub history_updates: bool,
}

/// The editor for `method` (`None` for `none`) with its statistics, and its hyperparameters
/// as JSON.
pub fn build_editor(
    method: EvalMethod,
    settings: &EditorSettings<'_>,
    loaded: &gpt_core::LoadedModel,
) -> anyhow::Result<(Option<Box<dyn Editor>>, serde_json::Value)> {
    let (preset, layer, stats) = (settings.preset, settings.layer, settings.stats);
    let cache = || settings.target_cache.clone();
    Ok(match method {
        EvalMethod::None => (None, serde_json::Value::Null),
        EvalMethod::Rome | EvalMethod::RRome => {
            let variant = if method == EvalMethod::RRome {
                RomeVariant::RRome
            } else {
                RomeVariant::Original
            };
            let hp = rome_hparams(preset, layer, variant, loaded.model.config())?;
            let c = key_stats_for(loaded, hp.layer, stats)?.c()?;
            let value = serde_json::to_value(&hp)?;
            (Some(Box::new(RomeEditor::new(hp, Some(c)))), value)
        }
        EvalMethod::Memit => {
            let (hp, cs) = memit_setup(loaded, preset, layer, stats)?;
            let value = serde_json::to_value(&hp)?;
            let editor = MemitEditor::new(hp, cs).with_target_cache(cache());
            (Some(Box::new(editor)), value)
        }
        EvalMethod::AlphaEdit => {
            let (hp, cs) = alphaedit_setup(loaded, preset, layer, stats)?;
            let value = serde_json::to_value(&hp)?;
            let editor = AlphaEditEditor::new(hp, &cs)?
                .with_history_updates(settings.history_updates)
                .with_target_cache(cache());
            (Some(Box::new(editor)), value)
        }
        EvalMethod::Emmet => {
            let (hp, cs) = emmet_setup(loaded, preset, layer, stats)?;
            let value = serde_json::to_value(&hp)?;
            let editor = EmmetEditor::new(hp, cs).with_target_cache(cache());
            (Some(Box::new(editor)), value)
        }
        EvalMethod::Ft => {
            let hp = ft_hparams(preset, layer, loaded.model.config())?;
            let value = serde_json::to_value(&hp)?;
            (Some(Box::new(FtEditor { hparams: hp })), value)
        }
    })
}

/// The target-residual cache of a run: the per-user one, except with --no-target-cache and
/// in sequential runs (where no model state repeats).
fn target_cache(args: &EvaluateArgs) -> Option<rome::TargetCache> {
    (!args.no_target_cache && !args.sequential).then(rome::TargetCache::default_location)
}

/// Runs `factscope evaluate`.
pub fn run(args: EvaluateArgs) -> anyhow::Result<()> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    if args.sequential {
        if args.method == EvalMethod::None {
            bail!("--sequential needs an editing --method (`none` edits nothing)");
        }
        if args.shard.is_some_and(|s| s.n > 1) {
            bail!("--sequential runs are one chain of edits: they cannot be split with --shard");
        }
        if args.checkpoint_every == Some(0) {
            bail!("--checkpoint-every must be at least 1");
        }
    }
    let loaded_cases = load_cases(&args.cases, args.skip_bad)?;
    for e in &loaded_cases.skipped {
        eprintln!("skipped: {e}");
    }
    if !loaded_cases.skipped.is_empty() {
        eprintln!(
            "skipped {} malformed record(s) of {}",
            loaded_cases.skipped.len(),
            loaded_cases.skipped.len() + loaded_cases.cases.len()
        );
    }
    let loaded_cases_count = loaded_cases.cases.len();
    let cases_fingerprint = loaded_cases.fingerprint;
    let mut cases = loaded_cases.cases;
    if let Some(limit) = args.limit {
        cases.truncate(limit);
    }
    let shard = args.shard.unwrap_or(Shard { k: 0, n: 1 });
    let cases = counterfact::dataset::shard(&cases, shard.k, shard.n)?;
    // An empty selection is an error before anything is written, so a mistaken --limit or
    // --shard never leaves a folder behind that blocks the next run.
    if cases.is_empty() {
        bail!(
            "no cases selected: {} usable case(s) in {}, --limit {}, --shard {}/{}",
            loaded_cases_count,
            args.cases.display(),
            args.limit.map_or("none".to_string(), |l| l.to_string()),
            shard.k,
            shard.n
        );
    }
    // The one output-folder rule: a new or empty folder, or one holding only factscope's
    // outputs; files factscope did not write are kept and never replaced (--force or
    // --resume accept a folder that has some).
    super::common::claim_outputs(
        &args.out,
        args.force || args.resume,
        &[
            counterfact::record::SETTINGS.to_string(),
            format!("records-{}-of-{}.jsonl", shard.k, shard.n),
            "summary.json".into(),
            "summary.md".into(),
            "summary.svg".into(),
            "summary.png".into(),
            "report.html".into(),
            "trace_examples".into(),
            counterfact::sequential::SEQUENTIAL_DIR.into(),
        ],
    )?;
    let mut loaded = args.model.load()?;
    let (mut editor, hparams) = editor_for(&args, &loaded)?;
    let probe = if args.sequential {
        retention_probe(&args, &loaded, &cases)?
    } else {
        None
    };
    let settings = RunSettings {
        method: args.method.name().into(),
        model: args.model.path()?.display().to_string(),
        model_fingerprint: rome::model_fingerprint(&loaded.model, 0)?,
        cases: args.cases.display().to_string(),
        cases_fingerprint,
        limit: args.limit,
        batch: args.batch,
        generation: !args.no_generation,
        seed: args.seed,
        hparams,
        sequential: args.sequential.then(|| counterfact::SequentialSettings {
            checkpoint_every: args.checkpoint_every,
            retention: probe.as_ref().map(|(what, _)| what.clone()),
        }),
    };
    let (dir, done) = RunDir::open(&args.out, &settings, (shard.k, shard.n), args.resume)?;
    let options = RunOptions {
        batch: args.batch,
        generation: !args.no_generation,
        pre_generation: args.pre_generation,
        seed: args.seed,
        ..RunOptions::default()
    };
    let mut view = super::progress::ProgressView::new(&format!("evaluate {}", settings.method));
    // What this call did, for the line above the table; and trace figures for the report.
    let (did, traces) = if args.sequential {
        let editor = editor
            .as_deref_mut()
            .context("--sequential needs an editing --method")?;
        let outcome = run_sequential(
            &mut loaded.model,
            &loaded.tokenizer,
            editor,
            &cases,
            &done,
            &SequentialOptions {
                batch: args.batch,
                checkpoint_every: args.checkpoint_every,
                run: options,
            },
            probe.as_ref().map(|(_, p)| p),
            &dir,
            &mut view.callback(),
        )?;
        view.finish();
        for (id, e) in &outcome.failed {
            eprintln!("case {id} not edited (its batch failed): {e}");
        }
        let did = format!(
            "{} edit(s) in the model ({} batch(es) written now), {} case(s) recorded now",
            outcome.edits, outcome.batches, outcome.recorded
        );
        (did, Vec::new())
    } else {
        let outcome = run_cases(
            &mut loaded.model,
            &loaded.tokenizer,
            editor.as_deref_mut(),
            &cases,
            &done,
            &options,
            &dir,
            &mut view.callback(),
        )?;
        view.finish();
        for (id, e) in &outcome.failed {
            eprintln!("case {id} failed: {e}");
        }
        let traces = match editor.as_deref_mut() {
            Some(editor) if args.trace_examples > 0 => trace_examples(
                &mut loaded,
                editor,
                &cases[..args.trace_examples.min(cases.len())],
                &args.out.join("trace_examples"),
            )?,
            _ => Vec::new(),
        };
        let did = format!(
            "{} case(s) now, {} done before{}",
            outcome.finished,
            outcome.already_done,
            if outcome.failed.is_empty() {
                String::new()
            } else {
                format!(", {} failed", outcome.failed.len())
            }
        );
        (did, traces)
    };
    let summary = write_summary(
        &args.out,
        Bootstrap {
            seed: args.seed,
            ..Bootstrap::default()
        },
        args.worst,
        &traces,
    )?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!("{did}; {} in the summary", summary.n);
        print!("{}", markdown_table(&[&summary], true));
        print!("{}", sequential_markdown(&summary));
        println!("wrote {}", args.out.join("summary.json").display());
    }
    Ok(())
}

/// Summarises every shard's records in `dir` into `summary.json`, `summary.md`, bars and
/// `report.html`.
pub fn write_summary(
    dir: &Path,
    boot: Bootstrap,
    worst: usize,
    extra: &[ReportFigure],
) -> anyhow::Result<Summary> {
    let (summary, records) = summarize_dir(dir, boot)?;
    factscope_common::write_json_atomic(&dir.join("summary.json"), &summary)?;
    let settings = counterfact::read_settings(dir)?;
    let mut details = super::common::invocation_details();
    details.extend(counterfact::report::run_details(&settings, &summary));
    let mut figures = curve_figures(&summary)?;
    figures.extend(extra.iter().cloned());
    let dataset = if summary.has_zsre() {
        "zsRE"
    } else {
        "CounterFact"
    };
    write_outputs(
        dir,
        "summary",
        "report.html",
        &format!("{dataset}: {} on {}", summary.method, summary.model),
        &details,
        &[&summary],
        &figures,
        &records,
        worst,
        &sequential_markdown(&summary),
    )?;
    Ok(summary)
}

/// The retention probe of a sequential run (with a description of what it measures, for the
/// run's settings), or `None` when neither --retention-text nor --known-facts is given.
fn retention_probe(
    args: &EvaluateArgs,
    loaded: &gpt_core::LoadedModel,
    cases: &[counterfact::EditCase],
) -> anyhow::Result<Option<(String, RetentionProbe)>> {
    if args.retention_text.is_none() && args.known_facts.is_none() {
        eprintln!(
            "note: no retention measured (give --retention-text and --known-facts to measure it)"
        );
        return Ok(None);
    }
    let mut what = Vec::new();
    let documents = match &args.retention_text {
        Some(path) => {
            let corpus = rome::Corpus::from_path(path)
                .with_context(|| format!("--retention-text {}", path.display()))?;
            what.push(format!(
                "text {} ({}, {} tokens)",
                path.display(),
                corpus.fingerprint,
                args.retention_tokens
            ));
            corpus.documents
        }
        None => Vec::new(),
    };
    let known = match &args.known_facts {
        Some(path) => {
            let loaded_known = load_cases(path, false)
                .with_context(|| format!("--known-facts {}", path.display()))?;
            if let Some(c) = loaded_known
                .cases
                .iter()
                .find(|c| c.kind != counterfact::CaseKind::KnownFact)
            {
                bail!(
                    "--known-facts {}: case {} is not a known-facts record (fields `known_id`, `subject`, `attribute`, `prompt`)",
                    path.display(),
                    c.case_id
                );
            }
            what.push(format!(
                "known facts {} ({})",
                path.display(),
                loaded_known.fingerprint
            ));
            loaded_known.cases
        }
        None => Vec::new(),
    };
    let window = 512.min(loaded.model.config().n_ctx);
    let subjects = cases
        .iter()
        .map(|c| c.request.subject.trim().to_string())
        .collect();
    let probe = RetentionProbe::new(
        &loaded.tokenizer,
        &documents,
        args.retention_tokens,
        window,
        known,
    )?
    .without_subjects(&subjects);
    if args.retention_text.is_some() && probe.text_tokens() == 0 {
        bail!("--retention-text: no text to measure perplexity on");
    }
    Ok(Some((what.join("; "), probe)))
}

/// The sequential part of summary.md: edits, retention and the curve (empty for other runs).
fn sequential_markdown(summary: &Summary) -> String {
    use std::fmt::Write;
    let Some(seq) = &summary.sequential else {
        return String::new();
    };
    let mut md = format!(
        "\n## Sequential editing\n\n{} edits kept in the model, {} per edit call{}.\n",
        seq.edits,
        seq.batch,
        if seq.failed > 0 {
            format!(" ({} case(s) of failed batches not edited)", seq.failed)
        } else {
            String::new()
        }
    );
    let num =
        |v: Option<f64>, scale: f64| v.map_or("–".to_string(), |v| format!("{:.2}", v * scale));
    if let Some(r) = &summary.retention {
        let _ = write!(
            md,
            "\n| retention | before | after |\n|---|---|---|\n| held-out perplexity | {} | {} |\n| known facts top-1 (%) | {} | {} |\n",
            num(r.perplexity.before, 1.0),
            num(r.perplexity.after, 1.0),
            num(r.known_facts.before, 100.0),
            num(r.known_facts.after, 100.0)
        );
    }
    if !summary.curve.is_empty() {
        // The benchmark's headline metrics first, in their usual order.
        let mut names: Vec<&str> = [
            "ES",
            "PS",
            "NS",
            "S",
            "efficacy",
            "paraphrase",
            "specificity",
        ]
        .into_iter()
        .filter(|m| summary.curve.iter().any(|p| p.metrics.contains_key(*m)))
        .collect();
        for p in &summary.curve {
            for k in p.metrics.keys() {
                if !names.contains(&k.as_str()) && !matches!(k.as_str(), "EM" | "PM" | "NM") {
                    names.push(k);
                }
            }
        }
        let _ = write!(
            md,
            "\n| edits | {} | perplexity | known facts |\n|---|",
            names.join(" | ")
        );
        md.push_str(&"---|".repeat(names.len() + 2));
        md.push('\n');
        for p in &summary.curve {
            let cells: Vec<String> = names
                .iter()
                .map(|n| {
                    let scale = if *n == "GE" { 1.0 } else { 100.0 };
                    num(p.metrics.get(*n).copied(), scale)
                })
                .collect();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                p.edits,
                cells.join(" | "),
                num(p.perplexity, 1.0),
                num(p.known_facts, 100.0)
            );
        }
        md.push_str(
            "\nRates in percent; GE where texts were generated (all edits; 0 edits with --pre-generation).\n",
        );
    }
    md
}

/// Line plots of a sequential run's curve: the rates (and known-facts accuracy) against the
/// number of edits, and the held-out perplexity; none for other runs.
fn curve_figures(summary: &Summary) -> anyhow::Result<Vec<ReportFigure>> {
    if summary.curve.len() < 2 {
        return Ok(Vec::new());
    }
    let x: Vec<f64> = summary.curve.iter().map(|p| p.edits as f64).collect();
    let headline: &[&str] = if summary.has_zsre() {
        &counterfact::summary::ZSRE_METRICS
    } else {
        &["ES", "PS", "NS", "S"]
    };
    let mut series: Vec<viz::Series> = headline
        .iter()
        .filter(|m| summary.curve.iter().any(|p| p.metrics.contains_key(**m)))
        .map(|m| {
            viz::Series::new(
                counterfact::summary::metric_title(m),
                x.clone(),
                summary
                    .curve
                    .iter()
                    .map(|p| p.metrics.get(*m).map_or(f64::NAN, |v| 100.0 * v))
                    .collect(),
            )
        })
        .collect();
    if summary.curve.iter().any(|p| p.known_facts.is_some()) {
        series.push(viz::Series::new(
            "known facts top-1",
            x.clone(),
            summary
                .curve
                .iter()
                .map(|p| p.known_facts.map_or(f64::NAN, |v| 100.0 * v))
                .collect(),
        ));
    }
    let edits = summary.sequential.as_ref().map_or(0, |s| s.edits);
    let batch = summary.sequential.as_ref().map_or(0, |s| s.batch);
    let mut figures = vec![ReportFigure {
        title: format!(
            "{} after each number of sequential edits (batches of {batch}; every edited case so far)",
            summary.method
        ),
        svg: viz::LinePlot {
            series,
            title: format!("{}: {edits} sequential edits", summary.method),
            x_label: "edits in the model".into(),
            y_label: "percent".into(),
        }
        .to_svg()?,
    }];
    if summary.curve.iter().any(|p| p.perplexity.is_some()) {
        figures.push(ReportFigure {
            title: "Held-out perplexity against the number of edits".into(),
            svg: viz::LinePlot {
                series: vec![viz::Series::new(
                    "perplexity",
                    x,
                    summary
                        .curve
                        .iter()
                        .map(|p| p.perplexity.unwrap_or(f64::NAN))
                        .collect(),
                )],
                title: format!("{}: held-out perplexity", summary.method),
                x_label: "edits in the model".into(),
                y_label: "perplexity".into(),
            }
            .to_svg()?,
        });
    }
    Ok(figures)
}

/// Writes `{stem}.md` (the table), `{stem}.svg` / `.png` (bars with intervals, rendered
/// once) and the HTML report `page` of `summaries` into `dir`, with how the run was made
/// (`details`), `extra` figures and the `worst` cases of `records`.
#[allow(clippy::too_many_arguments)]
pub fn write_outputs(
    dir: &Path,
    stem: &str,
    page: &str,
    title: &str,
    details: &[(String, String)],
    summaries: &[&Summary],
    extra: &[ReportFigure],
    records: &[counterfact::CaseRecord],
    worst: usize,
    extra_markdown: &str,
) -> anyhow::Result<()> {
    let write = |name: String, bytes: &[u8]| {
        let path = dir.join(name);
        factscope_common::write_atomic(&path, bytes)
            .with_context(|| format!("writing {}", path.display()))
    };
    write(
        format!("{stem}.md"),
        format!("{}{extra_markdown}", markdown_table(summaries, true)).as_bytes(),
    )?;
    let mut figures: Vec<ReportFigure> = Vec::new();
    if let Some(plot) = bars(summaries, true) {
        let svg = plot.to_svg()?;
        write(format!("{stem}.svg"), svg.as_bytes())?;
        write(
            format!("{stem}.png"),
            &viz::svg_to_png(&svg, viz::DEFAULT_PNG_SCALE)?,
        )?;
        figures.push(ReportFigure {
            title: "Scores with 95% intervals (bootstrap over cases; rates at least Wilson's)"
                .into(),
            svg,
        });
    }
    figures.extend(extra.iter().cloned());
    let html = report_html(title, details, summaries, &figures, records, worst);
    write(page.to_string(), html.as_bytes())
}

/// Causal traces (hidden states) of each case's rewrite prompt before and after its edit,
/// as report figures; also written to `dir` as SVG. The model is restored after each.
fn trace_examples(
    loaded: &mut gpt_core::LoadedModel,
    editor: &mut dyn Editor,
    cases: &[counterfact::EditCase],
    dir: &Path,
) -> anyhow::Result<Vec<ReportFigure>> {
    use causal_trace::{GridSpec, SubjectPrompt, TraceKind, TraceSetup, Tracer};
    check_out_dir("--trace-examples", dir)?;
    let name = super::trace::model_name(&loaded.path);
    let mut figures = Vec::new();
    for case in cases {
        let subjects = [case.request.subject.clone()];
        let (corruption, sigma) = super::trace::corruption(loaded, None, None, &subjects)?;
        let setup = TraceSetup {
            samples: 10,
            corruption,
            sigma,
            seed: 1,
        };
        let trace = |loaded: &gpt_core::LoadedModel| -> anyhow::Result<(String, String)> {
            let prompt = SubjectPrompt::new(
                &loaded.tokenizer,
                &case.request.filled(),
                &case.request.subject,
            )?;
            let tracer = Tracer::new(
                &loaded.model,
                &loaded.tokenizer,
                prompt,
                setup.clone(),
                None,
            )?;
            let grid = tracer.grid(&GridSpec::new(TraceKind::Hidden))?;
            Ok((
                grid.to_heatmap(&name).to_svg()?,
                tracer.answer().text.clone(),
            ))
        };
        let (before, answer_before) = trace(loaded)?;
        let undos = gpt_core::apply_edits(
            editor,
            &mut loaded.model,
            &loaded.tokenizer,
            std::slice::from_ref(&case.request),
        )?;
        let after = trace(loaded);
        gpt_core::undo_all(&mut loaded.model, &undos)?;
        let (after, answer_after) = after?;
        for (when, svg, answer) in [
            ("before", before, answer_before),
            ("after", after, answer_after),
        ] {
            factscope_common::write_atomic(
                &dir.join(format!("case_{}_{when}.svg", case.case_id)),
                svg.as_bytes(),
            )?;
            figures.push(ReportFigure {
                title: format!(
                    "Case {}, {when} the edit (→ {}): hidden-state trace of {:?}, answer {answer:?}",
                    case.case_id,
                    case.request.target,
                    case.request.filled()
                ),
                svg,
            });
        }
    }
    Ok(figures)
}

/// Bars of the headline metrics (ES, PS, NS and S; zsRE runs: Efficacy, Paraphrase,
/// Specificity) in percent per run with their intervals, the first run's unedited scores as
/// the first series when `with_pre`; `None` when no summary has a finite value of any (a run
/// of no case, or of records without those metrics): figures draw what exists and never fail
/// a run for what it does not measure.
fn bars(summaries: &[&Summary], with_pre: bool) -> Option<BarPlot> {
    let zsre = !summaries.is_empty() && summaries.iter().all(|s| s.has_zsre());
    let mut tables: Vec<(String, &counterfact::summary::MetricTable)> = Vec::new();
    if with_pre {
        if let Some(first) = summaries.first() {
            tables.push(("unedited".into(), &first.pre));
        }
    }
    for s in summaries {
        tables.push((s.display_name().to_string(), &s.metrics));
    }
    // The benchmark's headline metrics first, then whatever else the runs measured.
    let headline: &[&str] = if zsre {
        &counterfact::summary::ZSRE_METRICS
    } else {
        &["ES", "PS", "NS", "S"]
    };
    let mut metrics: Vec<String> = headline.iter().map(|m| m.to_string()).collect();
    for (_, t) in &tables {
        for k in t.keys() {
            if !metrics.contains(k) && !matches!(k.as_str(), "GE" | "RS") {
                metrics.push(k.clone());
            }
        }
    }
    metrics.retain(|m| {
        tables
            .iter()
            .any(|(_, t)| t.get(m).is_some_and(|i| i.mean.is_finite()))
    });
    if metrics.is_empty() {
        return None;
    }
    let series = tables
        .into_iter()
        .map(|(name, table)| {
            let get = |m: &str, f: fn(&counterfact::Interval) -> f64| {
                table.get(m).map_or(f64::NAN, |i| 100.0 * f(i))
            };
            BarSeries::new(name, metrics.iter().map(|m| get(m, |i| i.mean)).collect()).with_band(
                metrics.iter().map(|m| get(m, |i| i.lo)).collect(),
                metrics.iter().map(|m| get(m, |i| i.hi)).collect(),
            )
        })
        .collect();
    Some(BarPlot {
        categories: metrics
            .iter()
            .map(|m| counterfact::summary::metric_title(m).to_string())
            .collect(),
        series,
        title: format!(
            "{} ({} cases)",
            if zsre { "zsRE" } else { "CounterFact" },
            summaries.first().map_or(0, |s| s.n)
        ),
        x_label: "metric".into(),
        y_label: "percent".into(),
    })
}
