//! Throughput of CounterFact's probability tests on the bundled model, unedited: the
//! batched scorer (all prompts of many cases in length-sorted batches, only the read
//! positions unembedded) against a naive loop of one forward pass per (prompt, target), on
//! the same cases in one run; then the batched scorer alone on 1,000 cases.
//! Needs `../shared/data/counterfact_dev.json` (skips with a message otherwise).
//!
//! `cargo bench --bench counterfact [-- NAIVE_CASES [ALL_CASES]]`

#![allow(clippy::disallowed_methods, clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::time::Instant;

use counterfact::metrics::case_items;
use counterfact::{load_cases, score_cases, score_items_naive, BatchLimits, EditCase};

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = root.join("../shared/data/counterfact_dev.json");
    if !data.exists() {
        println!("skipped: {} is absent", data.display());
        return Ok(());
    }
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let naive_n = args.first().copied().unwrap_or(200);
    let all_n = args.get(1).copied().unwrap_or(1000);
    let m = gpt_core::load_model(
        &root.join("models/SmolLM2-135M-Instruct.Q4_1.gguf"),
        Default::default(),
    )?;
    println!("threads: {}", gpt_core::tch::get_num_threads());
    let cases = load_cases(&data, false)?.cases;
    let some: Vec<&EditCase> = cases.iter().take(naive_n).collect();
    let items = case_items(&m.tokenizer, &some)?;

    let t = Instant::now();
    let naive = score_items_naive(&m.model, &items)?;
    let naive_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let fast = score_cases(&m.model, &m.tokenizer, &some, BatchLimits::default())?;
    let fast_s = t.elapsed().as_secs_f64();
    // Same numbers: the efficacy NLLs of both.
    let mut max_diff: f64 = 0.0;
    let mut k = 0;
    for c in &fast {
        for pairs in [&c.nll.rewrite, &c.nll.paraphrase, &c.nll.neighborhood] {
            for p in pairs.iter() {
                max_diff = max_diff
                    .max((p.new - naive[k].mean_nll).abs())
                    .max((p.truth - naive[k + 1].mean_nll).abs());
                k += 2;
            }
        }
    }
    println!(
        "{} cases ({} prompt-target pairs): naive {naive_s:.2} s, batched {fast_s:.2} s, speed-up {:.2}x, max |ΔNLL| {max_diff:.2e}",
        some.len(),
        items.len(),
        naive_s / fast_s
    );
    let all: Vec<&EditCase> = cases.iter().take(all_n).collect();
    let t = Instant::now();
    let scored = score_cases(&m.model, &m.tokenizer, &all, BatchLimits::default())?;
    let all_s = t.elapsed().as_secs_f64();
    println!(
        "{} cases batched: {all_s:.2} s ({:.1} cases/s)",
        scored.len(),
        scored.len() as f64 / all_s
    );
    Ok(())
}
