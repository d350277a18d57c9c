//! Which hyperparameter preset fits a model: the models the reference presets were made for,
//! recognised by their configuration (family, depth and width), so that `--preset auto` picks
//! GPT-2 XL's values for GPT-2 XL and refuses to guess for a model no preset was made for.

use gpt_core::ModelConfig;

/// A model a preset was made for, as its configuration describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PresetModel {
    /// The preset's name (for [`crate::RomeHparams::preset`] and friends).
    pub preset: &'static str,
    /// The `model_type`s of the family (`config.json` names).
    pub model_types: &'static [&'static str],
    /// Number of blocks.
    pub n_layers: usize,
    /// Width of the residual stream.
    pub d_model: usize,
}

/// Every preset name, in the order the errors list them.
pub const PRESET_NAMES: &[&str] = &[
    "gpt2-xl",
    "gpt2-medium",
    "gpt2-large",
    "gpt-j",
    "neox-20b",
    "llama-7b",
    "smollm2",
];

/// The models of the presets: GPT-2 medium/large/XL, GPT-J-6B, GPT-NeoX-20B, Llama(-2)-7B and
/// SmolLM2-135M (the bundled model).
pub const PRESET_MODELS: &[PresetModel] = &[
    PresetModel {
        preset: "gpt2-medium",
        model_types: &["gpt2"],
        n_layers: 24,
        d_model: 1024,
    },
    PresetModel {
        preset: "gpt2-large",
        model_types: &["gpt2"],
        n_layers: 36,
        d_model: 1280,
    },
    PresetModel {
        preset: "gpt2-xl",
        model_types: &["gpt2"],
        n_layers: 48,
        d_model: 1600,
    },
    PresetModel {
        preset: "gpt-j",
        model_types: &["gptj"],
        n_layers: 28,
        d_model: 4096,
    },
    PresetModel {
        preset: "neox-20b",
        model_types: &["gpt_neox"],
        n_layers: 44,
        d_model: 6144,
    },
    PresetModel {
        preset: "llama-7b",
        model_types: &["llama"],
        n_layers: 32,
        d_model: 4096,
    },
    PresetModel {
        preset: "smollm2",
        model_types: &["llama"],
        n_layers: 30,
        d_model: 576,
    },
];

/// The preset made for a model of this configuration (same family, depth and width), if any.
pub fn preset_for(config: &ModelConfig) -> Option<&'static str> {
    PRESET_MODELS
        .iter()
        .find(|m| {
            m.model_types.contains(&config.model_type.as_str())
                && m.n_layers == config.n_layers
                && m.d_model == config.d_model
        })
        .map(|m| m.preset)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::{FtHparams, MemitHparams, RomeHparams};
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
        for m in PRESET_MODELS {
            for t in m.model_types {
                assert_eq!(
                    preset_for(&config(t, m.n_layers, m.d_model)),
                    Some(m.preset)
                );
            }
            assert!(PRESET_NAMES.contains(&m.preset));
            RomeHparams::preset(m.preset).unwrap();
        }
        assert_eq!(preset_for(&config("gpt2", 48, 1600)), Some("gpt2-xl"));
        assert_eq!(preset_for(&config("gptj", 28, 4096)), Some("gpt-j"));
        assert_eq!(preset_for(&config("gpt_neox", 44, 6144)), Some("neox-20b"));
        assert_eq!(preset_for(&config("llama", 32, 4096)), Some("llama-7b"));
        assert_eq!(preset_for(&config("llama", 30, 576)), Some("smollm2"));
    }

    #[test]
    fn other_models_match_no_preset() {
        // Same depth and width in another family, another width, a tiny model.
        assert_eq!(preset_for(&config("gpt_neox", 48, 1600)), None);
        assert_eq!(preset_for(&config("gpt2", 48, 1024)), None);
        assert_eq!(preset_for(&config("qwen2", 32, 4096)), None);
        assert_eq!(preset_for(&tiny_config(Architecture::Gpt2)), None);
    }

    /// The reference's tables (rome-memit-reference §2.1, §3; EasyEdit for Llama-7B).
    #[test]
    fn presets_hold_the_reference_values() {
        let rome = |name| RomeHparams::preset(name).unwrap();
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

        let memit = |name| MemitHparams::preset(name).unwrap();
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
        assert_eq!(FtHparams::preset("neox-20b").unwrap().layer, 15);
    }

    #[test]
    fn unknown_and_rome_only_names_are_refused_clearly() {
        let e = RomeHparams::preset("gpt5").unwrap_err().to_string();
        assert!(e.contains("gpt5") && e.contains("neox-20b"), "{e}");
        let e = MemitHparams::preset("neox-20b").unwrap_err().to_string();
        assert!(e.contains("no MEMIT hyperparameters"), "{e}");
        assert!(MemitHparams::preset("nope").is_err());
    }
}
