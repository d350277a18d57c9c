//! An edited bundled model (SmolLM2-135M-Instruct, Q4_1 GGUF) written back as GGUF: only the
//! edited matrix changes (re-quantised to Q4_1, or kept at F32), the metadata, tokenizer,
//! tensor order, types and sizes are the input's, every other tensor is copied byte for
//! byte, and the file loads back to the edited weights (within Q4_1's rounding).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::{Path, PathBuf};

use gpt_core::tch::{Device, Kind, Tensor};
use gpt_core::{
    load_model, save_gguf, EditableModel, EditedTensorType, Layer, LoadOptions, WeightDelta,
    WeightId,
};

fn bundled() -> PathBuf {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "the bundled model {} is absent: run `bash scripts/setup.sh`",
        path.display()
    );
    path
}

#[test]
fn edited_models_go_back_to_gguf_with_only_the_edit_changed() {
    let source = bundled();
    let mut m = load_model(&source, LoadOptions::default()).unwrap();
    let target = WeightId::MlpOut(Layer(4));
    let w = m.model.weight(target).unwrap().copy();
    let (out, inp) = (w.size()[0], w.size()[1]);
    // A rank-one change as large as a ROME edit's (‖ΔW‖ ≈ 17 on this matrix).
    let u = Tensor::randn([out], (Kind::Float, Device::Cpu));
    let v = Tensor::randn([inp], (Kind::Float, Device::Cpu)) * 0.02;
    let _undo = m
        .model
        .apply(&WeightDelta::RankOne { target, u, v })
        .unwrap();
    let edited = m.model.weight(target).unwrap().copy();
    let dir = tempfile::tempdir().unwrap();
    let src_bytes = std::fs::read(&source).unwrap();
    let src = gguf::GgufFile::from_bytes(&src_bytes).unwrap();
    for (keep, name) in [
        (EditedTensorType::Same, "same.gguf"),
        (EditedTensorType::F32, "f32.gguf"),
    ] {
        let path = dir.path().join(name);
        let report = save_gguf(&m.model, &source, &path, &[target], keep).unwrap();
        assert_eq!(report.len(), 1);
        assert_eq!(report[0].name, "blk.4.ffn_down.weight");
        let bytes = std::fs::read(&path).unwrap();
        let new = gguf::GgufFile::from_bytes(&bytes).unwrap();
        assert_eq!(new.metadata, src.metadata, "{name}: metadata");
        assert_eq!(new.tensors.len(), src.tensors.len());
        for (a, b) in src.tensors.iter().zip(&new.tensors) {
            assert_eq!((&a.name, &a.dims), (&b.name, &b.dims));
            if a.name == "blk.4.ffn_down.weight" {
                let ty = if keep == EditedTensorType::F32 {
                    gguf::GgmlType::F32
                } else {
                    a.ggml_type
                };
                assert_eq!(b.ggml_type, ty, "{name}");
            } else {
                assert_eq!(a.ggml_type, b.ggml_type);
                assert_eq!(
                    src.tensor_data(&src_bytes, a).unwrap(),
                    new.tensor_data(&bytes, b).unwrap(),
                    "{name}: `{}` was not copied byte for byte",
                    a.name
                );
            }
        }
        if keep == EditedTensorType::Same {
            assert_eq!(
                bytes.len(),
                src_bytes.len(),
                "a Q4_1 file stays the same size"
            );
        }
        // Read back by gpt-core: the edited weights (exactly in F32; within Q4_1's steps).
        let back = load_model(&path, LoadOptions::default()).unwrap();
        let got = back.model.weight(target).unwrap();
        let err = (got - &edited).abs().max().double_value(&[]);
        match keep {
            EditedTensorType::F32 => assert_eq!(err, 0.0),
            _ => {
                assert!(
                    err <= report[0].max_abs_error + 1e-6,
                    "{err} vs {}",
                    report[0].max_abs_error
                );
                assert!(err < 0.2, "Q4_1 rounding {err}");
            }
        }
        let other = WeightId::MlpOut(Layer(5));
        assert!(back
            .model
            .weight(other)
            .unwrap()
            .equal(m.model.weight(other).unwrap()));
    }
    // Refusals: an existing file is never replaced; a weight llama.cpp stores permuted.
    let taken = dir.path().join("same.gguf");
    let before = std::fs::read(&taken).unwrap();
    let e = save_gguf(&m.model, &source, &taken, &[target], EditedTensorType::Same).unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    assert_eq!(std::fs::read(&taken).unwrap(), before);
    let e = save_gguf(
        &m.model,
        &source,
        &dir.path().join("q.gguf"),
        &[WeightId::AttnQ(Layer(0))],
        EditedTensorType::Same,
    )
    .unwrap_err();
    assert!(e.to_string().contains("not supported"), "{e}");
    assert!(!dir.path().join("q.gguf").exists());
}
