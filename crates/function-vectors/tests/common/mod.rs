//! Tiny random models of both architectures with the fixture tokenizers, and small tasks.

#![allow(
    dead_code,
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::path::{Path, PathBuf};

use function_vectors::{Pair, Task};
use gpt_core::random::tiny_config;
use gpt_core::tch::{Device, Kind};
use gpt_core::{load_hf_tokenizer, Architecture, RandomInit, Tokenizer, Transformer};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name)
}

/// A GPT-2 model (4 heads) or a grouped-query Llama (6 query heads over 2 key/value heads,
/// as SmolLM2's 9 over 3), 3 layers, f64, with the fixture's tokenizer.
pub fn tiny(arch: Architecture, kind: Kind) -> (Transformer, Tokenizer) {
    let dir = match arch {
        Architecture::Gpt2 => "tiny-gpt2",
        _ => "tiny-llama",
    };
    let tokenizer = load_hf_tokenizer(&fixture(dir)).expect("tokenizer");
    let mut c = tiny_config(arch);
    c.vocab_size = tokenizer.vocab_size();
    c.n_layers = 3;
    c.n_ctx = 256;
    if arch == Architecture::Llama {
        c.n_heads = 6;
        c.n_kv_heads = 2;
        c.d_head = 4;
        c.d_model = 24;
    }
    let model = Transformer::random(&c, RandomInit { seed: 11, std: 0.3 }, Device::Cpu, kind)
        .expect("model");
    (model, tokenizer)
}

pub const ARCHS: [Architecture; 4] = Architecture::ALL;

/// A small word task (opposites), `n` pairs.
pub fn word_task(n: usize) -> Task {
    let words = [
        ("hot", "cold"),
        ("up", "down"),
        ("big", "small"),
        ("fast", "slow"),
        ("old", "new"),
        ("wet", "dry"),
        ("dark", "light"),
        ("high", "low"),
        ("good", "bad"),
        ("open", "shut"),
        ("rich", "poor"),
        ("long", "short"),
        ("hard", "soft"),
        ("full", "empty"),
        ("early", "late"),
        ("near", "far"),
        ("loud", "quiet"),
        ("thick", "thin"),
        ("strong", "weak"),
        ("happy", "sad"),
    ];
    let pairs = words
        .iter()
        .cycle()
        .take(n)
        .map(|(a, b)| Pair {
            input: a.to_string(),
            output: b.to_string(),
        })
        .collect();
    Task::from_pairs("opposites", pairs).expect("task")
}
