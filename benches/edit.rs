//! Benchmark of one ROME edit on the bundled model (C cached in memory): the fast schedule
//! of the v* optimisation (prefix keys/values and the residual entering block L computed
//! once; each step runs the tokens from the subject on through blocks L.. and unembeds only
//! the read positions) against the naive one (every block, every position, as
//! the reference), in one run; plus key-statistics throughput against plain forward passes
//! up to block L on the same batches. Prints seconds, ratios and the v* difference.
//!
//! `cargo bench --bench edit`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

use std::path::Path;
use std::time::Instant;

use gpt_core::intervention::StopAt;
use gpt_core::tch;
use gpt_core::{HookPoint, HookableModel, Padding, TokenBatch};
use rome::{
    compute_rome, context_templates, generated_corpus, GeneratedCorpus, KeyStatsRun,
    RewriteRequest, RomeHparams, Schedule, StatsOptions,
};

fn main() -> anyhow::Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let m = gpt_core::load_model(&path, Default::default())?;
    println!("threads: {}", tch::get_num_threads());
    let hp = RomeHparams::smollm2();

    let t = Instant::now();
    let corpus = generated_corpus(
        &m.model,
        &m.tokenizer,
        GeneratedCorpus::default(),
        &mut gpt_core::progress::ignore,
    )?;
    println!(
        "model-sampled corpus: {} documents in {:.1} s",
        corpus.len(),
        t.elapsed().as_secs_f64()
    );

    // Key statistics vs plain forward passes stopped after block L's MLP keys, same batches.
    let options = StatsOptions::new(hp.layer);
    let t = Instant::now();
    let stats = KeyStatsRun::new(&m.model, &m.tokenizer, &corpus, &options).compute()?;
    let stats_s = t.elapsed().as_secs_f64();
    let seqs: Vec<Vec<i64>> = corpus
        .documents
        .iter()
        .map(|d| m.tokenizer.encode(d).map(|e| e.ids))
        .collect::<gpt_core::Result<_>>()?;
    let t = Instant::now();
    {
        let _guard = tch::no_grad_guard();
        let mut sorted = seqs.clone();
        sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
        for chunk in sorted.chunks((options.batch_tokens / sorted[0].len()).max(1)) {
            let batch = TokenBatch::pad(chunk, Padding::Right, 0, m.model.device())?;
            let _ = m
                .model
                .forward_hooked(&batch, &mut StopAt(HookPoint::mlp_out(hp.layer)))?;
        }
    }
    let forward_s = t.elapsed().as_secs_f64();
    let tokens = stats.meta.tokens as f64;
    println!(
        "key statistics: {:.0} tokens/s ({stats_s:.2} s); forward to block {}: {:.0} tokens/s ({forward_s:.2} s); ratio {:.2}",
        tokens / stats_s,
        hp.layer,
        tokens / forward_s,
        stats_s / forward_s
    );

    let c = stats.c()?;
    let request = RewriteRequest::new("{} is located in the city of", "The Eiffel Tower", "Rome")?;
    let templates = context_templates(
        &m.model,
        &m.tokenizer,
        &hp.context_template_length_params,
        0,
    )?;
    let run = |schedule| -> anyhow::Result<(f64, rome::RomeEdit)> {
        let t = Instant::now();
        let edit = compute_rome(
            &m.model,
            &m.tokenizer,
            &request,
            &hp,
            Some(&c),
            &templates,
            schedule,
            &mut gpt_core::progress::ignore,
        )?;
        Ok((t.elapsed().as_secs_f64(), edit))
    };
    let (fast_s, fast) = run(Schedule::Fast)?;
    let (naive_s, naive) = run(Schedule::Naive)?;
    let diff = (&fast.v_star - &naive.v_star).abs().max().double_value(&[]);
    println!(
        "ROME edit (21 templates, {} steps): fast {fast_s:.2} s, naive {naive_s:.2} s, speed-up {:.2}x, max |v*_fast − v*_naive| {diff:.2e}",
        fast.losses.len(),
        naive_s / fast_s
    );
    Ok(())
}
