//! The GGUF tokenizer splits text as llama.cpp does for each pre-tokenizer name it rebuilds:
//! the bundled model's vocabulary under `gpt-2`, `smollm`, `llama-bpe`, `qwen2` and
//! `default` gives the token ids llama.cpp gave the same texts (recorded in
//! `fixtures/llama-cpp-pretokenizers.json`), and a name it does not rebuild is refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::{Path, PathBuf};

use gguf::{GgufFile, MetadataValue};
use gpt_core::Tokenizer;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bundled() -> (PathBuf, GgufFile) {
    let path = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "the bundled model {} is absent: run `bash scripts/setup.sh`",
        path.display()
    );
    let file = gguf::GgufReader::open(&path).unwrap().file;
    (path, file)
}

fn with_pre(file: &GgufFile, pre: &str) -> GgufFile {
    let mut file = file.clone();
    file.metadata.insert(
        "tokenizer.ggml.pre".into(),
        MetadataValue::String(pre.into()),
    );
    file
}

#[test]
fn each_pre_tokenizer_splits_as_llama_cpp_does() {
    let text =
        std::fs::read_to_string(root().join("fixtures/llama-cpp-pretokenizers.json")).unwrap();
    let reference: serde_json::Value = serde_json::from_str(&text).unwrap();
    let texts: Vec<&str> = reference["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let (path, file) = bundled();
    let names = reference["ids"].as_object().unwrap();
    assert_eq!(names.len(), 5);
    let mut differ = 0;
    for (pre, ids) in names {
        let tok = Tokenizer::from_gguf(&with_pre(&file, pre), &path).unwrap();
        for (i, text) in texts.iter().enumerate() {
            let want: Vec<i64> = ids[i]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap())
                .collect();
            assert_eq!(tok.encode(text).unwrap().ids, want, "`{pre}` on {text:?}");
        }
        if ids != &names["smollm"] {
            differ += 1;
        }
    }
    // The texts tell the pre-tokenizers apart (with this vocabulary `gpt-2` and `smollm`
    // agree: its merges never join digits).
    assert!(
        differ >= 3,
        "only {differ} names tokenize differently from smollm"
    );
}

#[test]
fn a_pre_tokenizer_that_is_not_rebuilt_is_refused() {
    let (path, file) = bundled();
    let err = Tokenizer::from_gguf(&with_pre(&file, "tekken"), &path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("tekken") && err.contains("llama.cpp"), "{err}");
}
