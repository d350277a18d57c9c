//! Benchmark of one causal trace on the bundled model: the Eiffel Tower prompt, 10 samples,
//! hidden + MLP + attention grids, fast and naive schedules in one run. Prints seconds, the
//! speed-up, the analytic FLOPs each schedule performed per second of its time, the
//! machine's matrix-product rate for comparison, and peak memory (VmHWM).
//!
//! `cargo bench --bench trace [-- --skip-naive]`

#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::time::Instant;

use causal_trace::noise::{embedding_std, Corruption};
use causal_trace::{GridSpec, Schedule, SubjectPrompt, TraceKind, TraceSetup, Tracer};
use gpt_core::tch::{self, Device, Kind, Tensor};
use gpt_core::HookableModel;

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// GFLOP/s of a 1024² f32 matrix product on this machine (median of 5).
fn matmul_rate() -> f64 {
    let a = Tensor::randn([1024, 1024], (Kind::Float, Device::Cpu));
    let b = Tensor::randn([1024, 1024], (Kind::Float, Device::Cpu));
    let _ = a.matmul(&b);
    let mut times: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let _ = a.matmul(&b);
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    2.0 * 1024f64.powi(3) / times[2] / 1e9
}

fn main() -> anyhow::Result<()> {
    let skip_naive = std::env::args().any(|a| a == "--skip-naive");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let m = gpt_core::load_model(&path, Default::default())?;
    println!(
        "threads: {}, matmul rate: {:.1} GFLOP/s",
        tch::get_num_threads(),
        matmul_rate()
    );
    let subject = "The Eiffel Tower";
    let prompt = SubjectPrompt::new(
        &m.tokenizer,
        "The Eiffel Tower is located in the city of",
        subject,
    )?;
    let sigma = embedding_std(&m.model, &m.tokenizer, &[subject.to_string()])?;
    let setup = TraceSetup {
        samples: 10,
        corruption: Corruption::paper_default(),
        sigma: Some(sigma),
        seed: 1,
    };
    let mut results = Vec::new();
    let schedules: &[Schedule] = if skip_naive {
        &[Schedule::Fast]
    } else {
        &[Schedule::Fast, Schedule::Naive]
    };
    for &schedule in schedules {
        let start = Instant::now();
        let tracer = Tracer::new(&m.model, &m.tokenizer, prompt.clone(), setup.clone(), None)?;
        let mut grids = Vec::new();
        for kind in TraceKind::ALL {
            let mut spec = GridSpec::new(kind);
            spec.schedule = schedule;
            let t = Instant::now();
            grids.push(tracer.grid(&spec)?);
            println!(
                "  {schedule:?} {kind:?}: {:.2} s",
                t.elapsed().as_secs_f64()
            );
        }
        let secs = start.elapsed().as_secs_f64();
        let gflop = tracer.flops() as f64 / 1e9;
        println!(
            "{schedule:?}: {secs:.2} s for hidden+mlp+attn ({} tokens x {} layers), {gflop:.0} GFLOP, {:.1} GFLOP/s, peak RSS so far {:.0} MiB",
            prompt.len(),
            m.model.config().n_layers,
            gflop / secs,
            peak_rss_mib()
        );
        results.push((schedule, secs, grids));
    }
    if let [(_, fast, fg), (_, naive, ng)] = &results[..] {
        let max_diff = fg
            .iter()
            .zip(ng)
            .flat_map(|(a, b)| {
                a.scores
                    .iter()
                    .flatten()
                    .zip(b.scores.iter().flatten())
                    .map(|(x, y)| (x - y).abs())
            })
            .fold(0.0f64, f64::max);
        println!(
            "speed-up fast vs naive: {:.2}x (max |fast - naive| over all cells: {max_diff:.2e})",
            naive / fast
        );
    }
    Ok(())
}
