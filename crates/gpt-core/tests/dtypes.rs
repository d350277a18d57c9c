//! Half-precision checkpoints load in their own dtype, bit for bit (no f32 round trip).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::Path;

use gpt_core::tch::{Kind, Tensor};
use gpt_core::{load_model, EditableModel, Layer, LoadOptions, WeightId};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name)
}

#[test]
fn bf16_and_f16_checkpoints_load_bit_exactly() {
    for kind in [Kind::BFloat16, Kind::Half] {
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(fixture("tiny-llama")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
        // Rewrite the weights in `kind`, as a half-precision checkpoint would store them.
        let path = dir.path().join("model.safetensors");
        let tensors: Vec<(String, Tensor)> = Tensor::read_safetensors(&path)
            .unwrap()
            .into_iter()
            .map(|(n, t)| (n, t.to_kind(kind)))
            .collect();
        Tensor::write_safetensors(&tensors, &path).unwrap();
        let m = load_model(
            dir.path(),
            LoadOptions {
                kind,
                ..LoadOptions::default()
            },
        )
        .unwrap();
        let stored = |name: &str| {
            tensors
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t.shallow_clone())
                .unwrap()
        };
        for (id, name) in [
            (WeightId::Embed, "model.embed_tokens.weight"),
            (
                WeightId::MlpOut(Layer(1)),
                "model.layers.1.mlp.down_proj.weight",
            ),
            (
                WeightId::AttnV(Layer(0)),
                "model.layers.0.self_attn.v_proj.weight",
            ),
        ] {
            let w = m.model.weight(id).unwrap();
            assert_eq!(w.kind(), kind, "{id}");
            assert!(
                w.equal(&stored(name)),
                "{kind:?} {id}: differs from the file"
            );
        }
    }
}
