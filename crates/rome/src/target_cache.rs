//! A cache of target residuals `z` by content, as MEMIT's reference caches them: a `z` depends
//! only on the model's weights, the layer it sits at, the request, the z hyperparameters and
//! the context templates — not on λ, the other edited layers or the method — so a sweep over
//! those reuses every `z` computed once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use gpt_core::fingerprint::Fnv64;
use gpt_core::tch::{Device, Kind, Tensor};
use gpt_core::{EditableModel, Layer, RewriteRequest, WeightId};

use crate::error::Result;
use crate::hparams::RomeHparams;
use crate::st_file;

const Z_KEY: &str = "z";
const LOSSES_KEY: &str = "losses";
const META_KEY: &str = "factscope.target";

/// The targets' subfolder, versioned as the statistics' ([`crate::StatsCache`]): `targets`
/// held targets of models whose `tokenizer.json` puts a BOS first, fitted without it.
const TARGETS_FOLDER: &str = "targets-2";

/// A folder of cached target residuals (`<dir>/targets-2/<key>.safetensors`, one `z` each with
/// its loss curve).
///
/// ```no_run
/// # fn main() -> rome::Result<()> {
/// let cache = rome::TargetCache::default_location();
/// let editor = rome::MemitEditor::new(rome::MemitHparams::smollm2(), Vec::new())
///     .with_target_cache(Some(cache));
/// # let _ = editor; Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetCache {
    dir: PathBuf,
}

/// What a cached `z` is the `z` of (the key is a hash of it; kept in the file's metadata so
/// that a hash collision is caught).
#[derive(serde::Serialize)]
struct TargetKey<'a> {
    model: &'a str,
    layer: usize,
    request: &'a RewriteRequest,
    hparams: &'a RomeHparams,
    templates: &'a [String],
}

impl TargetCache {
    /// A cache in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The per-user cache folder of [`crate::StatsCache::default_location`].
    pub fn default_location() -> Self {
        Self::new(crate::StatsCache::default_location().dir())
    }

    /// The cache folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A fingerprint of everything an edit can change (the config and every layer's MLP
    /// output projection), so that a `z` of an edited model is never taken for the
    /// unedited one's.
    ///
    /// # Errors
    /// libtorch errors.
    pub fn model_state<M: EditableModel + ?Sized>(model: &M) -> Result<String> {
        let mut h = Fnv64::default();
        for l in 0..model.config().n_layers {
            h.update(
                gpt_core::fingerprint::model_fingerprint(model, WeightId::MlpOut(Layer(l)))?
                    .as_bytes(),
            );
        }
        Ok(h.hex())
    }

    fn path_and_meta(
        &self,
        model_state: &str,
        layer: usize,
        request: &RewriteRequest,
        hparams: &RomeHparams,
        templates: &[String],
    ) -> Result<(PathBuf, String)> {
        let key = TargetKey {
            model: model_state,
            layer,
            request,
            hparams,
            templates,
        };
        let meta = serde_json::to_string(&key)
            .map_err(|e| crate::Error::InvalidInput(format!("target cache key: {e}")))?;
        let key = Fnv64::hex_of(meta.as_bytes());
        Ok((
            self.dir
                .join(TARGETS_FOLDER)
                .join(format!("{key}.safetensors")),
            meta,
        ))
    }

    /// The cached `z` (`[d_model]`, f64 on the CPU) and losses of `request`, if there is a
    /// whole file for exactly this key (an unreadable or foreign file is not used). The key:
    /// the model's [`TargetCache::model_state`], the `layer` z sits at, the request, the z
    /// settings (with their `layer` set to that layer) and the context templates.
    ///
    /// # Errors
    /// Key serialisation errors only.
    pub fn get(
        &self,
        model_state: &str,
        layer: usize,
        request: &RewriteRequest,
        hparams: &RomeHparams,
        templates: &[String],
    ) -> Result<Option<(Tensor, Vec<f64>)>> {
        let (path, meta) = self.path_and_meta(model_state, layer, request, hparams, templates)?;
        if !path.exists() {
            return Ok(None);
        }
        let read = || -> Result<Option<(Tensor, Vec<f64>)>> {
            let file = st_file::read(&path)?;
            if file.meta(META_KEY)? != meta {
                return Ok(None);
            }
            let (Some(z), Some(losses)) = (file.tensor(Z_KEY)?, file.tensor(LOSSES_KEY)?) else {
                return Ok(None);
            };
            Ok(Some((z, Vec::<f64>::try_from(&losses)?)))
        };
        Ok(read().ok().flatten())
    }

    /// Stores `z` (`[d_model]`) and its losses for `request`, atomically.
    ///
    /// # Errors
    /// An unwritable cache folder; libtorch errors.
    pub fn put(
        &self,
        model_state: &str,
        key: (usize, &RewriteRequest, &RomeHparams, &[String]),
        z: &Tensor,
        losses: &[f64],
    ) -> Result<()> {
        let (layer, request, hparams, templates) = key;
        let (path, meta) = self.path_and_meta(model_state, layer, request, hparams, templates)?;
        if let Some(dir) = path.parent() {
            factscope_common::fsio::ensure_writable_dir(dir)?;
        }
        let z = z.f_to_device(Device::Cpu)?.f_to_kind(Kind::Double)?;
        let losses = Tensor::f_from_slice(losses)?;
        st_file::write(
            &path,
            &[(Z_KEY.to_string(), &z), (LOSSES_KEY.to_string(), &losses)],
            HashMap::from([(META_KEY.to_string(), meta)]),
        )
    }
}
