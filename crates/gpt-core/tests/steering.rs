//! Steering vectors (hermetic, tiny random models): the llama.cpp control-vector file round
//! trip and its layout, refusals, and what the interventions change.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use gpt_core::random::tiny_config;
use gpt_core::steering::{SteerPositions, SteeringVector};
use gpt_core::tch::{Device, Kind, Tensor};
use gpt_core::{
    Architecture, ForwardOptions, HookableModel, NoHooks, RandomInit, TokenBatch, Transformer,
};

fn model() -> Transformer {
    let c = tiny_config(Architecture::Llama);
    Transformer::random(
        &c,
        RandomInit { seed: 3, std: 0.5 },
        Device::Cpu,
        Kind::Float,
    )
    .unwrap()
}

fn logits(m: &Transformer, v: Option<&SteeringVector>) -> Tensor {
    let ids: Vec<i64> = (1..7).collect();
    let batch = TokenBatch::single(&ids, Device::Cpu).unwrap();
    let out = match v {
        Some(v) => m.forward_with(&batch, ForwardOptions::all(), &mut v.writes().unwrap()),
        None => m.forward_with(&batch, ForwardOptions::all(), &mut NoHooks),
    };
    out.unwrap().logits().unwrap().squeeze_dim(0)
}

#[test]
fn control_vectors_round_trip_in_llama_cpp_layout() {
    let m = model();
    let d = m.config().d_model;
    let dir = tempfile::tempdir().unwrap();
    let a = Tensor::randn([d as i64], (Kind::Double, Device::Cpu));
    let b = Tensor::randn([d as i64], (Kind::Float, Device::Cpu));
    let v = SteeringVector::new(d, SteerPositions::All)
        .with_direction(1, &a)
        .unwrap()
        .with_direction(2, &b)
        .unwrap()
        .scaled(0.5);
    let path = dir.path().join("v.gguf");
    v.save_control_vector(&path, "llama").unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let file = gguf::GgufFile::from_bytes(&bytes).unwrap();
    assert_eq!(file.architecture(), Some("controlvector"));
    assert_eq!(
        file.get("controlvector.model_hint")
            .and_then(|x| x.as_str()),
        Some("llama")
    );
    assert_eq!(
        file.get("controlvector.layer_count")
            .and_then(|x| x.as_u64()),
        Some(2)
    );
    for (name, t) in [("direction.1", &a), ("direction.2", &b)] {
        let info = file.tensor(name).unwrap();
        assert_eq!(info.ggml_type, gguf::GgmlType::F32);
        let stored = Tensor::from_slice(&file.tensor_f32(&bytes, name).unwrap());
        let want = t.to_kind(Kind::Float) * 0.5;
        assert!(
            stored.allclose(&want, 0.0, 0.0, false),
            "{name}: the scale is baked in"
        );
    }
    // Read back: the scaled directions, at every position, scale 1.
    let back = SteeringVector::load_control_vector(&path).unwrap();
    assert_eq!(
        (back.layers(), back.d_model(), back.scale),
        (vec![1, 2], d, 1.0)
    );
    assert_eq!(back.positions, SteerPositions::All);
    assert!(logits(&m, Some(&back)).allclose(&logits(&m, Some(&v)), 1e-5, 1e-5, false));

    // Refusals: layer 0 (llama.cpp never steers it), nothing to save, wrong widths, a file
    // that is not a control vector.
    let zero = SteeringVector::new(d, SteerPositions::All)
        .with_direction(0, &a)
        .unwrap();
    let e = zero
        .save_control_vector(&dir.path().join("z.gguf"), "llama")
        .unwrap_err();
    assert!(e.to_string().contains("layer 0"), "{e}");
    let e = SteeringVector::new(d, SteerPositions::All)
        .save_control_vector(&dir.path().join("e.gguf"), "llama")
        .unwrap_err();
    assert!(e.to_string().contains("at least one direction"), "{e}");
    let e = SteeringVector::new(d + 1, SteerPositions::All)
        .with_direction(1, &a)
        .unwrap_err();
    assert!(e.to_string().contains("layer 1"), "{e}");
    let model_file = dir.path().join("m.gguf");
    std::fs::write(
        &model_file,
        gguf::write::Writer::new()
            .kv(
                "general.architecture",
                gguf::MetadataValue::String("llama".into()),
            )
            .to_bytes(),
    )
    .unwrap();
    let e = SteeringVector::load_control_vector(&model_file).unwrap_err();
    assert!(e.to_string().contains("not a control vector"), "{e}");
}

#[test]
fn last_position_steering_leaves_earlier_positions_alone() {
    let m = model();
    let d = m.config().d_model;
    let dir = Tensor::randn([d as i64], (Kind::Float, Device::Cpu)) * 3.0;
    let plain = logits(&m, None);
    let all = SteeringVector::new(d, SteerPositions::All)
        .with_direction(1, &dir)
        .unwrap();
    let last = SteeringVector::new(d, SteerPositions::Last)
        .with_direction(1, &dir)
        .unwrap();
    let (with_all, with_last) = (logits(&m, Some(&all)), logits(&m, Some(&last)));
    let n = plain.size()[0];
    let early = |t: &Tensor| t.narrow(0, 0, n - 1);
    assert!(early(&with_last).allclose(&early(&plain), 1e-6, 1e-6, false));
    assert!(!early(&with_all).allclose(&early(&plain), 1e-3, 1e-3, false));
    assert!(!with_last
        .get(n - 1)
        .allclose(&plain.get(n - 1), 1e-3, 1e-3, false));
    // A zero scale changes nothing.
    assert!(logits(&m, Some(&all.clone().scaled(0.0))).allclose(&plain, 1e-6, 1e-6, false));
}

/// A control vector's `model_hint` names the model's architecture as llama.cpp does, for
/// every family of the fixtures (Qwen2 and the Gemmas are not `llama` there).
#[test]
fn model_hints_name_each_family_as_llama_cpp_does() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    for (name, hint) in [
        ("tiny-gpt2", "gpt2"),
        ("tiny-llama", "llama"),
        ("tiny-mistral", "llama"),
        ("tiny-qwen2", "qwen2"),
        ("tiny-gemma", "gemma"),
        ("tiny-gemma2", "gemma2"),
        ("tiny-gemma3", "gemma3"),
        ("tiny-neox", "gptneox"),
        ("tiny-gptj", "gptj"),
    ] {
        let c =
            gpt_core::ModelConfig::from_hf_file(&fixtures.join(name).join("config.json")).unwrap();
        assert_eq!(gpt_core::steering::llama_cpp_arch(&c), hint, "{name}");
    }
}
