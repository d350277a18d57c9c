//! GE's texts on the bundled instruct model: generation ends at end-of-text and end-of-turn
//! tokens and the texts hold no special tokens (`<|im_end|>`, `<|im_start|>assistant`), which
//! would otherwise be scored as words.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use counterfact::fluency::generate_texts;
use gpt_core::{load_model, LoadOptions};

#[test]
fn fluency_texts_have_no_special_tokens() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "the bundled model {} is absent: run `bash scripts/setup.sh`",
        path.display()
    );
    let m = load_model(&path, LoadOptions::default()).unwrap();
    let prompts: Vec<String> = [
        "Danielle Darrieux's mother tongue is",
        "The Eiffel Tower is located in",
        "Toko Yasuda plays the",
        "Apple A5 was created by",
        "What is the capital of France?",
        "Thank you!",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let seeds: Vec<u64> = (0..prompts.len() as u64).collect();
    let texts = generate_texts(&m.model, &m.tokenizer, &prompts, &seeds, 60, 6).unwrap();
    assert_eq!(texts.len(), prompts.len());
    for (p, t) in prompts.iter().zip(&texts) {
        assert!(t.starts_with(p.as_str()), "{t:?}");
        assert!(
            !t.contains("<|"),
            "a special token in a fluency text: {t:?}"
        );
    }
}
