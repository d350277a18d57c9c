//! Exactness against Hugging Face `transformers`: tiny random-weight GPT-2 and Llama
//! checkpoints with logits, hidden states and per-site activations recorded by
//! `scripts/make_reference.py` (fixtures/tiny-*).

#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use gpt_core::tch::{Device, Kind, Tensor};
use gpt_core::{
    generate, load_model, Activation, BlockSite, GenerateOptions, HookPoint, HookableModel,
    LoadOptions, LoadedModel, NormKind, Sampling, TokenBatch, Tokenizer,
};

const TOL: f64 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name)
}

fn reference(model: &str) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(fixture(model).join("reference.safetensors"))
        .expect("reference.safetensors")
        .into_iter()
        .collect()
}

fn load(model: &str) -> LoadedModel {
    load_model(&fixture(model), LoadOptions::default()).expect("load tiny model")
}

/// Max |a - b| over the positions where `mask` ([batch, pos]) is 1.
#[track_caller]
fn assert_close_masked(what: &str, got: &Tensor, want: &Tensor, mask: Option<&Tensor>) {
    assert_eq!(got.size(), want.size(), "{what}: shape");
    let mut diff = (got - want).abs();
    if let Some(mask) = mask {
        let mut m = mask.to_kind(Kind::Float);
        while m.dim() < diff.dim() {
            m = m.unsqueeze(-1);
        }
        diff *= m;
    }
    let max = diff.max().double_value(&[]);
    assert!(max <= TOL, "{what}: max abs error {max:e} > {TOL:e}");
}

fn check_batch(
    loaded: &LoadedModel,
    refs: &HashMap<String, Tensor>,
    prefix: &str,
    n_layers: usize,
) {
    let ids = &refs[&format!("{prefix}.input_ids")];
    let mask = refs[&format!("{prefix}.attention_mask")].shallow_clone();
    let batch = match refs.get(&format!("{prefix}.position_ids")) {
        Some(pos) => TokenBatch::with_positions(
            ids.shallow_clone(),
            mask.shallow_clone(),
            pos.shallow_clone(),
        ),
        None => TokenBatch::from_ids_and_mask(ids.shallow_clone(), mask.shallow_clone()),
    }
    .expect("batch");
    let (logits, cache) = loaded
        .model
        .run_with_cache(&batch, &|p| {
            matches!(
                p,
                HookPoint::Block(_, BlockSite::ResidPre) | HookPoint::LnFinal
            )
        })
        .expect("forward");
    assert_close_masked(
        &format!("{prefix}.logits"),
        &logits,
        &refs[&format!("{prefix}.logits")],
        Some(&mask),
    );
    for i in 0..=n_layers {
        let point = if i < n_layers {
            HookPoint::resid_pre(i)
        } else {
            HookPoint::LnFinal
        };
        let got = cache.get(point).expect("cached");
        assert_close_masked(
            &format!("{prefix}.hidden.{i} ({point})"),
            got,
            &refs[&format!("{prefix}.hidden.{i}")],
            Some(&mask),
        );
    }
}

fn check_model(name: &str) {
    let loaded = load(name);
    let refs = reference(name);
    let n_layers = loaded.model.config().n_layers;
    check_batch(&loaded, &refs, "right", n_layers);
    check_batch(&loaded, &refs, "left", n_layers);

    // Per-site activations of one unpadded prompt.
    let batch = TokenBatch::from_ids_and_mask(
        refs["single.input_ids"].shallow_clone(),
        refs["single.input_ids"].ones_like(),
    )
    .expect("batch");
    let (logits, cache) = loaded
        .model
        .run_with_cache(&batch, &|_| true)
        .expect("forward");
    assert_close_masked("single.logits", &logits, &refs["single.logits"], None);
    for l in 0..n_layers {
        for (site, key) in [
            (BlockSite::AttnOut, "attn_out"),
            (BlockSite::MlpOut, "mlp_out"),
            (BlockSite::MlpPost, "mlp_post"),
            (BlockSite::Z, "z"),
            (BlockSite::ResidPost, "resid_post"),
        ] {
            let got = cache.get(HookPoint::block(l, site)).expect("cached");
            assert_close_masked(
                &format!("single.{key}.{l}"),
                got,
                &refs[&format!("single.{key}.{l}")],
                None,
            );
        }
    }

    // Greedy generation with the KV cache reproduces transformers' `generate`.
    let prompt = Vec::<i64>::try_from(refs["single.input_ids"].view([-1])).expect("ids");
    let want = Vec::<i64>::try_from(refs["single.generated"].view([-1])).expect("ids");
    let new = generate(
        &loaded.model,
        &prompt,
        &GenerateOptions {
            max_new_tokens: want.len() - prompt.len(),
            sampling: Sampling::Greedy,
            stop_tokens: Vec::new(),
        },
    )
    .expect("generate");
    assert_eq!(&want[prompt.len()..], &new[..], "{name}: greedy generation");
}

#[derive(serde::Deserialize)]
struct TokRef {
    text: String,
    ids: Vec<i64>,
    offsets: Vec<(usize, usize)>,
}

fn check_tokenizer(tok: &Tokenizer, name: &str) {
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture(name).join("reference.json")).expect("reference.json"),
    )
    .expect("json");
    let encodings: Vec<TokRef> =
        serde_json::from_value(json["tokenizer"]["encodings"].clone()).expect("encodings");
    assert!(encodings.len() >= 5);
    for r in encodings {
        let enc = tok.encode(&r.text).expect("encode");
        assert_eq!(enc.ids, r.ids, "ids of {:?}", r.text);
        assert_eq!(enc.offsets, r.offsets, "offsets of {:?}", r.text);
        assert_eq!(tok.decode(&enc.ids).expect("decode"), r.text);
    }
}

#[test]
fn gpt2_matches_transformers() {
    check_model("tiny-gpt2");
}

#[test]
fn llama_gqa_matches_transformers() {
    check_model("tiny-llama");
}

#[test]
fn llama_tied_matches_transformers() {
    check_model("tiny-llama-tied");
}

#[test]
fn qwen2_with_qkv_biases_matches_transformers() {
    assert!(load("tiny-qwen2").model.config().qkv_bias);
    check_model("tiny-qwen2");
}

#[test]
fn gemma_details_match_transformers() {
    let loaded = load("tiny-gemma");
    let c = loaded.model.config();
    assert!(c.tied_embeddings);
    assert_eq!(
        (c.activation, c.norm),
        (Activation::GeluTanh, NormKind::RmsNormPlusOne)
    );
    assert_eq!(c.embed_scale, Some(f64::from(32f32.sqrt())));
    // head_dim is not hidden_size / heads, and one key/value head serves all four.
    assert_eq!((c.d_head, c.n_heads, c.n_kv_heads), (16, 4, 1));
    check_model("tiny-gemma");
}

#[test]
fn gemma2_details_match_transformers() {
    let loaded = load("tiny-gemma2");
    let c = loaded.model.config();
    assert!(c.post_norms);
    assert_eq!(
        (c.activation, c.norm),
        (Activation::GeluTanh, NormKind::RmsNormPlusOne)
    );
    assert_eq!(
        (c.query_pre_attn_scalar, c.attn_softcap, c.final_softcap),
        (Some(24.0), Some(2.0), Some(3.0))
    );
    assert_eq!(c.sliding_layers, Some(vec![true, false]));
    assert_eq!(c.sliding_window, Some(4));
    // The window must matter on the sliding layer: the prompts are longer than it.
    assert!(reference("tiny-gemma2")["single.input_ids"].size()[1] > 4);
    check_model("tiny-gemma2");
}

#[test]
fn gemma3_details_match_transformers() {
    use gpt_core::{Rope, RopeScaling};
    let loaded = load("tiny-gemma3");
    let c = loaded.model.config();
    assert!(c.qk_norm && c.post_norms);
    assert_eq!(
        (c.activation, c.norm),
        (Activation::GeluTanh, NormKind::RmsNormPlusOne)
    );
    assert_eq!((c.attn_softcap, c.final_softcap), (None, None));
    assert_eq!(c.sliding_layers, Some(vec![true, false]));
    assert_eq!(
        (c.rope_theta, c.rope_scaling),
        (Some(1e6), Some(RopeScaling::Linear { factor: 2.0 }))
    );
    assert_eq!(
        c.sliding_rope,
        Some(Rope {
            theta: 1e4,
            scaling: None
        })
    );
    check_model("tiny-gemma3");
}

#[test]
fn mistral_sliding_window_matches_transformers() {
    let loaded = load("tiny-mistral");
    assert_eq!(loaded.model.config().sliding_window, Some(4));
    // The window must matter: the reference prompts are longer than it.
    let refs = reference("tiny-mistral");
    assert!(refs["single.input_ids"].size()[1] > 4);
    check_model("tiny-mistral");
}

#[test]
fn gpt_neox_parallel_and_sequential_match_transformers() {
    for (name, parallel) in [("tiny-neox", true), ("tiny-neox-sequential", false)] {
        let loaded = load(name);
        let c = loaded.model.config();
        assert_eq!(c.parallel_attn_mlp, parallel);
        // Rotary on half of each 8-dimension head: the pass-through half is exercised.
        assert_eq!((c.rotary_dim, c.d_head), (Some(4), 8));
        assert!(c.activation == Activation::Gelu && !c.tied_embeddings);
        check_model(name);
    }
}

#[test]
fn gpt_j_matches_transformers() {
    let loaded = load("tiny-gptj");
    let c = loaded.model.config();
    assert!(c.parallel_attn_mlp && !c.qkv_bias);
    assert_eq!(c.rotary_dim, Some(4));
    check_model("tiny-gptj");
}

/// Parallel blocks have no `hook_resid_mid` (as in TransformerLens); the other points are
/// there, in execution order.
#[test]
fn parallel_blocks_list_their_hook_points_in_order() {
    for (name, has_mid) in [
        ("tiny-neox", false),
        ("tiny-gptj", false),
        ("tiny-neox-sequential", true),
    ] {
        let loaded = load(name);
        let points = loaded.model.hook_points();
        let mut sorted = points.clone();
        sorted.sort();
        assert_eq!(points, sorted, "{name}: execution order");
        let mid = points
            .iter()
            .any(|p| p.to_string().ends_with("hook_resid_mid"));
        assert_eq!(mid, has_mid, "{name}");
        for site in [
            "hook_resid_pre",
            "attn.hook_z",
            "hook_attn_out",
            "mlp.hook_post",
            "hook_mlp_out",
            "hook_resid_post",
        ] {
            assert!(
                points
                    .iter()
                    .any(|p| p.to_string() == format!("blocks.0.{site}")),
                "{name}: blocks.0.{site}"
            );
        }
    }
}

#[test]
fn llama_rope_scaling_matches_transformers() {
    use gpt_core::RopeScaling;
    let linear = load("tiny-llama-rope-linear");
    assert_eq!(
        linear.model.config().rope_scaling,
        Some(RopeScaling::Linear { factor: 2.0 })
    );
    check_model("tiny-llama-rope-linear");
    let llama3 = load("tiny-llama-rope-llama3");
    assert!(matches!(
        llama3.model.config().rope_scaling,
        Some(RopeScaling::Llama3 { factor, .. }) if factor == 8.0
    ));
    check_model("tiny-llama-rope-llama3");
    let yarn = load("tiny-llama-rope-yarn");
    assert!(matches!(
        yarn.model.config().rope_scaling,
        Some(RopeScaling::Yarn { factor, truncate: false, attention_factor, .. })
            if factor == 4.0 && (attention_factor - (0.1 * 4f64.ln() + 1.0)).abs() < 1e-12
    ));
    check_model("tiny-llama-rope-yarn");
}

#[test]
fn tokenizer_json_matches_transformers() {
    for name in ["tiny-gpt2", "tiny-llama"] {
        check_tokenizer(&load(name).tokenizer, name);
    }
}

#[test]
fn vocab_merges_tokenizer_matches_transformers() {
    let dir = fixture("tiny-gpt2");
    let tok = Tokenizer::from_vocab_merges(&dir.join("vocab.json"), &dir.join("merges.txt"))
        .expect("tokenizer");
    check_tokenizer(&tok, "tiny-gpt2");
}

#[test]
fn gpt2_conv1d_is_transposed_to_out_in() {
    use gpt_core::{EditableModel, Layer, WeightId};
    let loaded = load("tiny-gpt2");
    let c = loaded.model.config();
    let w = loaded
        .model
        .weight(WeightId::MlpOut(Layer(0)))
        .expect("weight");
    assert_eq!(w.size(), [c.d_model as i64, c.d_mlp as i64]);
    let w = loaded
        .model
        .weight(WeightId::MlpIn(Layer(1)))
        .expect("weight");
    assert_eq!(w.size(), [c.d_mlp as i64, c.d_model as i64]);
    assert_eq!(loaded.model.device(), Device::Cpu);
}
