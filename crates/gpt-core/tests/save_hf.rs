//! Writing a model as a Hugging Face folder: what is written loads back to the same logits
//! (edits included), and an existing folder is never touched.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::Path;

use gpt_core::random::tiny_config;
use gpt_core::tch::{Device, Kind, Tensor};
use gpt_core::{
    load_hf_tokenizer, load_model, Architecture, EditableModel, HookableModel, Layer, LoadOptions,
    RandomInit, TokenBatch, Transformer, WeightDelta, WeightId,
};

#[test]
fn written_folders_load_back_with_the_same_logits() {
    let tok =
        load_hf_tokenizer(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-gpt2"))
            .unwrap();
    for (arch, tied) in [
        (Architecture::Gpt2, true),
        (Architecture::Llama, false),
        (Architecture::Llama, true),
    ] {
        let mut c = tiny_config(arch);
        c.vocab_size = tok.vocab_size();
        c.tied_embeddings = tied;
        let mut model = Transformer::random(
            &c,
            RandomInit { seed: 11, std: 0.3 },
            Device::Cpu,
            Kind::Float,
        )
        .unwrap();
        // An edit, so that the written weights are the edited ones.
        let delta = WeightDelta::RankOne {
            target: WeightId::MlpOut(Layer(1)),
            u: Tensor::ones([c.d_model as i64], (Kind::Float, Device::Cpu)),
            v: Tensor::full([c.d_mlp as i64], 0.01, (Kind::Float, Device::Cpu)),
        };
        let _undo = model.apply(&delta).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("edited");
        model.save_hf(&out, &tok).unwrap();
        for f in ["config.json", "model.safetensors", "tokenizer.json"] {
            assert!(out.join(f).is_file(), "{arch:?}: {f} missing");
        }
        let loaded = load_model(&out, LoadOptions::default()).unwrap();
        let batch = TokenBatch::single(&[1, 5, 9, 2, 7], Device::Cpu).unwrap();
        let a = model.forward(&batch).unwrap();
        let b = loaded.model.forward(&batch).unwrap();
        let diff = (&a - &b).abs().max().double_value(&[]);
        assert!(
            diff <= 1e-6,
            "{arch:?} tied={tied}: logits differ by {diff}"
        );
        assert_eq!(loaded.tokenizer.vocab_size(), tok.vocab_size());

        // Never over an existing folder; nothing in it changes.
        let before = std::fs::read(out.join("config.json")).unwrap();
        let err = model.save_hf(&out, &tok).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(std::fs::read(out.join("config.json")).unwrap(), before);
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "a temporary folder was left behind");
    }
}

/// The model-specific settings a family's config carries (rotary scaling, a sliding window,
/// Gemma's details)
/// survive a write and a read: same config, same logits.
#[test]
fn scaled_rotary_and_sliding_windows_survive_a_write() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    for name in [
        "tiny-llama-rope-linear",
        "tiny-llama-rope-llama3",
        "tiny-llama-rope-yarn",
        "tiny-mistral",
        "tiny-qwen2",
        "tiny-gemma",
        "tiny-gemma2",
        "tiny-gemma3",
    ] {
        let original = load_model(&root.join(name), LoadOptions::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join(name);
        original.model.save_hf(&out, &original.tokenizer).unwrap();
        let loaded = load_model(&out, LoadOptions::default()).unwrap();
        assert_eq!(loaded.model.config(), original.model.config(), "{name}");
        // transformers' config classes check these types strictly: integers, not 24.0.
        let written: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
        for field in [
            &written["query_pre_attn_scalar"],
            &written["rope_scaling"]["original_max_position_embeddings"],
        ] {
            assert!(field.is_null() || field.is_u64(), "{name}: {field}");
        }
        // Longer than Mistral's window and past the positions where the scalings part.
        let ids: Vec<i64> = (0..24).map(|i| (i * 7 + 3) % 500).collect();
        let batch = TokenBatch::single(&ids, Device::Cpu).unwrap();
        let a = original.model.forward(&batch).unwrap();
        let b = loaded.model.forward(&batch).unwrap();
        let diff = (&a - &b).abs().max().double_value(&[]);
        assert!(diff == 0.0, "{name}: logits differ by {diff}");
    }
}
