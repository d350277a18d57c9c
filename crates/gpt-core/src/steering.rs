//! Steering vectors: one direction per layer added to the residual stream leaving that layer
//! (`blocks.{l}.hook_resid_post`), times a scale — a function vector, a contrastive
//! activation difference, or a user's own — applied through [`SiteWrite`] and saved in
//! llama.cpp's control-vector format, so `llama-cli --control-vector FILE.gguf` applies the
//! same change to a local model.
//!
//! llama.cpp's layout: `general.architecture = "controlvector"`,
//! `controlvector.model_hint` (the model's architecture name, e.g. `llama`),
//! `controlvector.layer_count`, and one F32 tensor `direction.{l}` of `d_model` values per
//! steered layer, added (times the `--control-vector-scaled` strength) to the output of layer
//! `l`, counted from 0 as here. llama.cpp never steers layer 0's output (`direction.0` is not
//! read), so a vector at layer 0 cannot be saved. llama.cpp adds the direction at every
//! position; a function vector is added at the last position only
//! ([`SteerPositions::Last`]), so the two agree on the next token after a prompt only to the
//! extent that the earlier positions' change does not matter.
//!
//! ```
//! use gpt_core::steering::{SteerPositions, SteeringVector};
//! use gpt_core::tch::Tensor;
//! # fn main() -> gpt_core::Result<()> {
//! let v = SteeringVector::new(4, SteerPositions::All)
//!     .with_direction(2, &Tensor::from_slice(&[1.0f32, 0.0, -1.0, 0.5]))?
//!     .scaled(3.0);
//! let dir = std::env::temp_dir().join(format!("steer-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).ok();
//! let path = dir.join("v.gguf");
//! v.save_control_vector(&path, "llama")?;
//! let back = SteeringVector::load_control_vector(&path)?;
//! assert_eq!(back.layers(), vec![2]);
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use gguf::{GgmlType, MetadataValue};
use tch::{Device, Kind, Tensor};

use crate::config::{Architecture, ModelConfig};
use crate::error::{Error, Result};
use crate::hook::HookPoint;
use crate::intervention::{SiteWrite, Sites};

/// Where along the sequence a [`SteeringVector`] is added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SteerPositions {
    /// Every position (llama.cpp's control vectors).
    All,
    /// The last position only (function vectors).
    Last,
}

/// Directions by layer (`[d_model]` each, f32 on the CPU), a scale and the positions they
/// are added at.
#[derive(Debug)]
pub struct SteeringVector {
    d_model: usize,
    directions: BTreeMap<usize, Tensor>,
    /// The factor every direction is multiplied by when applied (and saved).
    pub scale: f64,
    /// Where along the sequence the directions are added.
    pub positions: SteerPositions,
}

impl Clone for SteeringVector {
    fn clone(&self) -> Self {
        Self {
            d_model: self.d_model,
            directions: self
                .directions
                .iter()
                .map(|(l, t)| (*l, t.copy()))
                .collect(),
            scale: self.scale,
            positions: self.positions,
        }
    }
}

/// llama.cpp's architecture name (its `general.architecture`) of the model `config`
/// describes: `gpt2`, `gptneox`, `gptj`, and for the Llama layout by `model_type` — `llama`
/// (Llama, Mistral), `qwen2`, `gemma`, `gemma2`, `gemma3` (`llama` for others).
///
/// ```
/// use gpt_core::random::tiny_config;
/// use gpt_core::steering::llama_cpp_arch;
/// use gpt_core::Architecture;
/// let mut c = tiny_config(Architecture::Llama);
/// c.model_type = "qwen2".into();
/// assert_eq!(llama_cpp_arch(&c), "qwen2");
/// assert_eq!(llama_cpp_arch(&tiny_config(Architecture::GptNeox)), "gptneox");
/// ```
pub fn llama_cpp_arch(config: &ModelConfig) -> &'static str {
    match config.arch {
        Architecture::Gpt2 => "gpt2",
        Architecture::Llama => {
            crate::families::llama::llama_cpp_arch(&config.model_type).unwrap_or("llama")
        }
        Architecture::GptNeox => "gptneox",
        Architecture::GptJ => "gptj",
    }
}

impl SteeringVector {
    /// An empty steering vector for a model of width `d_model`, scale 1.
    pub fn new(d_model: usize, positions: SteerPositions) -> Self {
        Self {
            d_model,
            directions: BTreeMap::new(),
            scale: 1.0,
            positions,
        }
    }

    /// Sets the direction of `layer` (`[d_model]`, any float dtype or device; kept as f32 on
    /// the CPU), replacing one set before.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for a direction of another shape.
    pub fn with_direction(mut self, layer: usize, direction: &Tensor) -> Result<Self> {
        if direction.size() != [self.d_model as i64] {
            return Err(Error::ShapeMismatch {
                name: format!("steering direction of layer {layer}"),
                expected: vec![self.d_model as i64],
                got: direction.size(),
            });
        }
        let t = direction
            .f_detach()?
            .f_to_device(Device::Cpu)?
            .f_to_kind(Kind::Float)?
            .f_contiguous()?;
        self.directions.insert(layer, t);
        Ok(self)
    }

    /// The same vector with `scale`.
    pub fn scaled(mut self, scale: f64) -> Self {
        self.scale = scale;
        self
    }

    /// The model width.
    pub fn d_model(&self) -> usize {
        self.d_model
    }

    /// The steered layers, ascending.
    pub fn layers(&self) -> Vec<usize> {
        self.directions.keys().copied().collect()
    }

    /// The direction of `layer` (unscaled), if any.
    pub fn direction(&self, layer: usize) -> Option<&Tensor> {
        self.directions.get(&layer)
    }

    /// Checks that the vector fits a model of `config`: directions of its width, at layers it
    /// has.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the width or the first layer past the model's.
    pub fn check_fits(&self, config: &ModelConfig) -> Result<()> {
        if self.d_model != config.d_model {
            return Err(Error::InvalidInput(format!(
                "directions of {} values, the model's width is {}",
                self.d_model, config.d_model
            )));
        }
        if let Some(&l) = self.directions.keys().find(|&&l| l >= config.n_layers) {
            return Err(Error::InvalidInput(format!(
                "`direction.{l}` is past the model's {} layers",
                config.n_layers
            )));
        }
        Ok(())
    }

    /// The interventions that apply it: `blocks.{l}.hook_resid_post[positions] += scale ·
    /// direction_l` for each layer (pass them to `forward_with`; a `Vec` of interventions is
    /// one).
    ///
    /// # Errors
    /// libtorch errors.
    pub fn writes(&self) -> Result<Vec<SiteWrite<'static>>> {
        self.directions
            .iter()
            .map(|(&l, d)| {
                let sites = match self.positions {
                    SteerPositions::All => Sites::all(),
                    SteerPositions::Last => Sites::position(-1),
                };
                Ok(SiteWrite::add(
                    HookPoint::resid_post(l),
                    sites,
                    d.f_mul_scalar(self.scale)?,
                ))
            })
            .collect()
    }

    /// Writes the vector (each direction times the scale, as llama.cpp applies a file at
    /// strength 1) in llama.cpp's control-vector format to `path`, atomically;
    /// `model_hint` names the model's architecture as llama.cpp does
    /// ([`llama_cpp_arch`]).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty vector or one with a direction at layer 0 (which
    /// llama.cpp does not steer); write errors naming the file.
    pub fn save_control_vector(&self, path: &Path, model_hint: &str) -> Result<()> {
        if self.directions.is_empty() {
            return Err(Error::InvalidInput(
                "a control vector needs at least one direction".into(),
            ));
        }
        if self.directions.contains_key(&0) {
            return Err(Error::InvalidInput(
                "llama.cpp control vectors cannot steer layer 0's output (`direction.0` is never read): add the vector at a later layer".into(),
            ));
        }
        let last = self.directions.keys().max().copied().unwrap_or(0);
        let mut w = gguf::write::Writer::new()
            .kv(
                "general.architecture",
                MetadataValue::String("controlvector".into()),
            )
            .kv(
                "controlvector.model_hint",
                MetadataValue::String(model_hint.into()),
            )
            .kv(
                "controlvector.layer_count",
                MetadataValue::I32(i32::try_from(last).unwrap_or(i32::MAX)),
            );
        for (&l, d) in &self.directions {
            let values = Vec::<f32>::try_from(&d.f_mul_scalar(self.scale)?)?;
            let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            w = w.tensor(
                &format!("direction.{l}"),
                &[self.d_model as u64],
                GgmlType::F32,
                bytes,
            );
        }
        factscope_common::write_atomic(path, &w.to_bytes())?;
        Ok(())
    }

    /// Reads a llama.cpp control vector (scale 1, every position; the file's directions are
    /// already scaled).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the file for one that is not a control vector, a
    /// tensor name other than `direction.{l}`, or directions of different widths or types;
    /// GGUF read errors.
    pub fn load_control_vector(path: &Path) -> Result<Self> {
        let bad = |reason: String| Error::InvalidInput(format!("{}: {reason}", path.display()));
        let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        let file = gguf::GgufFile::from_bytes(&bytes).map_err(|e| bad(e.to_string()))?;
        if file.architecture() != Some("controlvector") {
            return Err(bad(format!(
                "not a control vector (general.architecture {:?})",
                file.architecture()
            )));
        }
        let mut directions = BTreeMap::new();
        let mut width: Option<usize> = None;
        for info in &file.tensors {
            let layer: usize = info
                .name
                .strip_prefix("direction.")
                .and_then(|l| l.parse().ok())
                .ok_or_else(|| {
                    bad(format!(
                        "tensor `{}` is not named `direction.{{layer}}`",
                        info.name
                    ))
                })?;
            let values = file
                .tensor_f32(&bytes, &info.name)
                .map_err(|e| bad(e.to_string()))?;
            if *width.get_or_insert(values.len()) != values.len() {
                return Err(bad(format!(
                    "`{}` has {} values, an earlier direction {}",
                    info.name,
                    values.len(),
                    width.unwrap_or(0)
                )));
            }
            directions.insert(layer, Tensor::f_from_slice(&values)?);
        }
        let d_model = width.ok_or_else(|| bad("no directions".into()))?;
        Ok(Self {
            d_model,
            directions,
            scale: 1.0,
            positions: SteerPositions::All,
        })
    }
}
