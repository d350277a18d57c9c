//! `factscope edit`: write a fact into the weights (ROME / r-ROME) and show the model
//! before and after.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use gpt_core::{generate, EditableModel, GenerateOptions, HookableModel, Sampling};
use rome::{
    compute_rome, context_templates, KeyStats, RewriteRequest, RomeHparams, RomeVariant,
    StatsOptions, VSchedule,
};
use serde::Serialize;

use super::common::ModelArgs;
use super::predict::{predict, Prediction};
use super::stats::{cached_stats_path, compute_with_progress, load_corpus};

/// `--method`.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Method {
    /// ROME (original implementation of the update).
    Rome,
    /// r-ROME (k* everywhere).
    RRome,
    /// MEMIT (not implemented yet).
    Memit,
    /// Fine-tuning one MLP matrix under an L∞ constraint (not implemented yet).
    Ft,
}

/// Arguments of `factscope edit`.
#[derive(Args, Debug)]
pub struct EditArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The prompt, with `{}` where the subject goes (e.g. "{} is located in the city of").
    #[arg(long, required_unless_present = "requests")]
    prompt: Option<String>,
    /// The subject.
    #[arg(long, required_unless_present = "requests")]
    subject: Option<String>,
    /// The new target (e.g. "Rome").
    #[arg(long, required_unless_present = "requests")]
    target: Option<String>,
    /// The editing method.
    #[arg(long, value_enum, default_value_t = Method::Rome)]
    method: Method,
    /// The edited layer [default: the preset's; SmolLM2: 4].
    #[arg(long)]
    layer: Option<usize>,
    /// Key statistics of the layer (from `factscope stats`) [default: the cache, computed
    /// from the model-sampled corpus when missing].
    #[arg(long)]
    stats: Option<PathBuf>,
    /// A JSON list of {prompt, subject, target} requests, edited one after another.
    #[arg(long)]
    requests: Option<PathBuf>,
    /// Other prompts to show before and after (e.g. paraphrases, neighbours).
    #[arg(long = "check")]
    check: Vec<String>,
    /// Hyperparameter preset: gpt2-xl, gpt2-medium, gpt2-large, gpt-j, smollm2.
    #[arg(long, default_value = "smollm2")]
    preset: String,
    /// Save the weight changes (safetensors, with the requests and hyperparameters).
    #[arg(long)]
    save_delta: Option<PathBuf>,
    /// Write the edited model to a new Hugging Face folder (not implemented yet).
    #[arg(long)]
    save_model: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct EditReport {
    method: String,
    layers: Vec<usize>,
    requests: Vec<RewriteRequest>,
    before: Vec<Prediction>,
    after: Vec<Prediction>,
    seconds: f64,
    delta_norms: Vec<f64>,
    losses: Vec<Vec<f64>>,
}

fn requests(args: &EditArgs) -> anyhow::Result<Vec<RewriteRequest>> {
    if let Some(path) = &args.requests {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading --requests {}", path.display()))?;
        let list: Vec<RewriteRequest> = serde_json::from_str(&text).with_context(|| {
            format!(
                "--requests {}: expected a JSON list of {{prompt, subject, target}}",
                path.display()
            )
        })?;
        if list.is_empty() {
            bail!("--requests {}: the list is empty", path.display());
        }
        for (i, r) in list.iter().enumerate() {
            r.validate()
                .with_context(|| format!("--requests {}: request {i}", path.display()))?;
        }
        return Ok(list);
    }
    match (&args.prompt, &args.subject, &args.target) {
        (Some(p), Some(s), Some(t)) => Ok(vec![RewriteRequest::new(p, s, t)?]),
        _ => bail!("give --prompt, --subject and --target, or --requests"),
    }
}

/// Runs `factscope edit`.
pub fn run(args: EditArgs) -> anyhow::Result<()> {
    let variant = match args.method {
        Method::Rome => RomeVariant::Original,
        Method::RRome => RomeVariant::RRome,
        Method::Memit | Method::Ft => bail!(
            "--method {:?} is not implemented yet (rome and r-rome are)",
            args.method
        ),
    };
    if args.save_model.is_some() {
        bail!("--save-model is not implemented yet; use --save-delta");
    }
    if let Some(out) = &args.save_delta {
        factscope_common::fsio::ensure_writable_file(out, false)
            .with_context(|| format!("--save-delta {}", out.display()))?;
    }
    let requests = requests(&args)?;
    let mut loaded = args.model.load()?;
    let mut hp = RomeHparams::preset(&args.preset)?;
    if let Some(layer) = args.layer {
        hp.layer = layer;
    }
    hp.variant = variant;
    hp.validate(loaded.model.config().n_layers)?;

    let fingerprint = rome::model_fingerprint(&loaded.model, hp.layer)?;
    let stats = match &args.stats {
        Some(path) => {
            let stats = KeyStats::load(path)?;
            stats.check_for(path, &fingerprint, hp.layer)?;
            stats
        }
        None => {
            let corpus = load_corpus(&loaded, "generated")?;
            let path = cached_stats_path(&fingerprint, hp.layer, &corpus.fingerprint);
            if let Some(dir) = path.parent() {
                factscope_common::fsio::ensure_writable_dir(dir)?;
            }
            let stats =
                compute_with_progress(&loaded, &corpus, &StatsOptions::new(hp.layer), &path)?;
            stats.check_for(&path, &fingerprint, hp.layer)?;
            stats
        }
    };
    let c = stats.c()?;

    let shown: Vec<String> = requests
        .iter()
        .map(RewriteRequest::filled)
        .chain(args.check.iter().cloned())
        .collect();
    let before = shown
        .iter()
        .map(|p| predict(&loaded, p, 5))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let started = Instant::now();
    let templates = context_templates(
        &loaded.model,
        &loaded.tokenizer,
        &hp.context_template_length_params,
        hp.template_seed,
    )?;
    let mut deltas = Vec::new();
    let (mut norms, mut losses) = (Vec::new(), Vec::new());
    for r in &requests {
        let edit = compute_rome(
            &loaded.model,
            &loaded.tokenizer,
            r,
            &hp,
            Some(&c),
            &templates,
            VSchedule::Fast,
        )?;
        // Sequential edits: each request is computed on the model edited by the earlier ones.
        let undo = loaded.model.apply(&edit.delta)?;
        norms.push(edit.delta_norm);
        losses.push(edit.losses.clone());
        deltas.push((edit.delta, undo));
    }
    let seconds = started.elapsed().as_secs_f64();
    let after = shown
        .iter()
        .map(|p| predict(&loaded, p, 5))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(out) = &args.save_delta {
        let list: Vec<&gpt_core::WeightDelta> = deltas.iter().map(|(d, _)| d).collect();
        rome::save_deltas(out, &list, &requests, &hp)?;
    }
    let report = EditReport {
        method: format!("{:?}", args.method)
            .to_lowercase()
            .replace("rrome", "r-rome"),
        layers: vec![hp.layer],
        requests: requests.clone(),
        before,
        after,
        seconds,
        delta_norms: norms,
        losses,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    for (b, a) in report.before.iter().zip(&report.after) {
        let top = |p: &Prediction| {
            p.top
                .iter()
                .map(|c| format!("{:?} {:.1}%", c.text, 100.0 * c.probability))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("{}\n  before: {}\n  after:  {}", b.prompt, top(b), top(a));
    }
    let eos = loaded.tokenizer.eos_id();
    for r in &requests {
        let ids = loaded.tokenizer.encode(&r.filled())?.ids;
        let options = GenerateOptions {
            max_new_tokens: 20,
            sampling: Sampling::Greedy,
            stop_token: eos,
        };
        let mut new = generate(&loaded.model, &ids, &options)?;
        if new.last().is_some() && new.last() == eos.as_ref() {
            new.pop();
        }
        println!(
            "edited model: {}{}",
            r.filled(),
            loaded.tokenizer.decode(&new)?
        );
    }
    println!(
        "{} edit(s) at layer {} in {seconds:.1} s (‖ΔW‖ {})",
        requests.len(),
        hp.layer,
        report
            .delta_norms
            .iter()
            .map(|n| format!("{n:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(out) = &args.save_delta {
        println!("saved the weight changes to {}", out.display());
    }
    Ok(())
}
