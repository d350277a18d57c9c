//! The bundled real model (SmolLM2-135M-Instruct, Q4_1 GGUF) against `transformers` loading
//! the same file (fixtures/smollm2-reference.json, written by scripts/make_reference.py).
//!
//! These tests need `models/SmolLM2-135M-Instruct.Q4_1.gguf` (scripts/fetch-model.sh, run
//! by the README's test command); without it they print a note and pass vacuously.

#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use gpt_core::tch::{Kind, Tensor};
use gpt_core::{
    generate, load_model, GenerateOptions, HookPoint, HookableModel, LoadOptions, LoadedModel,
    Sampling, TokenBatch,
};
use serde::Deserialize;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The bundled model (loaded per test: libtorch tensors are not `Sync`, and a load takes
/// well under a second).
fn model() -> Option<LoadedModel> {
    let path = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "the bundled model {} is absent: run `bash scripts/setup.sh`, which installs it with libtorch",
        path.display()
    );
    Some(load_model(&path, LoadOptions::default()).expect("load bundled model"))
}

#[derive(Deserialize)]
struct PromptRef {
    prompt: String,
    input_ids: Vec<i64>,
    ids: Vec<i64>,
    texts: Vec<String>,
    probs: Vec<f64>,
}

#[derive(Deserialize)]
struct TokRef {
    text: String,
    ids: Vec<i64>,
    offsets: Vec<(usize, usize)>,
}

#[derive(Deserialize)]
struct Greedy {
    prompt: String,
    new_ids: Vec<i64>,
}

#[derive(Deserialize)]
struct Reference {
    prompts: Vec<PromptRef>,
    tricky_tokenizations: Vec<TokRef>,
    greedy: Greedy,
}

fn reference() -> Reference {
    let text = std::fs::read_to_string(root().join("fixtures/smollm2-reference.json"))
        .expect("reference json");
    serde_json::from_str(&text).expect("parse reference json")
}

#[test]
fn config_from_gguf_metadata() {
    let Some(m) = model() else { return };
    let c = m.model.config();
    assert_eq!(
        (
            c.n_layers,
            c.d_model,
            c.d_mlp,
            c.n_heads,
            c.n_kv_heads,
            c.d_head
        ),
        (30, 576, 1536, 9, 3, 64)
    );
    assert_eq!((c.vocab_size, c.n_ctx), (49152, 8192));
    assert_eq!(c.rope_theta, Some(100000.0));
    assert!(c.tied_embeddings);
    assert_eq!(m.tokenizer.eos_id(), Some(2));
}

#[test]
fn top5_next_tokens_match_transformers() {
    let Some(m) = model() else { return };
    let reference = reference();
    assert!(reference.prompts.len() >= 10);
    let _guard = gpt_core::tch::no_grad_guard();
    for r in &reference.prompts {
        let enc = m.tokenizer.encode(&r.prompt).expect("encode");
        assert_eq!(enc.ids, r.input_ids, "token ids of {:?}", r.prompt);
        let batch = TokenBatch::single(&enc.ids, m.model.device()).expect("batch");
        let logits = m.model.forward(&batch).expect("forward");
        let probs = logits.select(1, -1).squeeze_dim(0).softmax(-1, Kind::Float);
        let top1 = probs.argmax(0, false).int64_value(&[]);
        assert_eq!(
            top1, r.ids[0],
            "top-1 of {:?}: want {:?}",
            r.prompt, r.texts[0]
        );
        for (&id, &want) in r.ids.iter().zip(&r.probs) {
            let got = probs.double_value(&[id]);
            assert!(
                (got - want).abs() <= 1e-3,
                "{:?}: p({id}) = {got}, transformers {want}",
                r.prompt
            );
        }
        assert_eq!(
            m.tokenizer.token_text(r.ids[0]).expect("decode"),
            r.texts[0]
        );
    }
}

#[test]
fn tokenizer_rebuilt_from_gguf_matches_transformers() {
    let Some(m) = model() else { return };
    for r in reference().tricky_tokenizations {
        let enc = m.tokenizer.encode(&r.text).expect("encode");
        assert_eq!(enc.ids, r.ids, "ids of {:?}", r.text);
        assert_eq!(enc.offsets, r.offsets, "offsets of {:?}", r.text);
        assert_eq!(m.tokenizer.decode(&enc.ids).expect("decode"), r.text);
    }
}

#[test]
fn greedy_generation_matches_transformers() {
    let Some(m) = model() else { return };
    let g = reference().greedy;
    let enc = m.tokenizer.encode(&g.prompt).expect("encode");
    let options = GenerateOptions {
        max_new_tokens: g.new_ids.len(),
        sampling: Sampling::Greedy,
        stop_tokens: Vec::new(),
    };
    let new = generate(&m.model, &enc.ids, &options).expect("generate");
    assert_eq!(new, g.new_ids);
}

#[test]
fn hidden_states_match_transformers() {
    let Some(m) = model() else { return };
    let refs: std::collections::HashMap<String, Tensor> =
        Tensor::read_safetensors(root().join("fixtures/smollm2-reference.safetensors"))
            .expect("reference tensors")
            .into_iter()
            .collect();
    let ids = &refs["eiffel.input_ids"];
    let batch = TokenBatch::from_ids_and_mask(ids.shallow_clone(), ids.ones_like()).expect("batch");
    let (logits, cache) = m
        .model
        .run_with_cache(&batch, &|p| {
            matches!(
                p,
                HookPoint::Block(_, gpt_core::BlockSite::ResidPre) | HookPoint::LnFinal
            )
        })
        .expect("forward");
    let last = logits.select(1, -1).squeeze_dim(0);
    let err = (&last - &refs["eiffel.last_logits"])
        .abs()
        .max()
        .double_value(&[]);
    assert!(err <= 2e-3, "last-position logits differ by {err}");
    let hidden = &refs["eiffel.hidden_last"];
    let n = m.model.config().n_layers;
    for i in 0..=n {
        let point = if i < n {
            HookPoint::resid_pre(i)
        } else {
            HookPoint::LnFinal
        };
        let got = cache
            .get(point)
            .expect("cached")
            .select(1, -1)
            .squeeze_dim(0);
        let want = hidden.get(i as i64);
        let scale = want.abs().max().double_value(&[]).max(1.0);
        let err = (&got - &want).abs().max().double_value(&[]) / scale;
        assert!(err <= 1e-4, "{point}: relative error {err}");
    }
}

/// The instruct model ends its answers with `<|im_end|>` and goes on with a new turn
/// (`<|im_start|>assistant`): generation stops at any end-of-text or end-of-turn token, and
/// text for readers and metrics never contains special tokens.
#[test]
fn end_of_turn_tokens_stop_generation_and_special_tokens_are_not_text() {
    let Some(m) = model() else { return };
    let im_end = m.tokenizer.token_to_id("<|im_end|>").expect("<|im_end|>");
    let im_start = m
        .tokenizer
        .token_to_id("<|im_start|>")
        .expect("<|im_start|>");
    let ends = m.end_ids();
    assert!(ends.contains(&im_end), "{ends:?}");
    assert!(!ends.contains(&im_start), "{ends:?}");
    let specials = m.tokenizer.special_ids();
    assert!(specials.contains(&im_end) && specials.contains(&im_start));
    let mut ids = m.tokenizer.encode("Paris").unwrap().ids;
    ids.extend([im_end, im_start]);
    ids.extend(m.tokenizer.encode("assistant").unwrap().ids);
    assert_eq!(m.tokenizer.decode_text(&ids).unwrap(), "Parisassistant");
    assert!(m.tokenizer.decode(&ids).unwrap().contains("<|im_end|>"));
}

/// A bf16 load dequantises the GGUF block by block straight into bf16; every weight must
/// equal the f32 load rounded to bf16 (the old path), bit for bit.
#[test]
fn bf16_load_equals_f32_load_rounded() {
    use gpt_core::{EditableModel, Layer, WeightId};
    let path = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let f32m = model().expect("bundled model");
    let bf16m = load_model(
        &path,
        LoadOptions {
            kind: Kind::BFloat16,
            ..Default::default()
        },
    )
    .expect("load bundled model in bf16");
    let last = Layer(f32m.model.config().n_layers - 1);
    for id in [
        WeightId::Embed,
        WeightId::AttnQ(Layer(0)),
        WeightId::AttnK(last),
        WeightId::MlpIn(last),
        WeightId::MlpOut(Layer(4)),
    ] {
        let a = f32m.model.weight(id).unwrap().to_kind(Kind::BFloat16);
        let b = bf16m.model.weight(id).unwrap();
        assert_eq!(b.kind(), Kind::BFloat16, "{id:?}");
        assert!(
            a.equal(b),
            "{id:?} differs between the bf16 load and the f32 load rounded"
        );
    }
}
