//! Reading `rope_scaling` / `rope_parameters` (through the Llama family's reader, the
//! commonest user).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use super::*;
use crate::config::ModelConfig;
use crate::error::Result;

fn llama_json(model_type: &str, extra: &str) -> String {
    format!(
        r#"{{"model_type": "{model_type}", "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "vocab_size": 100{extra}}}"#
    )
}

fn parse(model_type: &str, extra: &str) -> Result<ModelConfig> {
    ModelConfig::from_hf_json(&llama_json(model_type, extra), Path::new("m/config.json"))
}

#[test]
fn rope_scaling_is_read_in_both_spellings() {
    let old = parse(
        "llama",
        r#", "rope_scaling": {"type": "linear", "factor": 4.0}"#,
    )
    .unwrap();
    assert_eq!(old.rope_scaling, Some(RopeScaling::Linear { factor: 4.0 }));
    let new = parse(
        "llama",
        r#", "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192}"#,
    )
    .unwrap();
    assert_eq!(new.rope_theta, Some(500000.0));
    assert_eq!(
        new.rope_scaling,
        Some(RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192.0
        })
    );
    let plain = parse("llama", r#", "rope_parameters": {"rope_type": "default"}"#).unwrap();
    assert_eq!(plain.rope_scaling, None);
}

#[test]
fn yarn_takes_transformers_defaults() {
    // Qwen2.5's spelling: the factor and the original context only.
    let qwen = parse(
        "qwen2",
        r#", "rope_scaling": {"type": "yarn", "factor": 4.0,
            "original_max_position_embeddings": 32768}"#,
    )
    .unwrap();
    assert_eq!(
        qwen.rope_scaling,
        Some(RopeScaling::Yarn {
            factor: 4.0,
            original_max_position_embeddings: 32768.0,
            beta_fast: 32.0,
            beta_slow: 1.0,
            truncate: true,
            attention_factor: 0.1 * 4f64.ln() + 1.0,
        })
    );
    // DeepSeek style: mscale terms, a null factor (the ratio of the context lengths,
    // here 2048 / 512) and the original context from outside the object.
    let deepseek = parse(
        "llama",
        r#", "original_max_position_embeddings": 512, "rope_scaling": {"rope_type": "yarn",
            "factor": null, "mscale": 1.0, "mscale_all_dim": 0.5, "beta_fast": 0,
            "truncate": false, "original_max_position_embeddings": 4}"#,
    )
    .unwrap();
    let Some(RopeScaling::Yarn {
        factor,
        original_max_position_embeddings,
        beta_fast,
        truncate,
        attention_factor,
        ..
    }) = deepseek.rope_scaling
    else {
        panic!("{:?}", deepseek.rope_scaling)
    };
    assert_eq!((factor, original_max_position_embeddings), (4.0, 512.0));
    assert_eq!((beta_fast, truncate), (32.0, false));
    let expected = (0.1 * 4f64.ln() + 1.0) / (0.05 * 4f64.ln() + 1.0);
    assert!((attention_factor - expected).abs() < 1e-12);
    let given = parse(
        "llama",
        r#", "rope_parameters": {"rope_type": "yarn", "factor": 2.0, "attention_factor": 0.5}"#,
    )
    .unwrap();
    assert_eq!(given.rope_scaling.map(|s| s.attention_factor()), Some(0.5));
    let e = parse(
        "llama",
        r#", "rope_parameters": {"rope_type": "yarn", "factor": -2.0}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("yarn") && e.contains("positive"), "{e}");
}

#[test]
fn unimplemented_options_are_refused_by_name() {
    for (extra, words) in [
        (
            r#", "rope_scaling": {"rope_type": "longrope", "factor": 4.0}"#,
            &["rope_scaling", "longrope", "m/config.json"][..],
        ),
        (
            r#", "rope_parameters": {"rope_type": "dynamic", "factor": 2.0}"#,
            &["rope_parameters", "dynamic"][..],
        ),
        (
            r#", "rope_scaling": {"rope_type": "llama3", "factor": 8.0}"#,
            &["low_freq_factor"][..],
        ),
    ] {
        let e = parse("llama", extra).unwrap_err().to_string();
        for w in words {
            assert!(e.contains(w), "{e} should name {w}");
        }
    }
    let e = parse(
        "qwen2",
        r#", "use_sliding_window": true, "sliding_window": 8"#,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("use_sliding_window"), "{e}");
}
