//! f32 against bf16 on the bundled model, in one run: the causal trace of the Eiffel Tower
//! (hidden + MLP + attention, 10 samples, fast schedule), the key statistics of ROME's layer,
//! one ROME edit (each dtype with its own C; δ, Adam and the solve stay in f32/f64) and the
//! unedited CounterFact probability tests of the first 100 dev cases. Prints seconds and the
//! speed-up of each, and what bf16 changes: the largest grid-cell difference, C's and v*'s
//! relative differences, the edit's new-target probability, and how many ES/PS/NS comparisons
//! flip. Peak memory is not measured here (both models live in one process): see the
//! `load_memory` example of gpt-core and `/usr/bin/time -v factscope trace --dtype …`.
//!
//! `cargo bench --bench dtype [-- CASES] [trace] [stats] [edit] [scoring]` (CASES defaults to
//! 100; naming parts runs only those, key statistics coming with the edit; the CounterFact part
//! needs `../shared/data/counterfact_dev.json` and is skipped with a message without it). Each
//! part is run once untimed first (oneDNN builds its kernels on the first use of each shape);
//! the edit prints that first run's time too, since a one-off `factscope edit` pays it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

use std::path::Path;
use std::time::Instant;

use causal_trace::noise::{embedding_std, Corruption};
use causal_trace::{GridSpec, SubjectPrompt, TraceGrid, TraceKind, TraceSetup, Tracer};
use counterfact::{load_cases, score_cases, BatchLimits, EditCase};
use gpt_core::tch::{self, Kind, Tensor};
use gpt_core::{LoadOptions, LoadedModel};
use rome::{
    compute_rome, context_templates, generated_corpus, GeneratedCorpus, KeyStatsRun,
    RewriteRequest, RomeHparams, Schedule, StatsOptions,
};

const PROMPT: &str = "The Eiffel Tower is located in the city of";
const SUBJECT: &str = "The Eiffel Tower";

fn timed<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(f64, T)> {
    let t = Instant::now();
    let out = f()?;
    Ok((t.elapsed().as_secs_f64(), out))
}

fn trace(m: &LoadedModel) -> anyhow::Result<Vec<TraceGrid>> {
    let prompt = SubjectPrompt::new(&m.tokenizer, PROMPT, SUBJECT)?;
    let sigma = embedding_std(&m.model, &m.tokenizer, &[SUBJECT.to_string()])?;
    let setup = TraceSetup {
        samples: 10,
        corruption: Corruption::paper_default(),
        sigma: Some(sigma),
        seed: 1,
    };
    let tracer = Tracer::new(&m.model, &m.tokenizer, prompt, setup, None)?;
    TraceKind::ALL
        .iter()
        .map(|&kind| Ok(tracer.grid(&GridSpec::new(kind))?))
        .collect()
}

/// ‖a − b‖ / ‖b‖ in f64.
fn relative(a: &Tensor, b: &Tensor) -> f64 {
    let a = a.to_kind(Kind::Double);
    let b = b.to_kind(Kind::Double);
    (&a - &b).norm().double_value(&[]) / b.norm().double_value(&[])
}

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cases_n = args
        .iter()
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(100);
    let parts = ["trace", "stats", "edit", "scoring"];
    let named: Vec<&str> = parts
        .into_iter()
        .filter(|p| args.iter().any(|a| a == p))
        .collect();
    let runs = |part: &str| named.is_empty() || named.contains(&part);
    let path = root.join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let load = |kind| {
        gpt_core::load_model(
            &path,
            LoadOptions {
                kind,
                ..Default::default()
            },
        )
    };
    let f32m = load(Kind::Float)?;
    let bf16m = load(Kind::BFloat16)?;
    println!("threads: {}", tch::get_num_threads());
    let models = [("f32", &f32m), ("bf16", &bf16m)];

    if runs("trace") {
        compare_traces(&models)?;
    }
    if runs("stats") || runs("edit") {
        compare_edits(&models, runs("edit"))?;
    }
    if runs("scoring") {
        compare_scoring(root, &models, cases_n)?;
    }
    Ok(())
}

type Models<'a> = [(&'static str, &'a LoadedModel); 2];

fn compare_traces(models: &Models<'_>) -> anyhow::Result<()> {
    let mut traced = Vec::new();
    for &(name, m) in models {
        trace(m)?; // warm-up (oneDNN builds its kernels on first use of each shape)
        let (s, grids) = timed(|| trace(m))?;
        println!("trace {name}: {s:.2} s");
        traced.push((s, grids));
    }
    for (f, b) in traced[0].1.iter().zip(&traced[1].1) {
        let max = f
            .scores
            .iter()
            .flatten()
            .zip(b.scores.iter().flatten())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f64, f64::max);
        println!(
            "  {:?} grid: max |f32 − bf16| {max:.4} (clean p {:.4} vs {:.4})",
            f.kind, f.clean_score, b.clean_score
        );
    }
    println!("trace speed-up bf16: {:.2}x", traced[0].0 / traced[1].0);
    Ok(())
}

/// Key statistics on one model-sampled corpus, then (with `edit`) one ROME edit with each
/// dtype's C, after an untimed first edit.
fn compare_edits(models: &Models<'_>, with_edit: bool) -> anyhow::Result<()> {
    let hp = RomeHparams::smollm2();
    let corpus = generated_corpus(
        &models[0].1.model,
        &models[0].1.tokenizer,
        GeneratedCorpus::default(),
        &mut gpt_core::progress::ignore,
    )?;
    let options = StatsOptions::new(hp.layer);
    let request = RewriteRequest::new("{} is located in the city of", SUBJECT, "Rome")?;
    // Per dtype: (statistics seconds, C, (edit seconds, first edit seconds, v*)).
    let mut runs = Vec::new();
    for &(name, m) in models {
        let (stats_s, stats) =
            timed(|| Ok(KeyStatsRun::new(&m.model, &m.tokenizer, &corpus, &options).compute()?))?;
        println!(
            "{name}: key statistics {stats_s:.2} s ({} tokens)",
            stats.meta.tokens
        );
        let c = stats.c()?;
        let edited = if with_edit {
            let templates = context_templates(
                &m.model,
                &m.tokenizer,
                &hp.context_template_length_params,
                0,
            )?;
            let run_edit = || {
                timed(|| {
                    Ok(compute_rome(
                        &m.model,
                        &m.tokenizer,
                        &request,
                        &hp,
                        Some(&c),
                        &templates,
                        Schedule::Fast,
                        &mut gpt_core::progress::ignore,
                    )?)
                })
            };
            let (first_s, _) = run_edit()?;
            let (edit_s, rome) = run_edit()?;
            println!(
                "{name}: ROME edit {edit_s:.2} s (first {first_s:.2} s; {} steps, final loss {:.3})",
                rome.losses.len(),
                rome.losses.last().copied().unwrap_or(f64::NAN)
            );
            Some((edit_s, first_s, rome.v_star))
        } else {
            None
        };
        runs.push((stats_s, c, edited));
    }
    let (f, b) = (&runs[0], &runs[1]);
    println!(
        "key statistics speed-up bf16: {:.2}x, ‖C_bf16 − C_f32‖/‖C_f32‖ = {:.2e}",
        f.0 / b.0,
        relative(&b.1, &f.1)
    );
    if let (Some(f), Some(b)) = (&f.2, &b.2) {
        println!(
            "ROME edit speed-up bf16: {:.2}x (first edit {:.2}x), ‖v*_bf16 − v*_f32‖/‖v*_f32‖ = {:.2e}",
            f.0 / b.0,
            f.1 / b.1,
            relative(&b.2, &f.2)
        );
    }
    Ok(())
}

/// The unedited CounterFact probability tests of the first `cases_n` dev cases.
fn compare_scoring(root: &Path, models: &Models<'_>, cases_n: usize) -> anyhow::Result<()> {
    let data = root.join("../shared/data/counterfact_dev.json");
    if !data.exists() {
        println!("CounterFact scoring skipped: {} is absent", data.display());
        return Ok(());
    }
    let cases = load_cases(&data, false)?.cases;
    let some: Vec<&EditCase> = cases.iter().take(cases_n).collect();
    let mut scored = Vec::new();
    for &(name, m) in models {
        score_cases(
            &m.model,
            &m.tokenizer,
            &some[..some.len().min(5)],
            BatchLimits::default(),
        )?;
        let (s, out) = timed(|| {
            Ok(score_cases(
                &m.model,
                &m.tokenizer,
                &some,
                BatchLimits::default(),
            )?)
        })?;
        println!("{} cases scored {name}: {s:.2} s", some.len());
        scored.push((s, out));
    }
    let (mut comparisons, mut flips, mut max_nll) = (0usize, 0usize, 0.0f64);
    for (a, b) in scored[0].1.iter().zip(&scored[1].1) {
        for (pa, pb) in [
            (&a.nll.rewrite, &b.nll.rewrite),
            (&a.nll.paraphrase, &b.nll.paraphrase),
            (&a.nll.neighborhood, &b.nll.neighborhood),
        ] {
            for (x, y) in pa.iter().zip(pb.iter()) {
                comparisons += 1;
                flips += usize::from((x.new < x.truth) != (y.new < y.truth));
                max_nll = max_nll
                    .max((x.new - y.new).abs())
                    .max((x.truth - y.truth).abs());
            }
        }
    }
    println!(
        "scoring speed-up bf16: {:.2}x; new-vs-true comparisons that flip: {flips} of {comparisons}; max |ΔNLL| {max_nll:.3}",
        scored[0].0 / scored[1].0
    );
    Ok(())
}
