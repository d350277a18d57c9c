//! Reading the Llama-layout families' `config.json` (Llama, Qwen2, Mistral, Gemma 1–3).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use crate::config::{Activation, ModelConfig, NormKind, Rope, RopeScaling};
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
fn gemma_takes_its_config_class_defaults() {
    // No head_dim, no tie_word_embeddings, the legacy `gelu`: GemmaConfig's defaults.
    let g = parse("gemma", r#", "hidden_act": "gelu""#).unwrap();
    assert_eq!(parse("gemma", "").unwrap(), g);
    assert!(g.tied_embeddings);
    assert_eq!(
        (g.activation, g.norm),
        (Activation::GeluTanh, NormKind::RmsNormPlusOne)
    );
    assert_eq!(g.d_head, 256);
    assert_eq!(g.embed_scale, Some(f64::from(32f32.sqrt())));
    // transformers 4.x's `hidden_activation` wins over `hidden_act`.
    let g = parse(
        "gemma",
        r#", "hidden_act": "silu", "hidden_activation": "gelu_pytorch_tanh", "head_dim": 8,
            "tie_word_embeddings": false"#,
    )
    .unwrap();
    assert_eq!((g.d_head, g.tied_embeddings), (8, false));
    let e = parse("gemma", r#", "hidden_act": "relu""#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("relu") && e.contains("gemma"), "{e}");
    // Llama is untouched by Gemma's details.
    let l = parse("llama", "").unwrap();
    assert!(!l.tied_embeddings);
    assert_eq!(
        (l.activation, l.norm),
        (Activation::Silu, NormKind::RmsNorm)
    );
    assert_eq!((l.d_head, l.embed_scale), (8, None));
}

#[test]
fn gemma2_takes_its_config_class_defaults() {
    let g = parse("gemma2", "").unwrap();
    assert!(g.post_norms && g.tied_embeddings);
    assert_eq!(
        (g.activation, g.norm),
        (Activation::GeluTanh, NormKind::RmsNormPlusOne)
    );
    assert_eq!(
        (g.query_pre_attn_scalar, g.attn_softcap, g.final_softcap),
        (Some(256.0), Some(50.0), Some(30.0))
    );
    assert_eq!(g.sliding_window, Some(4096));
    assert_eq!(g.sliding_layers, Some(vec![true, false]));
    // Explicit nulls switch the caps off; layer_types are read by name.
    let g = parse(
        "gemma2",
        r#", "attn_logit_softcapping": null, "final_logit_softcapping": null,
            "layer_types": ["full_attention", "sliding_attention"], "sliding_window": 8"#,
    )
    .unwrap();
    assert_eq!((g.attn_softcap, g.final_softcap), (None, None));
    assert_eq!(g.sliding_layers, Some(vec![false, true]));
    for (extra, words) in [
        (
            r#", "layer_types": ["full_attention"]"#,
            &["layer_types", "1 entries"][..],
        ),
        (
            r#", "layer_types": ["full_attention", "chunked_attention"]"#,
            &["layer_types[1]", "chunked_attention"][..],
        ),
        (
            r#", "use_bidirectional_attention": true"#,
            &["bidirectional"][..],
        ),
        (
            r#", "attn_logit_softcapping": -1.0"#,
            &["attn_logit_softcapping"][..],
        ),
    ] {
        let e = parse("gemma2", extra).unwrap_err().to_string();
        for w in words {
            assert!(e.contains(w), "{e} should name {w}");
        }
    }
    // Llama ignores Gemma 2's fields.
    let l = parse("llama", r#", "attn_logit_softcapping": 50.0"#).unwrap();
    assert_eq!(
        (l.attn_softcap, l.post_norms, l.sliding_layers),
        (None, false, None)
    );
}

#[test]
fn gemma3_reads_both_rope_spellings() {
    // Defaults: five sliding layers to one full, no caps, bases 1e6 / 1e4.
    let json = |extra: &str| {
        llama_json("gemma3_text", extra)
            .replace(r#""num_hidden_layers": 2"#, r#""num_hidden_layers": 7"#)
    };
    let g = ModelConfig::from_hf_json(&json(""), Path::new("m/config.json")).unwrap();
    assert!(g.qk_norm && g.post_norms);
    assert_eq!((g.attn_softcap, g.final_softcap), (None, None));
    let six = vec![true, true, true, true, true, false, true];
    assert_eq!(g.sliding_layers, Some(six));
    assert_eq!((g.rope_theta, g.rope_scaling), (Some(1e6), None));
    assert_eq!(g.sliding_rope.map(|r| r.theta), Some(1e4));
    // transformers 4.x: rope_scaling is the global rope's, rope_local_base_freq the local base.
    let old = ModelConfig::from_hf_json(
        &json(
            r#", "rope_theta": 500000.0, "rope_local_base_freq": 20000.0,
                "rope_scaling": {"rope_type": "linear", "factor": 8.0}"#,
        ),
        Path::new("m/config.json"),
    )
    .unwrap();
    assert_eq!(
        (old.rope_theta, old.rope_scaling),
        (Some(5e5), Some(RopeScaling::Linear { factor: 8.0 }))
    );
    assert_eq!(
        old.sliding_rope,
        Some(Rope {
            theta: 2e4,
            scaling: None
        })
    );
    let e = ModelConfig::from_hf_json(
        &json(r#", "rope_parameters": {"full_attention": {"rope_type": "dynamic"}}"#),
        Path::new("m/config.json"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("rope_parameters.full_attention") && e.contains("dynamic"),
        "{e}"
    );
}

#[test]
fn sliding_window_is_mistrals_and_only_qwen2s_when_asked() {
    assert_eq!(
        parse("mistral", r#", "sliding_window": 4096"#)
            .unwrap()
            .sliding_window,
        Some(4096)
    );
    assert_eq!(
        parse("mistral", r#", "sliding_window": null"#)
            .unwrap()
            .sliding_window,
        None
    );
    let qwen = parse(
        "qwen2",
        r#", "use_sliding_window": false, "sliding_window": 8"#,
    )
    .unwrap();
    assert_eq!(qwen.sliding_window, None);
    assert!(qwen.qkv_bias);
    assert!(parse("mistral", r#", "sliding_window": 0"#).is_err());
}
