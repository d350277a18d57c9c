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

/// A K-quant source: the bundled file with `blk.4.ffn_down.weight` stored as Q4_K and
/// `blk.5.ffn_down.weight` as Q6_K (their rows of 1536 are whole 256-element super-blocks,
/// as in llama.cpp's Q4_K_M files). An edit of both is written back in the same K-quant
/// types, the file keeps its size, and it loads back to the edited weights within the
/// rounding `save_gguf` reports.
#[test]
fn edits_of_k_quant_matrices_are_written_back_in_their_k_quant() {
    let source = bundled();
    let src_bytes = std::fs::read(&source).unwrap();
    let src = gguf::GgufFile::from_bytes(&src_bytes).unwrap();
    let mut replace = std::collections::BTreeMap::new();
    for (name, ty) in [
        ("blk.4.ffn_down.weight", gguf::GgmlType::Q4K),
        ("blk.5.ffn_down.weight", gguf::GgmlType::Q6K),
    ] {
        let values = src.tensor_f32(&src_bytes, name).unwrap();
        let data = gguf::quantize(ty, &values).unwrap();
        replace.insert(name.to_string(), gguf::Replacement { ty, data });
    }
    let dir = tempfile::tempdir().unwrap();
    let k_source = dir.path().join("k.gguf");
    std::fs::write(&k_source, gguf::rewrite(&src_bytes, &replace).unwrap()).unwrap();
    let k_bytes = std::fs::read(&k_source).unwrap();

    let mut m = load_model(&k_source, LoadOptions::default()).unwrap();
    let targets = [WeightId::MlpOut(Layer(4)), WeightId::MlpOut(Layer(5))];
    let mut edited = Vec::new();
    for target in targets {
        let w = m.model.weight(target).unwrap();
        let (out, inp) = (w.size()[0], w.size()[1]);
        let u = Tensor::randn([out], (Kind::Float, Device::Cpu));
        let v = Tensor::randn([inp], (Kind::Float, Device::Cpu)) * 0.02;
        let _undo = m
            .model
            .apply(&WeightDelta::RankOne { target, u, v })
            .unwrap();
        edited.push(m.model.weight(target).unwrap().copy());
    }
    let path = dir.path().join("edited.gguf");
    let report = save_gguf(&m.model, &k_source, &path, &targets, EditedTensorType::Same).unwrap();
    let types: Vec<(&str, &str)> = report
        .iter()
        .map(|r| (r.source_type.as_str(), r.saved_type.as_str()))
        .collect();
    assert_eq!(types, [("Q4_K", "Q4_K"), ("Q6_K", "Q6_K")]);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        bytes.len(),
        k_bytes.len(),
        "a K-quant file stays the same size"
    );
    let back = load_model(&path, LoadOptions::default()).unwrap();
    for ((target, want), r) in targets.iter().zip(&edited).zip(&report) {
        let got = back.model.weight(*target).unwrap();
        let err = (got - want).abs().max().double_value(&[]);
        assert!(
            err <= r.max_abs_error + 1e-6,
            "{target}: {err} vs {}",
            r.max_abs_error
        );
        // Each type's rounding, relative to the matrix: Q4_K's 4-bit steps, Q6_K's 6-bit.
        let scale = want.abs().max().double_value(&[]);
        let limit = if r.saved_type == "Q4_K" { 0.15 } else { 0.05 };
        assert!(err < limit * scale, "{target}: {err} of {scale}");
        assert!(r.error_over_edit.is_finite() && r.error_over_edit > 0.0);
    }
}
