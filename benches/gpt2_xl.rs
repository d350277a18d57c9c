//! GPT-2 XL-shaped timings (48 layers, d_model 1600, 25 heads, random weights: the paper's
//! model without its checkpoint) on a chosen device: the three-kind causal trace of the Eiffel
//! Tower prompt (10 corrupted samples; fast and naive schedules in one run) and one ROME edit
//! at layer 17 with the GPT-2 XL hyperparameters (key statistics over the README's paragraphs,
//! then v* by the fast and the naive schedule). Prints seconds and ratios.
//!
//! `cargo bench --bench gpt2_xl -- [--device cpu|cuda] [--dtype f32|bf16] [--skip-naive] [--n-layers N]`
//! (default device: CUDA when available). The tokenizer is the tiny GPT-2 fixture's grown to
//! 50,257 tokens, so the prompt has more tokens than GPT-2's own tokenizer would give (11); the
//! token count is printed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

use std::path::Path;
use std::time::Instant;

use causal_trace::noise::{embedding_std, Corruption};
use causal_trace::{GridSpec, Schedule, SubjectPrompt, TraceKind, TraceSetup, Tracer};
use gpt_core::random::gpt2_xl_config;
use gpt_core::tch::{self, Device, Kind, Tensor};
use gpt_core::{RandomInit, Transformer};
use rome::{
    compute_rome, context_templates, Corpus, KeyStatsRun, RewriteRequest, RomeHparams, StatsOptions,
};

/// GPT-2's byte-level alphabet: the character that stands for byte `b` in vocab files.
fn byte_char(b: u8) -> char {
    let printable = (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
    if printable {
        char::from(b)
    } else {
        // The others are numbered from U+0100 in byte order.
        let rank = (0..b)
            .filter(|&c| !((b'!'..=b'~').contains(&c) || (0xA1..=0xAC).contains(&c) || c >= 0xAE))
            .count() as u32;
        char::from_u32(256 + rank).unwrap()
    }
}

/// The tiny GPT-2 fixture's tokenizer grown to GPT-2's 50,257 tokens, so every id of a
/// GPT-2 XL-shaped model decodes: the new tokens are pairs and triples of the characters of
/// bytes 0x80..=0xFF (merged with the lowest priority), which no ASCII text contains, so
/// English prompts tokenize as with the fixture.
fn gpt2_sized_tokenizer(fixture: &Path, dir: &Path) -> anyhow::Result<gpt_core::Tokenizer> {
    let mut vocab: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("vocab.json"))?)?;
    let mut merges = std::fs::read_to_string(fixture.join("merges.txt"))?;
    let high: Vec<String> = (0x80..=0xFFu8).map(|b| byte_char(b).to_string()).collect();
    let mut candidates: Vec<(String, String)> = Vec::new();
    for x in &high {
        for y in &high {
            candidates.push((x.clone(), y.clone()));
        }
    }
    'triples: for x in &high {
        for y in &high {
            for z in &high {
                if candidates.len() >= 2 * 50257 {
                    break 'triples;
                }
                candidates.push((format!("{x}{y}"), z.clone()));
            }
        }
    }
    for (left, right) in candidates {
        if vocab.len() >= 50257 {
            break;
        }
        let token = format!("{left}{right}");
        if !vocab.contains_key(&token) {
            let id = vocab.len();
            vocab.insert(token, id.into());
            merges.push_str(&format!("{left} {right}\n"));
        }
    }
    std::fs::write(dir.join("vocab.json"), serde_json::to_vec(&vocab)?)?;
    std::fs::write(dir.join("merges.txt"), merges)?;
    Ok(gpt_core::Tokenizer::from_vocab_merges(
        &dir.join("vocab.json"),
        &dir.join("merges.txt"),
    )?)
}

fn arg_value(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Waits for the device's queued work, so wall-clock times cover it.
fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// TFLOP/s of a 4096² matrix product of `kind` on `device` (median of 5).
fn matmul_rate(device: Device, kind: Kind) -> f64 {
    let n = 4096;
    let a = Tensor::randn([n, n], (kind, device));
    let b = Tensor::randn([n, n], (kind, device));
    let _ = a.matmul(&b);
    sync(device);
    let mut times: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let _ = a.matmul(&b);
            sync(device);
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    2.0 * (n as f64).powi(3) / times[2] / 1e12
}

fn main() -> anyhow::Result<()> {
    let device = match arg_value("--device").as_deref() {
        None => Device::cuda_if_available(),
        Some("cpu") => Device::Cpu,
        Some("cuda") => Device::Cuda(0),
        Some(other) => anyhow::bail!("--device {other}: expected cpu or cuda"),
    };
    let kind = match arg_value("--dtype").as_deref() {
        None | Some("f32") => Kind::Float,
        Some("bf16") => Kind::BFloat16,
        Some(other) => anyhow::bail!("--dtype {other}: expected f32 or bf16"),
    };
    let skip_naive = std::env::args().any(|a| a == "--skip-naive");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir()?;
    let tok = gpt2_sized_tokenizer(&root.join("fixtures/tiny-gpt2"), tmp.path())?;
    anyhow::ensure!(
        tok.vocab_size() == 50257,
        "tokenizer has {} tokens",
        tok.vocab_size()
    );
    println!(
        "device {device:?}, dtype {kind:?}, CPU threads {}, {:.1} TFLOP/s on a 4096² matrix product",
        tch::get_num_threads(),
        matmul_rate(device, kind)
    );

    let t = Instant::now();
    let mut config = gpt2_xl_config();
    // `--n-layers N` shrinks the depth (a quick check of the bench itself on a CPU).
    if let Some(n) = arg_value("--n-layers") {
        config.n_layers = n.parse()?;
    }
    let model = Transformer::random(&config, RandomInit::default(), device, kind)?;
    sync(device);
    println!(
        "random GPT-2 XL ({} layers, d_model {}): built in {:.1} s",
        config.n_layers,
        config.d_model,
        t.elapsed().as_secs_f64()
    );

    // The three-kind trace.
    let subject = "The Eiffel Tower";
    let prompt = SubjectPrompt::new(&tok, "The Eiffel Tower is located in the city of", subject)?;
    let sigma = embedding_std(&model, &tok, &[subject.to_string()])?;
    let setup = TraceSetup {
        samples: 10,
        corruption: Corruption::paper_default(),
        sigma: Some(sigma),
        seed: 1,
    };
    let schedules: &[Schedule] = if skip_naive {
        &[Schedule::Fast]
    } else {
        &[Schedule::Fast, Schedule::Naive]
    };
    let mut trace_secs = Vec::new();
    for &schedule in schedules {
        let start = Instant::now();
        let tracer = Tracer::new(&model, &tok, prompt.clone(), setup.clone(), None)?;
        for kind in TraceKind::ALL {
            let mut spec = GridSpec::new(kind);
            spec.schedule = schedule;
            spec.window = spec.window.min(config.n_layers);
            let t = Instant::now();
            tracer.grid(&spec)?;
            print!("  {kind:?} {:.2} s", t.elapsed().as_secs_f64());
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "\ntrace, {schedule:?} schedule: {secs:.2} s for hidden+mlp+attn ({} tokens x {} layers, window {}, 10 samples), {:.1} TFLOP/s",
            prompt.len(),
            config.n_layers,
            10.min(config.n_layers),
            tracer.flops() as f64 / secs / 1e12
        );
        trace_secs.push(secs);
    }
    if let [fast, naive] = trace_secs[..] {
        println!("trace speed-up fast vs naive: {:.2}x", naive / fast);
    }

    // One ROME edit.
    let mut hp = RomeHparams::gpt2_xl();
    hp.layer = hp.layer.min(config.n_layers - 1);
    let readme = std::fs::read_to_string(root.join("README.md"))?;
    let documents: Vec<String> = readme
        .split("\n\n")
        .filter(|p| p.trim().len() > 40)
        .map(str::to_string)
        .collect();
    let corpus = Corpus::from_documents("README.md", documents);
    let t = Instant::now();
    let stats = KeyStatsRun::new(&model, &tok, &corpus, &StatsOptions::new(hp.layer)).compute()?;
    let c = stats.c()?;
    sync(device);
    let stats_s = t.elapsed().as_secs_f64();
    println!(
        "key statistics at layer {}: {} tokens in {stats_s:.2} s ({:.0} tokens/s)",
        hp.layer,
        stats.meta.tokens,
        stats.meta.tokens as f64 / stats_s
    );
    let t = Instant::now();
    let templates = context_templates(&model, &tok, &hp.context_template_length_params, 0)?;
    sync(device);
    println!(
        "context templates: {} generated in {:.2} s",
        templates.len(),
        t.elapsed().as_secs_f64()
    );
    let request = RewriteRequest::new("{} is located in the city of", subject, "Rome")?;
    let v_schedules: &[Schedule] = if skip_naive {
        &[Schedule::Fast]
    } else {
        &[Schedule::Fast, Schedule::Naive]
    };
    let mut edit_secs = Vec::new();
    for &schedule in v_schedules {
        let t = Instant::now();
        let edit = compute_rome(
            &model,
            &tok,
            &request,
            &hp,
            Some(&c),
            &templates,
            schedule,
            &mut gpt_core::progress::ignore,
        )?;
        sync(device);
        let secs = t.elapsed().as_secs_f64();
        println!(
            "ROME edit, {schedule:?} v* schedule: {secs:.2} s ({} steps, {} templates)",
            edit.losses.len(),
            templates.len()
        );
        edit_secs.push(secs);
    }
    if let [fast, naive] = edit_secs[..] {
        println!("ROME edit speed-up fast vs naive: {:.2}x", naive / fast);
    }
    Ok(())
}
