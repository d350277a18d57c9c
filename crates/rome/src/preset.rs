//! Hyperparameter presets as a typed registry ([`Preset`]), and which one fits a model: the models the reference presets were made for,
//! recognised by their configuration (family, depth and width), so that `--preset auto` picks
//! GPT-2 XL's values for GPT-2 XL and refuses to guess for a model no preset was made for.

use std::fmt;
use std::str::FromStr;

use gpt_core::ModelConfig;

use crate::alphaedit::AlphaEditHparams;
use crate::emmet::EmmetHparams;
use crate::error::{Error, Result};
use crate::ft::FtHparams;
use crate::hparams::RomeHparams;
use crate::memit::MemitHparams;

/// A hyperparameter preset: the values the reference (or this project, for the bundled model)
/// chose for one model. Parsed from its name only at the edges ([`FromStr`]: CLI flags,
/// files); everywhere else a value of this type.
///
/// ```
/// use rome::Preset;
/// let p: Preset = "gpt2-xl".parse()?;
/// assert_eq!(p, Preset::Gpt2Xl);
/// assert_eq!(p.rome().layer, 17);
/// assert_eq!(p.memit()?.layers, vec![13, 14, 15, 16, 17]);
/// assert!("gpt5".parse::<Preset>().is_err());
/// # Ok::<(), rome::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Preset {
    /// GPT-2 XL (1.5B): ROME layer 17, MEMIT layers 13–17.
    Gpt2Xl,
    /// GPT-2 medium: ROME layer 8 (no MEMIT file in the reference).
    Gpt2Medium,
    /// GPT-2 large: ROME layer 12 (no MEMIT file in the reference).
    Gpt2Large,
    /// GPT-J-6B: ROME layer 5, MEMIT layers 3–8.
    GptJ,
    /// GPT-NeoX-20B: ROME layer 15 (no MEMIT file in the reference).
    Neox20b,
    /// Llama(-2)-7B, as EasyEdit: ROME layer 5, MEMIT layers 4–8.
    Llama7b,
    /// SmolLM2-135M, the bundled model: ROME layer 4, MEMIT layers 2–6.
    Smollm2,
}

impl Preset {
    /// Every preset, in the order errors and help texts list them.
    pub const ALL: &'static [Preset] = &[
        Preset::Gpt2Xl,
        Preset::Gpt2Medium,
        Preset::Gpt2Large,
        Preset::GptJ,
        Preset::Neox20b,
        Preset::Llama7b,
        Preset::Smollm2,
    ];

    /// The preset's name (what [`FromStr`] reads and [`fmt::Display`] writes).
    pub fn name(self) -> &'static str {
        match self {
            Preset::Gpt2Xl => "gpt2-xl",
            Preset::Gpt2Medium => "gpt2-medium",
            Preset::Gpt2Large => "gpt2-large",
            Preset::GptJ => "gpt-j",
            Preset::Neox20b => "neox-20b",
            Preset::Llama7b => "llama-7b",
            Preset::Smollm2 => "smollm2",
        }
    }

    /// Other names accepted for it (the models' full names).
    pub fn aliases(self) -> &'static [&'static str] {
        match self {
            Preset::GptJ => &["gpt-j-6b"],
            Preset::Neox20b => &["gpt-neox-20b"],
            Preset::Llama7b => &["llama-2-7b"],
            _ => &[],
        }
    }

    /// The model the preset was made for, as its configuration describes it.
    pub fn model(self) -> PresetModel {
        let (model_types, n_layers, d_model): (&'static [&'static str], usize, usize) = match self {
            Preset::Gpt2Medium => (&["gpt2"], 24, 1024),
            Preset::Gpt2Large => (&["gpt2"], 36, 1280),
            Preset::Gpt2Xl => (&["gpt2"], 48, 1600),
            Preset::GptJ => (&["gptj"], 28, 4096),
            Preset::Neox20b => (&["gpt_neox"], 44, 6144),
            Preset::Llama7b => (&["llama"], 32, 4096),
            Preset::Smollm2 => (&["llama"], 30, 576),
        };
        PresetModel {
            preset: self,
            model_types,
            n_layers,
            d_model,
        }
    }

    /// The preset made for a model of this configuration (same family, depth and width), if
    /// any.
    pub fn for_model(config: &ModelConfig) -> Option<Preset> {
        Preset::ALL
            .iter()
            .copied()
            .find(|p| p.model().matches(config))
    }

    /// ROME's hyperparameters (also r-ROME's: set [`RomeHparams::variant`]).
    pub fn rome(self) -> RomeHparams {
        match self {
            Preset::Gpt2Xl => RomeHparams::gpt2_xl(),
            Preset::Gpt2Medium => RomeHparams::gpt2_medium(),
            Preset::Gpt2Large => RomeHparams::gpt2_large(),
            Preset::GptJ => RomeHparams::gpt_j(),
            Preset::Neox20b => RomeHparams::neox_20b(),
            Preset::Llama7b => RomeHparams::llama_7b(),
            Preset::Smollm2 => RomeHparams::smollm2(),
        }
    }

    /// MEMIT's hyperparameters.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for the ROME-only presets (GPT-2 medium/large, NeoX-20B: the
    /// reference has no MEMIT file for them), saying so.
    pub fn memit(self) -> Result<MemitHparams> {
        match self {
            Preset::Gpt2Xl => Ok(MemitHparams::gpt2_xl()),
            Preset::GptJ => Ok(MemitHparams::gpt_j()),
            Preset::Llama7b => Ok(MemitHparams::llama_7b()),
            Preset::Smollm2 => Ok(MemitHparams::smollm2()),
            Preset::Gpt2Medium | Preset::Gpt2Large | Preset::Neox20b => {
                Err(Error::InvalidInput(format!(
                    "the reference has no MEMIT hyperparameters for `{self}` (MEMIT presets: {}); a one-layer MEMIT with GPT-2 XL's values needs only its layer",
                    Preset::names_where(Preset::has_memit)
                )))
            }
        }
    }

    /// Whether the reference has MEMIT hyperparameters for this preset.
    pub fn has_memit(self) -> bool {
        !matches!(
            self,
            Preset::Gpt2Medium | Preset::Gpt2Large | Preset::Neox20b
        )
    }

    /// AlphaEdit's hyperparameters: the reference's files for GPT-2 XL and GPT-J, this
    /// project's for SmolLM2 (MEMIT's layers 2–6, GPT-2 XL's other values).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for the other presets (the reference has no AlphaEdit file
    /// for them; its Llama3-8B file is not Llama-2-7B's), saying so.
    pub fn alphaedit(self) -> Result<AlphaEditHparams> {
        match self {
            Preset::Gpt2Xl => Ok(AlphaEditHparams::gpt2_xl()),
            Preset::GptJ => Ok(AlphaEditHparams::gpt_j()),
            Preset::Smollm2 => Ok(AlphaEditHparams::smollm2()),
            _ => Err(Error::InvalidInput(format!(
                "the reference has no AlphaEdit hyperparameters for `{self}` (AlphaEdit presets: {}); a one-layer AlphaEdit with GPT-2 XL's values needs only its layer",
                Preset::names_where(Preset::has_alphaedit)
            ))),
        }
    }

    /// Whether there are AlphaEdit hyperparameters for this preset.
    pub fn has_alphaedit(self) -> bool {
        matches!(self, Preset::Gpt2Xl | Preset::GptJ | Preset::Smollm2)
    }

    /// EMMET's hyperparameters: the reference's files for GPT-2 XL, GPT-J and Llama-2-7B, this
    /// project's for SmolLM2 (ROME's layer 4 only, GPT-2 XL's other values).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for the other presets (no EMMET file in the reference), saying
    /// so.
    pub fn emmet(self) -> Result<EmmetHparams> {
        match self {
            Preset::Gpt2Xl => Ok(EmmetHparams::gpt2_xl()),
            Preset::GptJ => Ok(EmmetHparams::gpt_j()),
            Preset::Llama7b => Ok(EmmetHparams::llama_7b()),
            Preset::Smollm2 => Ok(EmmetHparams::smollm2()),
            _ => Err(Error::InvalidInput(format!(
                "the reference has no EMMET hyperparameters for `{self}` (EMMET presets: {}); a one-layer EMMET with GPT-2 XL's values needs only its layer",
                Preset::names_where(Preset::has_emmet)
            ))),
        }
    }

    /// Whether there are EMMET hyperparameters for this preset.
    pub fn has_emmet(self) -> bool {
        matches!(
            self,
            Preset::Gpt2Xl | Preset::GptJ | Preset::Llama7b | Preset::Smollm2
        )
    }

    /// FT-L's hyperparameters: GPT-2 XL at layer 0 (as the reference's sweep chose); every other
    /// preset at its ROME layer (no FT-L layer sweep was run for them).
    pub fn ft(self) -> FtHparams {
        match self {
            Preset::Gpt2Xl => FtHparams::constrained(0),
            other => FtHparams::constrained(other.rome().layer),
        }
    }

    /// The names of the presets `keep` accepts, comma-separated (for messages).
    pub fn names_where(keep: impl Fn(Preset) -> bool) -> String {
        Preset::ALL
            .iter()
            .copied()
            .filter(|&p| keep(p))
            .map(Preset::name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Preset {
    type Err = Error;

    /// A preset by its name or an alias.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the unknown name and listing the known ones.
    fn from_str(s: &str) -> Result<Self> {
        Preset::ALL
            .iter()
            .copied()
            .find(|p| p.name() == s || p.aliases().contains(&s))
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "unknown preset `{s}` ({})",
                    Preset::names_where(|_| true)
                ))
            })
    }
}

/// A model a preset was made for, as its configuration describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PresetModel {
    /// The preset.
    pub preset: Preset,
    /// The `model_type`s of the family (`config.json` names).
    pub model_types: &'static [&'static str],
    /// Number of blocks.
    pub n_layers: usize,
    /// Width of the residual stream.
    pub d_model: usize,
}

impl PresetModel {
    /// Whether `config` describes this model (family, depth and width).
    pub fn matches(&self, config: &ModelConfig) -> bool {
        self.model_types.contains(&config.model_type.as_str())
            && self.n_layers == config.n_layers
            && self.d_model == config.d_model
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use gpt_core::random::tiny_config;
    use gpt_core::Architecture;

    fn config(model_type: &str, n_layers: usize, d_model: usize) -> ModelConfig {
        let mut c = tiny_config(Architecture::Llama);
        c.model_type = model_type.into();
        c.n_layers = n_layers;
        c.d_model = d_model;
        c
    }

    #[test]
    fn each_preset_model_is_matched_to_its_preset() {
        for &p in Preset::ALL {
            let m = p.model();
            for t in m.model_types {
                assert_eq!(
                    Preset::for_model(&config(t, m.n_layers, m.d_model)),
                    Some(p)
                );
            }
            assert_eq!(p.name().parse::<Preset>().unwrap(), p);
            for alias in p.aliases() {
                assert_eq!(alias.parse::<Preset>().unwrap(), p);
            }
            assert_eq!(p.to_string(), p.name());
        }
        assert_eq!(
            Preset::for_model(&config("gpt2", 48, 1600)),
            Some(Preset::Gpt2Xl)
        );
        assert_eq!(
            Preset::for_model(&config("gptj", 28, 4096)),
            Some(Preset::GptJ)
        );
        assert_eq!(
            Preset::for_model(&config("gpt_neox", 44, 6144)),
            Some(Preset::Neox20b)
        );
        assert_eq!(
            Preset::for_model(&config("llama", 32, 4096)),
            Some(Preset::Llama7b)
        );
        assert_eq!(
            Preset::for_model(&config("llama", 30, 576)),
            Some(Preset::Smollm2)
        );
    }

    #[test]
    fn other_models_match_no_preset() {
        // Same depth and width in another family, another width, a tiny model.
        assert_eq!(Preset::for_model(&config("gpt_neox", 48, 1600)), None);
        assert_eq!(Preset::for_model(&config("gpt2", 48, 1024)), None);
        assert_eq!(Preset::for_model(&config("qwen2", 32, 4096)), None);
        assert_eq!(Preset::for_model(&tiny_config(Architecture::Gpt2)), None);
    }

    /// The reference's tables (rome-memit-reference §2.1, §3; EasyEdit for Llama-7B).
    #[test]
    fn presets_hold_the_reference_values() {
        let rome = |name: &str| name.parse::<Preset>().unwrap().rome();
        for (name, layer, clamp) in [
            ("gpt2-medium", 8, 3.0),
            ("gpt2-large", 12, 4.0),
            ("gpt2-xl", 17, 4.0),
            ("gpt-j", 5, 4.0),
            ("neox-20b", 15, 4.0),
        ] {
            let hp = rome(name);
            assert_eq!((hp.layer, hp.clamp_norm_factor), (layer, clamp), "{name}");
            assert_eq!(hp.v_num_grad_steps, 20, "{name}");
            assert_eq!(
                (hp.v_lr, hp.v_weight_decay, hp.kl_factor),
                (0.5, 0.5, 0.0625)
            );
            assert!(hp.mom2_adjustment, "{name}");
            assert_eq!(hp.context_template_length_params, vec![(5, 10), (10, 10)]);
        }
        let llama = rome("llama-7b");
        assert_eq!(
            (
                llama.layer,
                llama.v_num_grad_steps,
                llama.v_weight_decay,
                llama.clamp_norm_factor
            ),
            (5, 25, 1e-3, 4.0)
        );
        assert!(!llama.mom2_adjustment);

        let memit = |name: &str| name.parse::<Preset>().unwrap().memit().unwrap();
        let xl = memit("gpt2-xl");
        assert_eq!(xl.layers, vec![13, 14, 15, 16, 17]);
        assert_eq!(
            (xl.mom2_update_weight, xl.z.v_num_grad_steps),
            (20_000.0, 20)
        );
        assert_eq!(xl.z.clamp_norm_factor, 0.75);
        let j = memit("gpt-j");
        assert_eq!(j.layers, vec![3, 4, 5, 6, 7, 8]);
        assert_eq!((j.mom2_update_weight, j.z.v_num_grad_steps), (15_000.0, 25));
        let l = memit("llama-7b");
        assert_eq!(l.layers, vec![4, 5, 6, 7, 8]);
        assert_eq!(
            (
                l.mom2_update_weight,
                l.z.v_num_grad_steps,
                l.z.clamp_norm_factor,
                l.z.v_weight_decay
            ),
            (15_000.0, 25, 4.0, 1e-3)
        );
        assert_eq!(Preset::Neox20b.ft().layer, 15);
        assert_eq!(Preset::Gpt2Xl.ft().layer, 0);
    }

    #[test]
    fn unknown_and_rome_only_names_are_refused_clearly() {
        let e = "gpt5".parse::<Preset>().unwrap_err().to_string();
        assert!(e.contains("gpt5") && e.contains("neox-20b"), "{e}");
        let e = Preset::Neox20b.memit().unwrap_err().to_string();
        assert!(e.contains("no MEMIT hyperparameters"), "{e}");
        assert!(e.contains("smollm2") && !e.contains("gpt2-medium,"), "{e}");
    }

    /// AlphaEdit's and EMMET's files (reference §8; `hparams/EMMET/*.json` of
    /// unified-model-editing), and this project's SmolLM2 choices.
    #[test]
    fn alphaedit_and_emmet_presets_hold_the_reference_values() {
        let xl = Preset::Gpt2Xl.alphaedit().unwrap();
        assert_eq!(xl.layers, vec![13, 14, 15, 16, 17]);
        assert_eq!((xl.l2, xl.nullspace_threshold), (10.0, 2e-2));
        assert_eq!(xl.z, Preset::Gpt2Xl.memit().unwrap().z);
        assert_eq!(
            Preset::GptJ.alphaedit().unwrap().layers,
            vec![3, 4, 5, 6, 7, 8]
        );
        let smol = Preset::Smollm2.alphaedit().unwrap();
        assert_eq!(smol.layers, vec![2, 3, 4, 5, 6]);
        assert_eq!(smol.l2, 10.0);
        let e = Preset::Llama7b.alphaedit().unwrap_err().to_string();
        assert!(e.contains("no AlphaEdit hyperparameters"), "{e}");
        assert!(!Preset::Neox20b.has_alphaedit());

        let xl = Preset::Gpt2Xl.emmet().unwrap();
        assert_eq!(xl.layers, vec![17]);
        assert_eq!(
            (
                xl.mom2_update_weight,
                xl.emmet_lambda,
                xl.update_norm_lambda
            ),
            (1000.0, 0.1, 0.0)
        );
        assert_eq!(
            (
                xl.z.clamp_norm_factor,
                xl.z.v_num_grad_steps,
                xl.z.v_weight_decay
            ),
            (0.75, 20, 0.5)
        );
        let j = Preset::GptJ.emmet().unwrap();
        assert_eq!(
            (j.layers.clone(), j.mom2_update_weight),
            (vec![5], 10_000.0)
        );
        let l = Preset::Llama7b.emmet().unwrap();
        assert_eq!(
            (
                l.layers.clone(),
                l.mom2_update_weight,
                l.z.clamp_norm_factor
            ),
            (vec![5], 1.0, 4.0)
        );
        let smol = Preset::Smollm2.emmet().unwrap();
        assert_eq!(smol.layers, vec![4]);
        assert_eq!((smol.mom2_update_weight, smol.emmet_lambda), (1000.0, 0.1));
        let e = Preset::Gpt2Medium.emmet().unwrap_err().to_string();
        assert!(e.contains("no EMMET hyperparameters"), "{e}");
    }
}
