//! The hyperparameters of each editing method (from a preset, or GPT-2 XL's values at a
//! given layer) and the key statistics of the edited layers; shared with `evaluate` and the
//! explorer.

use anyhow::bail;
use gpt_core::HookableModel;
use rome::{KeyStats, RomeHparams, RomeVariant, StatsOptions};

use crate::cli::stats::{compute_with_progress, load_corpus};

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
        crate::cli::common::check_out_dir("the statistics cache", dir)?;
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

/// What [`layered_setup`] needs to know of a layered method (MEMIT, AlphaEdit, EMMET).
struct LayeredMethod<H> {
    /// The method's name, for messages.
    name: &'static str,
    /// Its hyperparameters from a preset (an error when the preset has none for it).
    from_preset: fn(rome::Preset) -> rome::Result<H>,
    /// GPT-2 XL's values, used when no preset of the method fits.
    fallback: fn() -> H,
    /// The edited layers in the hyperparameters.
    layers_of: fn(&mut H) -> &mut Vec<usize>,
}

/// A layered method's hyperparameters from `preset` (`auto`: matched to the model; one layer
/// when `layer` is given; GPT-2 XL's values when no preset of the method fits) and the key
/// statistics of each edited layer (`stats` holds one layer's, so it needs `layer`).
fn layered_setup<H>(
    loaded: &gpt_core::LoadedModel,
    method: &LayeredMethod<H>,
    preset: &str,
    layer: Option<usize>,
    stats: Option<&std::path::Path>,
) -> anyhow::Result<(H, Vec<gpt_core::tch::Tensor>)> {
    let config = loaded.model.config();
    let name = method.name;
    let mut hp = match resolve_preset(preset, config)? {
        // A one-layer run needs no preset's layer list: a preset without the method's values
        // is refused by name, so fall back to GPT-2 XL's values there too.
        Some(preset) => match ((method.from_preset)(preset), layer) {
            (Ok(hp), _) => hp,
            (Err(_), Some(_)) => (method.fallback)(),
            (Err(e), None) => bail!("{e}: give --layer for a one-layer {name}"),
        },
        None => {
            layer_without_preset(config, layer)?;
            (method.fallback)()
        }
    };
    let layers = (method.layers_of)(&mut hp);
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
            "--stats holds one layer's statistics, but {name} edits layers {layers:?}: give --layer too, or leave --stats out to use the cache"
        );
    }
    // One corpus for all layers: sampling it is the slow part when statistics are missing.
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
    let method = LayeredMethod {
        name: "MEMIT",
        from_preset: rome::Preset::memit,
        fallback: rome::MemitHparams::gpt2_xl,
        layers_of: |hp| &mut hp.layers,
    };
    layered_setup(loaded, &method, preset, layer, stats)
}

/// AlphaEdit's hyperparameters and key statistics, as [`memit_setup`].
pub fn alphaedit_setup(
    loaded: &gpt_core::LoadedModel,
    preset: &str,
    layer: Option<usize>,
    stats: Option<&std::path::Path>,
) -> anyhow::Result<(rome::AlphaEditHparams, Vec<gpt_core::tch::Tensor>)> {
    let method = LayeredMethod {
        name: "AlphaEdit",
        from_preset: rome::Preset::alphaedit,
        fallback: rome::AlphaEditHparams::gpt2_xl,
        layers_of: |hp| &mut hp.layers,
    };
    layered_setup(loaded, &method, preset, layer, stats)
}

/// EMMET's hyperparameters and key statistics, as [`memit_setup`].
pub fn emmet_setup(
    loaded: &gpt_core::LoadedModel,
    preset: &str,
    layer: Option<usize>,
    stats: Option<&std::path::Path>,
) -> anyhow::Result<(rome::EmmetHparams, Vec<gpt_core::tch::Tensor>)> {
    let method = LayeredMethod {
        name: "EMMET",
        from_preset: rome::Preset::emmet,
        fallback: rome::EmmetHparams::gpt2_xl,
        layers_of: |hp| &mut hp.layers,
    };
    layered_setup(loaded, &method, preset, layer, stats)
}
