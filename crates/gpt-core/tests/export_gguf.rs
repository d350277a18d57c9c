//! Models written as new GGUF files from their weights (`Transformer::export_gguf`): the
//! file loads back to the same logits (exactly in F32, within the type's rounding
//! otherwise) and the same tokenization; the bundled model, taken through a Hugging Face
//! folder and back, gets the tokenizer metadata, hyperparameters and tensor names that
//! llama.cpp's converter gave it; what llama.cpp would compute differently is refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::{Path, PathBuf};

use gguf::{GgmlType, GgufFile};
use gpt_core::tch::{Device, Tensor};

use gpt_core::{load_model, GgufExport, HookableModel, LoadOptions, LoadedModel, TokenBatch};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name)
}

const TEXTS: &[&str] = &[
    "The Eiffel Tower is located in the city of",
    "In 1889, 12,345 people paid 2.50 francs — déjà vu!",
    "  spaces\tand\nnew lines <|endoftext|> end",
];

fn logits(m: &LoadedModel, text: &str) -> Tensor {
    let ids = m.tokenizer.encode(text).unwrap().ids;
    let batch = TokenBatch::single(&ids, Device::Cpu).unwrap();
    m.model.forward(&batch).unwrap()
}

/// Exports `m` as `ty`, loads the file back and returns it with the largest logit
/// difference over [`TEXTS`] (asserting the same tokens).
fn round_trip(m: &LoadedModel, dir: &Path, ty: GgmlType) -> (LoadedModel, f64) {
    let out = dir.join(format!("{}.gguf", ty.name()));
    let options = GgufExport {
        ty,
        name: Some("round trip".into()),
        ..GgufExport::default()
    };
    let report = m.model.export_gguf(&out, &m.tokenizer, &options).unwrap();
    assert_eq!(report.bytes, std::fs::metadata(&out).unwrap().len());
    let back = load_model(&out, LoadOptions::default()).unwrap();
    let mut worst = 0.0f64;
    for text in TEXTS {
        assert_eq!(
            back.tokenizer.encode(text).unwrap().ids,
            m.tokenizer.encode(text).unwrap().ids,
            "{ty}: `{text}` tokenizes differently from the GGUF"
        );
        let diff = (logits(m, text) - logits(&back, text))
            .abs()
            .max()
            .double_value(&[]);
        worst = worst.max(diff);
    }
    (back, worst)
}

#[test]
fn hugging_face_models_load_back_from_gguf() {
    for name in ["tiny-gpt2", "tiny-llama", "tiny-llama-tied", "tiny-qwen2"] {
        let m = load_model(&fixture(name), LoadOptions::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (back, f32_diff) = round_trip(&m, dir.path(), GgmlType::F32);
        assert!(f32_diff <= 1e-5, "{name}: F32 logits differ by {f32_diff}");
        assert_eq!(back.model.config().n_layers, m.model.config().n_layers);
        assert_eq!(
            back.model.config().tied_embeddings,
            m.model.config().tied_embeddings
        );
        assert_eq!(back.model.config().qkv_bias, m.model.config().qkv_bias);
        // The tiny models' rows are whole Q8_0 blocks. Their random weights amplify
        // rounding (Q8_0 moved logits of about ±4.5 by 0.14 to 0.32 when written), yet
        // far less than any wrong layout would.
        let scale = logits(&m, TEXTS[0]).abs().max().double_value(&[]);
        let (_, q8_diff) = round_trip(&m, dir.path(), GgmlType::Q8_0);
        assert!(
            q8_diff > 0.0 && q8_diff < 0.1 * scale,
            "{name}: Q8_0 logits differ by {q8_diff} (largest logit {scale})"
        );
        let (_, f16_diff) = round_trip(&m, dir.path(), GgmlType::F16);
        assert!(
            f16_diff < q8_diff,
            "{name}: F16 {f16_diff} vs Q8_0 {q8_diff}"
        );
    }
}

/// llama.cpp's `llama` graph rotates adjacent pairs, so its q/k rows interleave each head's
/// rotary halves; its `qwen2` graph rotates halves as transformers does and keeps the rows
/// (checked by hand: llama.cpp gives the tiny Qwen2 and Llama files' exact probabilities).
#[test]
fn q_rows_are_interleaved_for_llama_and_kept_for_qwen2() {
    let dir = tempfile::tempdir().unwrap();
    for (name, interleaved) in [("tiny-llama", true), ("tiny-qwen2", false)] {
        let m = load_model(&fixture(name), LoadOptions::default()).unwrap();
        let out = dir.path().join(format!("{name}.gguf"));
        let options = GgufExport {
            ty: GgmlType::F32,
            ..GgufExport::default()
        };
        m.model.export_gguf(&out, &m.tokenizer, &options).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        let file = GgufFile::from_bytes(&bytes).unwrap();
        let q = Tensor::from_slice(&file.tensor_f32(&bytes, "blk.0.attn_q.weight").unwrap());
        let hf = Tensor::read_safetensors(fixture(name).join("model.safetensors"))
            .unwrap()
            .into_iter()
            .find(|(n, _)| n == "model.layers.0.self_attn.q_proj.weight")
            .unwrap()
            .1;
        let (rows, cols) = (hf.size()[0], hf.size()[1]);
        let heads = 4;
        let want = if interleaved {
            hf.reshape([heads, 2, rows / heads / 2, cols])
                .transpose(1, 2)
                .reshape([rows, cols])
        } else {
            hf.shallow_clone()
        };
        assert!(
            q.reshape([rows, cols])
                .equal(&want.to_kind(gpt_core::tch::Kind::Float)),
            "{name}: attn_q rows"
        );
    }
}

#[test]
fn what_llama_cpp_would_compute_differently_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (name, says) in [
        ("tiny-gemma", "`gemma`"),
        ("tiny-mistral", "sliding attention window"),
        ("tiny-neox", "GptNeox"),
        ("tiny-llama-rope-linear", "rope scaling"),
    ] {
        let m = load_model(&fixture(name), LoadOptions::default()).unwrap();
        let out = dir.path().join(format!("{name}.gguf"));
        let err = m
            .model
            .export_gguf(&out, &m.tokenizer, &GgufExport::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{name}: {err}");
        assert!(!out.exists(), "{name}: a refused export left a file");
    }
    // An unknown pre-tokenizer name is not guessed, and a file is never overwritten.
    let m = load_model(&fixture("tiny-gpt2"), LoadOptions::default()).unwrap();
    let out = dir.path().join("taken.gguf");
    std::fs::write(&out, b"mine").unwrap();
    let err = m
        .model
        .export_gguf(&out, &m.tokenizer, &GgufExport::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"mine");
    let err = m
        .model
        .export_gguf(
            &dir.path().join("q2k.gguf"),
            &m.tokenizer,
            &GgufExport {
                ty: GgmlType::Q2K,
                ..GgufExport::default()
            },
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("Q2_K"), "{err}");
    // A BPE over SentencePiece-style pieces is not GPT-2's kind, whatever name is given.
    let text = std::fs::read_to_string(fixture("tiny-gpt2").join("tokenizer.json")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["pre_tokenizer"] = serde_json::json!({"type": "Metaspace", "replacement": "▁",
        "prepend_scheme": "always", "split": true});
    let path = dir.path().join("metaspace.json");
    std::fs::write(&path, json.to_string()).unwrap();
    let tok = gpt_core::Tokenizer::from_file(&path).unwrap();
    let options = GgufExport {
        pre_tokenizer: Some("gpt-2".into()),
        ..GgufExport::default()
    };
    let err = m
        .model
        .check_gguf_export(&tok, &options)
        .unwrap_err()
        .to_string();
    assert!(err.contains("byte-level"), "{err}");
    assert_eq!(
        m.model.check_gguf_export(&m.tokenizer, &options).unwrap(),
        "gpt-2"
    );
}

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

/// The bundled model (made by llama.cpp's converter from SmolLM2's Hugging Face folder)
/// written as a folder, loaded from it, and exported: the GGUF says what the converter's
/// did, and computes what the model does.
#[test]
fn the_bundled_model_through_a_hugging_face_folder_gets_llama_cpp_s_metadata() {
    let source = bundled();
    let original = load_model(&source, LoadOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("hf");
    original
        .model
        .save_hf(&folder, &original.tokenizer)
        .unwrap();
    let hf = load_model(&folder, LoadOptions::default()).unwrap();
    let (_, f32_diff) = round_trip(&hf, dir.path(), GgmlType::F32);
    assert!(f32_diff <= 1e-4, "F32 logits differ by {f32_diff}");
    let (q8, q8_diff) = round_trip(&hf, dir.path(), GgmlType::Q8_0);
    let eiffel = logits(&q8, TEXTS[0]);
    let top = eiffel.select(1, -1).argmax(-1, false).int64_value(&[0]);
    assert_eq!(
        q8.tokenizer.token_text(top).unwrap(),
        " Paris",
        "Q8_0 top-1"
    );
    assert!(q8_diff < 2.0, "Q8_0 logits differ by {q8_diff}");

    let src_bytes = std::fs::read(&source).unwrap();
    let src = GgufFile::from_bytes(&src_bytes).unwrap();
    let new_bytes = std::fs::read(dir.path().join("Q8_0.gguf")).unwrap();
    let new = GgufFile::from_bytes(&new_bytes).unwrap();
    for key in [
        "general.architecture",
        "llama.block_count",
        "llama.context_length",
        "llama.embedding_length",
        "llama.feed_forward_length",
        "llama.attention.head_count",
        "llama.attention.head_count_kv",
        "llama.rope.freq_base",
        "llama.attention.layer_norm_rms_epsilon",
        "llama.vocab_size",
        "llama.rope.dimension_count",
        "tokenizer.ggml.model",
        "tokenizer.ggml.pre",
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.token_type",
        "tokenizer.ggml.merges",
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.unknown_token_id",
        "tokenizer.ggml.add_bos_token",
        "tokenizer.ggml.add_space_prefix",
    ] {
        assert_eq!(new.get(key), src.get(key), "`{key}`");
    }
    assert_eq!(
        new.get("general.file_type").and_then(|v| v.as_u64()),
        Some(7)
    );
    let names = |f: &GgufFile| {
        let mut v: Vec<(String, Vec<u64>)> = f
            .tensors
            .iter()
            .map(|t| (t.name.clone(), t.dims.clone()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&new), names(&src), "tensor names and dims");
}
