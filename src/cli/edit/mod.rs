//! `factscope edit`: write facts into the weights (ROME, r-ROME, MEMIT, AlphaEdit, EMMET,
//! FT-L) and show the model before and after.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use gpt_core::{generate, EditableModel, GenerateOptions, HookableModel, Progress, Sampling};
use rome::{
    compute_rome, context_templates, KeyStats, RewriteRequest, RomeHparams, RomeVariant, Schedule,
    StatsOptions,
};
use serde::Serialize;

use super::common::ModelArgs;
use super::predict::{predict, Prediction};
use super::progress::ProgressView;
use super::stats::{compute_with_progress, load_corpus};

/// `--method`.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Method {
    /// ROME (original implementation of the update).
    Rome,
    /// r-ROME (k* everywhere).
    RRome,
    /// MEMIT: all requests at once over several layers.
    Memit,
    /// FT-L: fine-tuning one MLP matrix under an L∞ constraint (the paper's baseline).
    Ft,
    /// AlphaEdit: MEMIT with each layer's change in the null space of its key statistics.
    #[value(name = "alphaedit")]
    AlphaEdit,
    /// EMMET: all requests at once with equality constraints (batched ROME).
    Emmet,
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
    #[arg(long, allow_negative_numbers = true)]
    layer: Option<usize>,
    /// Key statistics of the layer (from `factscope stats`) [default: the cache, computed
    /// from the model-sampled corpus when missing].
    #[arg(long)]
    stats: Option<PathBuf>,
    /// A JSON list of {prompt, subject, target} requests, edited one after another (ROME,
    /// r-ROME) or jointly (MEMIT, AlphaEdit, EMMET, FT-L); not together with --prompt,
    /// --subject or --target.
    #[arg(long, conflicts_with_all = ["prompt", "subject", "target"])]
    requests: Option<PathBuf>,
    /// Other prompts to show before and after (e.g. paraphrases, neighbours).
    #[arg(long = "check")]
    check: Vec<String>,
    /// Hyperparameter preset: gpt2-xl, gpt2-medium, gpt2-large, gpt-j, neox-20b, llama-7b,
    /// smollm2, or `auto`: the one made for this model (by family, depth and width); for a
    /// model no preset was made for, `auto` needs --layer and uses the paper's GPT-2 XL values.
    #[arg(long, default_value = "auto")]
    preset: String,
    /// Save the weight changes (safetensors, with the requests and hyperparameters).
    #[arg(long)]
    save_delta: Option<PathBuf>,
    /// Write the edited model to a new Hugging Face folder (config.json, model.safetensors in
    /// f32, tokenizer.json); never over an existing folder.
    #[arg(long)]
    save_model: Option<PathBuf>,
    /// AlphaEdit: the key history `K_pK_pᵀ` of the edits written before (read from this
    /// folder when it exists) — which this edit leaves alone — and where it is written back
    /// with this edit's keys added. For sequential edits across runs, each on the model the
    /// previous one saved (--save-model / --save-gguf).
    #[arg(long, value_name = "DIR")]
    key_history: Option<PathBuf>,
    /// Write the edited model as a new GGUF file (the model must be a .gguf): the input's
    /// metadata, tokenizer and untouched tensors copied byte for byte, each edited matrix
    /// stored as --gguf-edited-type; the file is then loaded back and its predictions shown.
    #[arg(long, value_name = "OUT.gguf")]
    save_gguf: Option<PathBuf>,
    /// How --save-gguf stores edited matrices: `same` (re-quantised to their type in the
    /// input), `f16` or `f32` (the edit without rounding).
    #[arg(long, value_enum, default_value_t = GgufEditedType::Same, requires = "save_gguf")]
    gguf_edited_type: GgufEditedType,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `--gguf-edited-type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GgufEditedType {
    /// The matrix's type in the input file.
    Same,
    /// F16.
    F16,
    /// F32.
    F32,
}

/// The edited model written as GGUF and read back (`--save-gguf`).
#[derive(Serialize)]
struct GgufReport {
    path: PathBuf,
    /// What each edited matrix became, with its rounding.
    tensors: Vec<gpt_core::SavedTensor>,
    /// The prompts' top-5 from the written file.
    predictions: Vec<Prediction>,
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
    /// AlphaEdit: the directions each layer's null-space projector keeps.
    #[serde(skip_serializing_if = "Option::is_none")]
    kept: Option<Vec<usize>>,
    /// `--save-gguf`: the written file and what it predicts.
    #[serde(skip_serializing_if = "Option::is_none")]
    gguf: Option<GgufReport>,
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

/// The key statistics of `layer`: read from `path` (checked against the model and layer),
/// or from the per-user cache of the model-sampled corpus, computing them first if needed.
pub fn key_stats_for(
    loaded: &gpt_core::LoadedModel,
    layer: usize,
    path: Option<&std::path::Path>,
) -> anyhow::Result<KeyStats> {
    key_stats_with(loaded, layer, path, &mut None)
}

/// [`key_stats_for`], sampling the corpus at most once into `corpus` across calls.
fn key_stats_with(
    loaded: &gpt_core::LoadedModel,
    layer: usize,
    path: Option<&std::path::Path>,
    corpus: &mut Option<rome::Corpus>,
) -> anyhow::Result<KeyStats> {
    let fingerprint = rome::model_fingerprint(&loaded.model, layer)?;
    if let Some(path) = path {
        let stats = KeyStats::load(path)?;
        stats.check_for(path, &fingerprint, layer)?;
        return Ok(stats);
    }
    // The per-user cache (rome's `StatsCache`, shared with library users) of the seeded
    // model-sampled corpus: a complete file is used without sampling the corpus again.
    let cache = rome::StatsCache::default_location();
    let key = rome::StatsCache::generated_key(&rome::GeneratedCorpus::default());
    if let Some(stats) = cache.complete(&loaded.model, layer, &key)? {
        return Ok(stats);
    }
    let path = cache.path(&fingerprint, layer, &key);
    if let Some(dir) = path.parent() {
        super::common::check_out_dir("the statistics cache", dir)?;
    }
    if corpus.is_none() {
        *corpus = Some(load_corpus(loaded, "generated")?);
    }
    let corpus = corpus
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no corpus"))?;
    let stats = compute_with_progress(loaded, corpus, &StatsOptions::new(layer), &path)?;
    stats.check_for(&path, &fingerprint, layer)?;
    Ok(stats)
}

/// The preset `--preset` names for a model of `config`: the named one, or for `auto` the
/// preset made for this model; `None` when `auto` finds none (the caller then needs a layer).
fn resolve_preset(
    preset: &str,
    config: &gpt_core::ModelConfig,
) -> anyhow::Result<Option<rome::Preset>> {
    if preset == "auto" {
        Ok(rome::Preset::for_model(config))
    } else {
        let named = preset
            .parse::<rome::Preset>()
            .map_err(|e| anyhow::anyhow!("--preset: {e}"))?;
        Ok(Some(named))
    }
}

/// The layer to use when `--preset auto` finds no preset for the model: `--layer`, or an error
/// saying what to give.
fn layer_without_preset(
    config: &gpt_core::ModelConfig,
    layer: Option<usize>,
) -> anyhow::Result<usize> {
    layer.ok_or_else(|| {
        anyhow::anyhow!(
            "no hyperparameter preset was made for this model ({}, {} layers, d_model {}): name one with --preset ({}) or give --layer to use the paper's GPT-2 XL values at that layer",
            config.model_type,
            config.n_layers,
            config.d_model,
            rome::Preset::names_where(|_| true)
        )
    })
}

/// ROME's hyperparameters from `preset` (`auto`: matched to `config`), at `layer` when given,
/// checked against the model.
pub fn rome_hparams(
    preset: &str,
    layer: Option<usize>,
    variant: RomeVariant,
    config: &gpt_core::ModelConfig,
) -> anyhow::Result<RomeHparams> {
    let mut hp = match resolve_preset(preset, config)? {
        Some(preset) => preset.rome(),
        None => RomeHparams {
            layer: layer_without_preset(config, layer)?,
            ..RomeHparams::gpt2_xl()
        },
    };
    if let Some(layer) = layer {
        hp.layer = layer;
    }
    hp.variant = variant;
    hp.validate(config.n_layers)?;
    Ok(hp)
}

/// FT-L's hyperparameters from `preset` (`auto`: matched to `config`), at `layer` when given,
/// checked against the model.
pub fn ft_hparams(
    preset: &str,
    layer: Option<usize>,
    config: &gpt_core::ModelConfig,
) -> anyhow::Result<rome::FtHparams> {
    let mut hp = match resolve_preset(preset, config)? {
        Some(preset) => preset.ft(),
        None => rome::FtHparams::constrained(layer_without_preset(config, layer)?),
    };
    if let Some(layer) = layer {
        hp.layer = layer;
    }
    hp.validate(config.n_layers)?;
    Ok(hp)
}

/// A layered method's hyperparameters from `preset` (`auto`: matched to the model; one layer
/// when `layer` is given; GPT-2 XL's values when no preset of the method fits) and the key
/// statistics of each edited layer (`stats` holds one layer's, so it needs `layer`).
#[allow(clippy::too_many_arguments)]
fn layered_setup<H>(
    loaded: &gpt_core::LoadedModel,
    method: &str,
    preset: &str,
    layer: Option<usize>,
    stats: Option<&std::path::Path>,
    from_preset: impl Fn(rome::Preset) -> rome::Result<H>,
    fallback: impl Fn() -> H,
    layers_of: impl Fn(&mut H) -> &mut Vec<usize>,
) -> anyhow::Result<(H, Vec<gpt_core::tch::Tensor>)> {
    let config = loaded.model.config();
    let mut hp = match resolve_preset(preset, config)? {
        // A one-layer run needs no preset's layer list: a preset without the method's values
        // is refused by name, so fall back to GPT-2 XL's values there too.
        Some(preset) => match (from_preset(preset), layer) {
            (Ok(hp), _) => hp,
            (Err(_), Some(_)) => fallback(),
            (Err(e), None) => bail!("{e}: give --layer for a one-layer {method}"),
        },
        None => {
            layer_without_preset(config, layer)?;
            fallback()
        }
    };
    let layers = layers_of(&mut hp);
    if let Some(layer) = layer {
        *layers = vec![layer];
    }
    let layers = layers.clone();
    let n_layers = config.n_layers;
    if let Some(&layer) = layers.iter().find(|&&l| l >= n_layers) {
        return Err(gpt_core::Error::LayerOutOfRange { layer, n_layers }.into());
    }
    if stats.is_some() && layers.len() != 1 {
        bail!(
            "--stats holds one layer's statistics, but {method} edits layers {layers:?}: give --layer too, or leave --stats out to use the cache"
        );
    }
    let mut corpus = None;
    let mut cs = Vec::new();
    for &l in &layers {
        cs.push(key_stats_with(loaded, l, stats, &mut corpus)?.c()?);
    }
    Ok((hp, cs))
}

/// MEMIT's hyperparameters from `preset` (`auto`: matched to the model; one layer when `layer`
/// is given) and the key statistics of each edited layer (`stats` holds one layer's, so it
/// needs `layer`).
pub fn memit_setup(
    loaded: &gpt_core::LoadedModel,
    preset: &str,
    layer: Option<usize>,
    stats: Option<&std::path::Path>,
) -> anyhow::Result<(rome::MemitHparams, Vec<gpt_core::tch::Tensor>)> {
    layered_setup(
        loaded,
        "MEMIT",
        preset,
        layer,
        stats,
        rome::Preset::memit,
        rome::MemitHparams::gpt2_xl,
        |hp| &mut hp.layers,
    )
}

/// AlphaEdit's hyperparameters and key statistics, as [`memit_setup`].
pub fn alphaedit_setup(
    loaded: &gpt_core::LoadedModel,
    preset: &str,
    layer: Option<usize>,
    stats: Option<&std::path::Path>,
) -> anyhow::Result<(rome::AlphaEditHparams, Vec<gpt_core::tch::Tensor>)> {
    layered_setup(
        loaded,
        "AlphaEdit",
        preset,
        layer,
        stats,
        rome::Preset::alphaedit,
        rome::AlphaEditHparams::gpt2_xl,
        |hp| &mut hp.layers,
    )
}

/// EMMET's hyperparameters and key statistics, as [`memit_setup`].
pub fn emmet_setup(
    loaded: &gpt_core::LoadedModel,
    preset: &str,
    layer: Option<usize>,
    stats: Option<&std::path::Path>,
) -> anyhow::Result<(rome::EmmetHparams, Vec<gpt_core::tch::Tensor>)> {
    layered_setup(
        loaded,
        "EMMET",
        preset,
        layer,
        stats,
        rome::Preset::emmet,
        rome::EmmetHparams::gpt2_xl,
        |hp| &mut hp.layers,
    )
}

/// What [`edit_and_compare`] did: the edits (applied to the model, with their undo records),
/// and the predictions before and after.
pub struct Outcome {
    /// The weight changes, in order.
    pub deltas: Vec<gpt_core::WeightDelta>,
    /// Their undo records (undo in reverse order to restore the model).
    pub undos: Vec<gpt_core::EditUndo>,
    /// Top-5 before, for each request's prompt and each check prompt.
    pub before: Vec<Prediction>,
    /// Top-5 after.
    pub after: Vec<Prediction>,
    /// Seconds the edits took (templates included).
    pub seconds: f64,
    /// `‖ΔW‖_F` of each edit.
    pub norms: Vec<f64>,
    /// The v* losses of each edit.
    pub losses: Vec<Vec<f64>>,
}

/// The weight changes an edit made (already applied), with their undo records, norms and
/// optimisation losses.
struct Applied {
    deltas: Vec<gpt_core::WeightDelta>,
    undos: Vec<gpt_core::EditUndo>,
    norms: Vec<f64>,
    losses: Vec<Vec<f64>>,
}

/// Runs `edit` (which computes and applies changes to the model) between the top-5
/// predictions for each request's prompt and each check prompt, before and after; the
/// seconds counted are the edit's.
fn compare(
    loaded: &mut gpt_core::LoadedModel,
    requests: &[RewriteRequest],
    checks: &[String],
    edit: impl FnOnce(&mut gpt_core::LoadedModel) -> anyhow::Result<Applied>,
) -> anyhow::Result<Outcome> {
    let shown: Vec<String> = requests
        .iter()
        .map(RewriteRequest::filled)
        .chain(checks.iter().cloned())
        .collect();
    let predict_all = |loaded: &gpt_core::LoadedModel| {
        shown
            .iter()
            .map(|p| predict(loaded, p, 5))
            .collect::<anyhow::Result<Vec<_>>>()
    };
    let before = predict_all(loaded)?;
    let started = Instant::now();
    let applied = edit(loaded)?;
    let seconds = started.elapsed().as_secs_f64();
    let after = predict_all(loaded)?;
    Ok(Outcome {
        deltas: applied.deltas,
        undos: applied.undos,
        before,
        after,
        seconds,
        norms: applied.norms,
        losses: applied.losses,
    })
}

/// Computes and applies ROME edits of `requests` one after another (each on the model
/// edited by the earlier ones), with the top-5 predictions before and after.
pub fn edit_and_compare(
    loaded: &mut gpt_core::LoadedModel,
    requests: &[RewriteRequest],
    hp: &RomeHparams,
    stats: &KeyStats,
    checks: &[String],
) -> anyhow::Result<Outcome> {
    let c = stats.c()?;
    compare(loaded, requests, checks, |loaded| {
        let templates = context_templates(
            &loaded.model,
            &loaded.tokenizer,
            &hp.context_template_length_params,
            hp.template_seed,
        )?;
        let mut applied = Applied {
            deltas: Vec::new(),
            undos: Vec::new(),
            norms: Vec::new(),
            losses: Vec::new(),
        };
        let stage = match hp.variant {
            RomeVariant::RRome => "r-ROME edits",
            _ => "ROME edits",
        };
        let at = |done: usize| {
            Progress::new(stage, done as u64, Some(requests.len() as u64), "requests")
        };
        let mut view = ProgressView::new("");
        view.show(&at(0));
        for r in requests {
            let edit = compute_rome(
                &loaded.model,
                &loaded.tokenizer,
                r,
                hp,
                Some(&c),
                &templates,
                Schedule::Fast,
            )?;
            applied.undos.push(loaded.model.apply(&edit.delta)?);
            applied.norms.push(edit.delta_norm);
            applied.losses.push(edit.losses);
            applied.deltas.push(edit.delta);
            view.show(&at(applied.deltas.len()));
        }
        view.finish();
        Ok(applied)
    })
}

/// Prints each prompt's top-5 before and after.
pub fn print_comparison(before: &[Prediction], after: &[Prediction]) {
    print_labelled(before, after, ["before", "after "]);
}

/// Prints each prompt's top-5 in two model states, labelled.
pub fn print_labelled(first: &[Prediction], second: &[Prediction], labels: [&str; 2]) {
    let top = |p: &Prediction| {
        p.top
            .iter()
            .map(|c| format!("{:?} {:.1}%", c.text, 100.0 * c.probability))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (b, a) in first.iter().zip(second) {
        println!(
            "{}\n  {}: {}\n  {}: {}",
            b.prompt,
            labels[0],
            top(b),
            labels[1],
            top(a)
        );
    }
}

/// Prints a greedy 20-token continuation of each request's prompt by the (edited) model.
pub fn print_continuations(
    loaded: &gpt_core::LoadedModel,
    requests: &[RewriteRequest],
) -> anyhow::Result<()> {
    let eos = super::common::eos_ids(loaded);
    for r in requests {
        let ids = loaded.tokenizer.encode(&r.filled())?.ids;
        let options = GenerateOptions {
            max_new_tokens: 20,
            sampling: Sampling::Greedy,
            stop_tokens: eos.clone(),
        };
        let new = generate(&loaded.model, &ids, &options)?;
        // The end-of-sequence token ends the text; it is not part of it.
        println!(
            "edited model: {}{}",
            r.filled(),
            super::common::decode_continuation(loaded, new)?
        );
    }
    Ok(())
}

/// Fine-tunes one matrix on all `requests` at once (FT-L) and applies the change, with the
/// top-5 predictions before and after.
fn ft_and_compare(
    loaded: &mut gpt_core::LoadedModel,
    requests: &[RewriteRequest],
    hp: &rome::FtHparams,
    checks: &[String],
) -> anyhow::Result<Outcome> {
    compare(loaded, requests, checks, |loaded| {
        // One optimisation over all the requests: a start and an end.
        let at = |done| Progress::new("FT-L", done, Some(1), "edits");
        let mut view = ProgressView::new("");
        view.show(&at(0));
        let edit = rome::compute_ft(&loaded.model, &loaded.tokenizer, requests, hp)?;
        view.show(&at(1));
        view.finish();
        let undo = loaded.model.apply(&edit.delta)?;
        let dense = edit
            .delta
            .to_dense(&loaded.model.weight(edit.delta.target())?.size())?;
        Ok(Applied {
            norms: vec![dense.f_norm()?.f_double_value(&[])?],
            deltas: vec![edit.delta],
            undos: vec![undo],
            losses: vec![edit.losses],
        })
    })
}

/// Computes a layered method's changes for all `requests` at once (`compute` gets the model,
/// the context templates of `z` and a progress callback, and returns the changes and z
/// losses) and applies them, with the top-5 predictions before and after.
fn layered_and_compare(
    loaded: &mut gpt_core::LoadedModel,
    requests: &[RewriteRequest],
    z: &RomeHparams,
    checks: &[String],
    compute: impl FnOnce(
        &mut gpt_core::LoadedModel,
        &[String],
        &mut gpt_core::progress::ProgressFn<'_>,
    ) -> rome::Result<(Vec<gpt_core::WeightDelta>, Vec<Vec<f64>>)>,
) -> anyhow::Result<Outcome> {
    compare(loaded, requests, checks, |loaded| {
        let templates = context_templates(
            &loaded.model,
            &loaded.tokenizer,
            &z.context_template_length_params,
            z.template_seed,
        )?;
        let mut view = ProgressView::new("");
        let (deltas, losses) = compute(loaded, &templates, &mut view.callback())?;
        view.finish();
        let (mut undos, mut norms) = (Vec::new(), Vec::new());
        for d in &deltas {
            undos.push(loaded.model.apply(d)?);
            let dense = d.to_dense(&loaded.model.weight(d.target())?.size())?;
            norms.push(dense.f_norm()?.f_double_value(&[])?);
        }
        Ok(Applied {
            deltas,
            undos,
            norms,
            losses,
        })
    })
}

/// Runs `factscope edit`.
pub fn run(args: EditArgs) -> anyhow::Result<()> {
    if let Some(dir) = &args.save_model {
        if dir.exists() {
            bail!(
                "--save-model {}: it already exists (the edited model is written to a new folder)",
                dir.display()
            );
        }
        // The new folder's parent must take it: check now, not after the edit.
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            super::common::check_out_dir("--save-model", parent)?;
        }
    }
    if let Some(out) = &args.save_delta {
        super::common::check_out_file("--save-delta", out, false)?;
    }
    if args.key_history.is_some() && args.method != Method::AlphaEdit {
        bail!("--key-history is AlphaEdit's key history: it needs --method alphaedit");
    }
    if let Some(out) = &args.save_gguf {
        let source = args.model.path()?;
        if source.extension().and_then(|e| e.to_str()) != Some("gguf") {
            bail!(
                "--save-gguf needs a .gguf --model (writing a GGUF from a Hugging Face folder is not supported; use --save-model): {}",
                source.display()
            );
        }
        super::common::check_out_file("--save-gguf", out, false)?;
    }
    let requests = requests(&args)?;
    let mut loaded = args.model.load()?;
    let mut kept = None;
    let (outcome, layers, saved_hparams) = match args.method {
        Method::Ft => {
            let hp = ft_hparams(&args.preset, args.layer, loaded.model.config())?;
            (
                ft_and_compare(&mut loaded, &requests, &hp, &args.check)?,
                vec![hp.layer],
                serde_json::to_value(&hp)?,
            )
        }
        Method::Memit => {
            let (hp, cs) = memit_setup(&loaded, &args.preset, args.layer, args.stats.as_deref())?;
            let outcome = layered_and_compare(
                &mut loaded,
                &requests,
                &hp.z,
                &args.check,
                |loaded, templates, progress| {
                    let e = rome::compute_memit(
                        &mut loaded.model,
                        &loaded.tokenizer,
                        &requests,
                        &hp,
                        &cs,
                        templates,
                        progress,
                    )?;
                    Ok((e.deltas, e.losses))
                },
            )?;
            (outcome, hp.layers.clone(), serde_json::to_value(&hp)?)
        }
        Method::AlphaEdit => {
            let (hp, cs) =
                alphaedit_setup(&loaded, &args.preset, args.layer, args.stats.as_deref())?;
            // The key histories of the edits written before (--key-history), else empty.
            let mut editor = rome::AlphaEditEditor::new(hp.clone(), &cs)?;
            if let Some(dir) = args.key_history.as_deref().filter(|d| d.exists()) {
                editor
                    .load_histories(dir)
                    .with_context(|| format!("--key-history {}", dir.display()))?;
            }
            kept = Some(editor.kept());
            let mut keys_after = Vec::new();
            let outcome = layered_and_compare(
                &mut loaded,
                &requests,
                &hp.z,
                &args.check,
                |loaded, templates, progress| {
                    let e = rome::compute_alphaedit(
                        &mut loaded.model,
                        &loaded.tokenizer,
                        &requests,
                        &hp,
                        &editor.projectors,
                        &editor.histories,
                        templates,
                        progress,
                    )?;
                    keys_after = e.keys_after;
                    Ok((e.deltas, e.losses))
                },
            )?;
            if let Some(dir) = &args.key_history {
                // This edit's keys join the history, for the next edit of this edited model.
                for (h, k) in editor.histories.iter_mut().zip(&keys_after) {
                    h.add(k)?;
                }
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("--key-history {}", dir.display()))?;
                editor
                    .save_histories(dir)
                    .with_context(|| format!("--key-history {}", dir.display()))?;
            }
            (outcome, hp.layers.clone(), serde_json::to_value(&hp)?)
        }
        Method::Emmet => {
            let (hp, cs) = emmet_setup(&loaded, &args.preset, args.layer, args.stats.as_deref())?;
            let outcome = layered_and_compare(
                &mut loaded,
                &requests,
                &hp.z,
                &args.check,
                |loaded, templates, progress| {
                    let e = rome::compute_emmet(
                        &mut loaded.model,
                        &loaded.tokenizer,
                        &requests,
                        &hp,
                        &cs,
                        templates,
                        progress,
                    )?;
                    Ok((e.deltas, e.losses))
                },
            )?;
            (outcome, hp.layers.clone(), serde_json::to_value(&hp)?)
        }
        Method::Rome | Method::RRome => {
            let variant = if args.method == Method::RRome {
                RomeVariant::RRome
            } else {
                RomeVariant::Original
            };
            let hp = rome_hparams(&args.preset, args.layer, variant, loaded.model.config())?;
            let stats = key_stats_for(&loaded, hp.layer, args.stats.as_deref())?;
            (
                edit_and_compare(&mut loaded, &requests, &hp, &stats, &args.check)?,
                vec![hp.layer],
                serde_json::to_value(&hp)?,
            )
        }
    };
    // The comparison is printed before anything is saved, so a failed save (a full disk)
    // never loses what the edit did.
    let save = |outcome_deltas: &[gpt_core::WeightDelta]| -> anyhow::Result<()> {
        if let Some(out) = &args.save_delta {
            let list: Vec<&gpt_core::WeightDelta> = outcome_deltas.iter().collect();
            rome::save_deltas(out, &list, &requests, &saved_hparams)
                .with_context(|| format!("--save-delta {}", out.display()))?;
        }
        if let Some(dir) = &args.save_model {
            loaded
                .model
                .save_hf(dir, &loaded.tokenizer)
                .with_context(|| format!("--save-model {}", dir.display()))?;
        }
        Ok(())
    };
    let Outcome {
        deltas,
        before,
        after,
        seconds,
        norms,
        losses,
        ..
    } = outcome;
    let report = EditReport {
        method: format!("{:?}", args.method)
            .to_lowercase()
            .replace("rrome", "r-rome"),
        layers: layers.clone(),
        requests: requests.clone(),
        before,
        after,
        seconds,
        delta_norms: norms,
        losses,
        kept,
        gguf: None,
    };
    // The GGUF is written and read back before anything is printed, so its predictions are
    // part of the report.
    let mut report = report;
    if let Some(out) = &args.save_gguf {
        let source = args.model.path()?;
        let mut edited: Vec<gpt_core::WeightId> = deltas.iter().map(|d| d.target()).collect();
        edited.dedup();
        let keep = match args.gguf_edited_type {
            GgufEditedType::Same => gpt_core::EditedTensorType::Same,
            GgufEditedType::F16 => gpt_core::EditedTensorType::F16,
            GgufEditedType::F32 => gpt_core::EditedTensorType::F32,
        };
        let tensors = gpt_core::save_gguf(&loaded.model, &source, out, &edited, keep)
            .with_context(|| format!("--save-gguf {}", out.display()))?;
        let written = gpt_core::load_model(out, gpt_core::LoadOptions::default())
            .with_context(|| format!("reading back {}", out.display()))?;
        let predictions = report
            .after
            .iter()
            .map(|p| predict(&written, &p.prompt, 5))
            .collect::<anyhow::Result<Vec<_>>>()?;
        report.gguf = Some(GgufReport {
            path: out.clone(),
            tensors,
            predictions,
        });
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return save(&deltas);
    }
    print_comparison(&report.before, &report.after);
    print_continuations(&loaded, &requests)?;
    println!(
        "{} edit(s) at layer(s) {:?} in {seconds:.1} s (‖ΔW‖ {})",
        requests.len(),
        layers,
        report
            .delta_norms
            .iter()
            .map(|n| format!("{n:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(kept) = &report.kept {
        println!("null-space directions kept per layer: {kept:?}");
    }
    save(&deltas)?;
    if let Some(out) = &args.save_delta {
        println!("saved the weight changes to {}", out.display());
    }
    if let Some(dir) = &args.save_model {
        println!("wrote the edited model to {}", dir.display());
    }
    if let Some(g) = &report.gguf {
        println!("wrote the edited model as GGUF to {}", g.path.display());
        for t in &g.tensors {
            println!(
                "  {}: {} → {} (max |rounding| {:.2e}, ‖rounding‖ / ‖ΔW‖ {:.3})",
                t.name, t.source_type, t.saved_type, t.max_abs_error, t.error_over_edit
            );
        }
        print_labelled(&report.after, &g.predictions, ["edited   ", "from GGUF"]);
    }
    Ok(())
}
