//! Forward-pass benchmarks: a batch of 11 × 10 tokens (the causal-trace batch: one clean and
//! ten corrupted rows) on the bundled model, with and without a no-op intervention that
//! visits every hook point, and on random weights at GPT-2 XL shapes (the paper's model).
//!
//! `cargo bench --bench forward`

#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use gpt_core::intervention::{from_fn, HookAction};
use gpt_core::random::gpt2_xl_config;
use gpt_core::tch::{self, Device, Kind};
use gpt_core::{load_model, HookableModel, LoadOptions, RandomInit, TokenBatch, Transformer};

const PROMPT: &str = "The Eiffel Tower is located in the city of";

fn batch_11x10(ids: &[i64]) -> TokenBatch {
    let row: Vec<i64> = ids.iter().copied().cycle().take(10).collect();
    TokenBatch::pad(&vec![row; 11], Default::default(), 0, Device::Cpu).expect("batch")
}

fn bundled(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !path.is_file() {
        eprintln!(
            "skipping bundled-model benches: {} is absent",
            path.display()
        );
        return;
    }
    let m = load_model(&path, LoadOptions::default()).expect("load");
    let ids = m.tokenizer.encode(PROMPT).expect("encode").ids;
    let batch = batch_11x10(&ids);
    let _guard = tch::no_grad_guard();
    let mut group = c.benchmark_group("smollm2_135m_11x10");
    group.sample_size(30);
    group.bench_function("forward", |b| {
        b.iter(|| m.model.forward(&batch).expect("forward"))
    });
    group.bench_function("forward_noop_hooks_all_points", |b| {
        b.iter(|| {
            let mut noop = from_fn(|_| true, |_, _| Ok(HookAction::Continue));
            m.model.forward_hooked(&batch, &mut noop).expect("forward")
        })
    });
    group.finish();
}

fn gpt2_xl(c: &mut Criterion) {
    let config = gpt2_xl_config();
    let model = Transformer::random(&config, RandomInit::default(), Device::Cpu, Kind::Float)
        .expect("random GPT-2 XL");
    let ids: Vec<i64> = (0..10).map(|i| 464 + i * 97).collect();
    let batch = batch_11x10(&ids);
    let _guard = tch::no_grad_guard();
    let mut group = c.benchmark_group("gpt2_xl_random_11x10");
    group.sample_size(10);
    group.bench_function("forward", |b| {
        b.iter(|| model.forward(&batch).expect("forward"))
    });
    group.finish();
}

criterion_group!(benches, bundled, gpt2_xl);
criterion_main!(benches);
