//! Target residuals fitted together or one request at a time: MEMIT on the first N
//! CounterFact cases of `../shared/data/counterfact_dev.json` on the bundled model, once with
//! every request alone (N calls) and once with all N in one call (its z fitted in batches of
//! `rome::TARGET_BATCH`); prints seconds per request of each, their ratio, and how far the
//! two sets of z are apart.
//!
//! `cargo run --release -p factscope-rome --example memit_target_batch -- [N]` (default 16;
//! the key statistics come from the per-user cache, computed on first use).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

use std::time::Instant;

use gpt_core::progress;
use rome::{
    compute_memit, context_templates, GeneratedCorpus, MemitHparams, RewriteRequest, StatsCache,
};

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().nth(1).map_or(Ok(16), |a| a.parse())?;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let m = gpt_core::load_model(
        &root.join("models/SmolLM2-135M-Instruct.Q4_1.gguf"),
        gpt_core::LoadOptions::default(),
    )?;
    let cases: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(
        root.join("../shared/data/counterfact_dev.json"),
    )?)?;
    let requests: Vec<RewriteRequest> = cases
        .iter()
        .take(n)
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            let prompt = s("prompt").replacen(&s("subject"), "{}", 1);
            RewriteRequest::new(&prompt, s("subject"), s("target_new"))
        })
        .collect::<gpt_core::Result<_>>()?;
    let hp = MemitHparams::smollm2();
    let cache = StatsCache::default_location();
    let cs = hp
        .layers
        .iter()
        .map(|&l| {
            cache
                .generated(
                    &m.model,
                    &m.tokenizer,
                    l,
                    GeneratedCorpus::default(),
                    &mut progress::ignore,
                )?
                .c()
        })
        .collect::<rome::Result<Vec<_>>>()?;
    let templates = context_templates(
        &m.model,
        &m.tokenizer,
        &hp.z.context_template_length_params,
        1,
    )?;
    let mut model = m.model;
    let started = Instant::now();
    let mut alone = Vec::new();
    for r in &requests {
        let edit = compute_memit(
            &mut model,
            &m.tokenizer,
            std::slice::from_ref(r),
            &hp,
            &cs,
            &templates,
            &mut progress::ignore,
        )?;
        alone.push(edit.z.select(0, 0));
    }
    let one_at_a_time = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let joint = compute_memit(
        &mut model,
        &m.tokenizer,
        &requests,
        &hp,
        &cs,
        &templates,
        &mut progress::ignore,
    )?;
    let together = started.elapsed().as_secs_f64();
    let mut worst: f64 = 0.0;
    for (i, z) in alone.iter().enumerate() {
        let diff = (z - joint.z.select(0, i as i64))
            .abs()
            .max()
            .double_value(&[]);
        let scale = z.abs().max().double_value(&[]).max(1.0);
        worst = worst.max(diff / scale);
    }
    println!(
        "{n} requests, {} threads: one at a time {:.2} s/request, together (batches of {}) {:.2} s/request, ratio {:.2}; largest z difference {worst:.2e} (relative to max |z|)",
        gpt_core::tch::get_num_threads(),
        one_at_a_time / n as f64,
        rome::TARGET_BATCH,
        together / n as f64,
        one_at_a_time / together
    );
    Ok(())
}
