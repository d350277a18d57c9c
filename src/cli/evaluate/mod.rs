//! `factscope evaluate`: run an editing method over CounterFact or zsRE cases (resumable,
//! sharded) and write per-case records, `summary.json`, `summary.md` and `report.html`.
//!
//! [`run`] goes step by step: `cases.rs` selects the cases and claims `--out`, `editor.rs`
//! builds the method's editor, `retention.rs` the probe of a sequential run, `scoring.rs`
//! edits and scores the cases (with `trace_examples.rs` for `--trace-examples`), and
//! `summary.rs` writes the summary and report (its sequential part from `sequential.rs`).

mod cases;
mod editor;
mod retention;
mod scoring;
mod sequential;
mod summary;
mod trace_examples;

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, ValueEnum};
use counterfact::{markdown_table, Bootstrap, RunDir, Summary};

use super::common::ModelArgs;
use scoring::Job;

pub use editor::{build_editor, EditorSettings};
pub use summary::{write_outputs, write_summary, Outputs};

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

/// Runs `factscope evaluate`.
pub fn run(args: EvaluateArgs) -> anyhow::Result<()> {
    check_flags(&args)?;
    let selected = cases::select_cases(&args)?;
    cases::claim_out(&args, selected.shard)?;
    let mut loaded = args.model.load()?;
    let (mut editor, hparams) = editor::editor_for(&args, &loaded)?;
    let probe = if args.sequential {
        retention::retention_probe(&args, &loaded, &selected.cases)?
    } else {
        None
    };
    let settings = scoring::run_settings(&args, &loaded, &selected, hparams, probe.as_ref())?;
    let shard = selected.shard;
    let (dir, done) =
        RunDir::open(&args.out, &settings, (shard.k, shard.n), args.resume).map_err(|e| {
            // The library says what is wrong with the folder; the flags to change are ours.
            let hint = match (&e, args.resume) {
                (counterfact::Error::Run { .. }, false) => {
                    " (use a new --out folder, or --resume to continue this run)"
                }
                (counterfact::Error::Run { .. }, true) => " (use a new --out folder)",
                _ => "",
            };
            anyhow::Error::new(e).context(format!("--out {}{hint}", args.out.display()))
        })?;
    let job = Job {
        args: &args,
        cases: &selected.cases,
        done: &done,
        dir: &dir,
        options: scoring::run_options(&args),
    };
    let scored = if args.sequential {
        let probe = probe.as_ref().map(|(_, p)| p);
        scoring::run_chain(job, &mut loaded, editor.as_deref_mut(), probe)?
    } else {
        scoring::run_independent(job, &mut loaded, editor.as_deref_mut())?
    };
    let boot = Bootstrap {
        seed: args.seed,
        ..Bootstrap::default()
    };
    let summary = write_summary(&args.out, boot, args.worst, &scored.traces, &selected.cases)?;
    print_summary(&args, &scored.did, &summary)
}

/// Refuses flag values and combinations no run can use, before anything is read.
fn check_flags(args: &EvaluateArgs) -> anyhow::Result<()> {
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
    Ok(())
}

/// Prints the summary: JSON with `--json`, else what this call did, the table, the
/// sequential part and where it was written.
fn print_summary(args: &EvaluateArgs, did: &str, summary: &Summary) -> anyhow::Result<()> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(summary)?);
    } else {
        println!("{did}; {} in the summary", summary.n);
        print!("{}", markdown_table(&[summary], true));
        print!("{}", sequential::sequential_markdown(summary));
        println!("wrote {}", args.out.join("summary.json").display());
    }
    Ok(())
}
