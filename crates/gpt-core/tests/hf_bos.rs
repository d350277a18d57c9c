//! Hugging Face tokenizers whose post-processor puts a BOS before every text (Llama 2 and 3,
//! Mistral, Gemma): prompts start with it, as transformers' tokenizers and the reference ROME
//! code have them; a model written as GGUF tells llama.cpp to add it, and one written back
//! as a folder keeps it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::{Path, PathBuf};

use gpt_core::random::tiny_config;
use gpt_core::tch::{Device, Kind};
use gpt_core::{
    load_hf_tokenizer, load_model, Architecture, GgufExport, LoadOptions, RandomInit,
    SubjectPrompt, Transformer,
};
use serde_json::{json, Value};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name)
}

/// The tiny GPT-2 tokenizer with `template` (`TemplateProcessing`'s `single`) after its
/// byte-level post-processor, `<|endoftext|>` (id 0) standing for BOS and EOS.
fn tokenizer_json(template: Value) -> Value {
    let mut t: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("tiny-gpt2/tokenizer.json")).unwrap(),
    )
    .unwrap();
    let byte_level = t["post_processor"].clone();
    t["post_processor"] = json!({
        "type": "Sequence",
        "processors": [byte_level, {
            "type": "TemplateProcessing",
            "single": template,
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [0], "tokens": ["<|endoftext|>"]}}
        }]
    });
    t
}

fn bos() -> Value {
    json!({"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}})
}

fn text() -> Value {
    json!({"Sequence": {"id": "A", "type_id": 0}})
}

fn folder(dir: &Path, tokenizer: &Value) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
}

#[test]
fn a_bos_template_puts_bos_first_as_transformers_does() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bos");
    folder(&dir, &tokenizer_json(json!([bos(), text()])));
    let tok = load_hf_tokenizer(&dir).unwrap();
    assert!(tok.adds_bos());
    assert_eq!(tok.bos_id(), Some(0));
    // transformers 5.25, `AutoTokenizer.from_pretrained(dir)("hello world").input_ids` on the
    // same two files.
    let enc = tok.encode("hello world").unwrap();
    assert_eq!(enc.ids, vec![0, 257, 342, 79, 270, 288, 394]);
    assert_eq!(enc.offsets[0], (0, 0));
    assert_eq!(enc.text_ids(), enc.ids[1..].to_vec());

    // The plain fixture (byte-level post-processor only) adds nothing.
    let plain = load_hf_tokenizer(&fixture("tiny-gpt2")).unwrap();
    assert!(!plain.adds_bos());
    assert_eq!(
        plain.encode("hello world").unwrap().ids,
        enc.ids[1..].to_vec()
    );

    // The subject is found after the BOS: the same tokens, one position later.
    let with = SubjectPrompt::new(&tok, "The Eiffel Tower is in", "Eiffel Tower").unwrap();
    let without = SubjectPrompt::new(&plain, "The Eiffel Tower is in", "Eiffel Tower").unwrap();
    assert_eq!(with.ids[0], 0);
    assert_eq!(with.subject_range.start, without.subject_range.start + 1);
    assert_eq!(with.subject_range.end, without.subject_range.end + 1);
}

#[test]
fn only_a_leading_special_token_is_added() {
    let tmp = tempfile::tempdir().unwrap();
    // BOS and EOS around the text: the BOS only (a prompt continues, it does not end).
    let both = tmp.path().join("both");
    folder(&both, &tokenizer_json(json!([bos(), text(), bos()])));
    let tok = load_hf_tokenizer(&both).unwrap();
    assert!(tok.adds_bos());
    assert_eq!(
        tok.encode("hello world").unwrap().ids,
        vec![0, 257, 342, 79, 270, 288, 394]
    );
    // EOS only: nothing is added.
    let eos = tmp.path().join("eos");
    folder(&eos, &tokenizer_json(json!([text(), bos()])));
    let tok = load_hf_tokenizer(&eos).unwrap();
    assert!(!tok.adds_bos());
    assert_eq!(
        tok.encode("hello world").unwrap().ids,
        vec![257, 342, 79, 270, 288, 394]
    );
}

/// A model folder whose tokenizer adds a BOS: the config's BOS id does not replace the
/// tokenizer's, and the GGUF written from the folder says to add it, with its id.
#[test]
fn a_folder_that_adds_bos_keeps_it_and_exports_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    let plain = load_hf_tokenizer(&fixture("tiny-gpt2")).unwrap();
    let mut c = tiny_config(Architecture::Llama);
    c.vocab_size = plain.vocab_size();
    c.bos_token_id = Some(5);
    let model = Transformer::random(
        &c,
        RandomInit { seed: 2, std: 0.3 },
        Device::Cpu,
        Kind::Float,
    )
    .unwrap();
    model.save_hf(&dir, &plain).unwrap();
    folder(&dir, &tokenizer_json(json!([bos(), text()])));
    let loaded = load_model(&dir, LoadOptions::default()).unwrap();
    assert_eq!(loaded.tokenizer.bos_id(), Some(0));
    assert_eq!(loaded.tokenizer.encode("hi").unwrap().ids[0], 0);

    let out = tmp.path().join("model.gguf");
    loaded
        .model
        .export_gguf(&out, &loaded.tokenizer, &GgufExport::default())
        .unwrap();
    let back = load_model(&out, LoadOptions::default()).unwrap();
    assert!(back.tokenizer.adds_bos());
    assert_eq!(back.tokenizer.bos_id(), Some(0));
    assert_eq!(
        back.tokenizer.encode("hello world").unwrap().ids,
        loaded.tokenizer.encode("hello world").unwrap().ids
    );

    // And back to a folder: the GGUF's tokenizer has no post-processor, so the folder's
    // tokenizer.json gets one that puts the BOS first (as transformers will read it).
    let again = tmp.path().join("again");
    back.model.save_hf(&again, &back.tokenizer).unwrap();
    let reloaded = load_model(&again, LoadOptions::default()).unwrap();
    assert!(reloaded.tokenizer.adds_bos());
    assert_eq!(
        reloaded.tokenizer.encode("hello world").unwrap().ids,
        vec![0, 257, 342, 79, 270, 288, 394]
    );
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(again.join("tokenizer.json")).unwrap())
            .unwrap();
    assert!(
        json["post_processor"]
            .to_string()
            .contains("TemplateProcessing"),
        "{}",
        json["post_processor"]
    );
    // A folder whose tokenizer already puts its BOS first is written as it was.
    let same = tmp.path().join("same");
    loaded.model.save_hf(&same, &loaded.tokenizer).unwrap();
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(same.join("tokenizer.json")).unwrap())
            .unwrap();
    assert_eq!(
        written["post_processor"],
        tokenizer_json(json!([bos(), text()]))["post_processor"]
    );
}
