//! Tracing **sentiment** instead of a fact (the experiment of a student proposal): append
//! " I am feeling" to short texts, fit a logistic regression on log p(" good") and
//! log p(" bad") over the small labelled set below, and trace that proxy, so the heatmap
//! shows which hidden states carry the text's sentiment.
//!
//! `cargo run --release -p factscope-causal-trace --example sentiment_trace [-- OUT_DIR]`

#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};

use causal_trace::noise::{embedding_std, Corruption};
use causal_trace::{FnMetric, GridSpec, Metric, SubjectPrompt, TraceKind, TraceSetup, Tracer};
use gpt_core::tch::{Kind, Tensor};
use gpt_core::{HookableModel, LoadedModel, TokenBatch};
use viz::Figure;

const SUFFIX: &str = " I am feeling";

/// (text, positive?)
const LABELLED: [(&str, bool); 16] = [
    ("The food was delicious and the staff were lovely.", true),
    ("What a wonderful day at the beach with friends.", true),
    ("I got the job I always wanted!", true),
    ("The concert was amazing from start to finish.", true),
    (
        "My garden is finally blooming and it looks beautiful.",
        true,
    ),
    ("We won the championship last night.", true),
    ("The new puppy makes everyone so happy.", true),
    ("Thank you for the thoughtful and generous gift.", true),
    ("The food was cold and the waiter was rude.", false),
    ("My flight was cancelled and my luggage is lost.", false),
    ("I failed the exam after studying all week.", false),
    ("The movie was boring and far too long.", false),
    ("It rained all day and the roof started leaking.", false),
    ("My phone broke and the repair costs a fortune.", false),
    ("Nobody came to my birthday party.", false),
    ("The service was terrible and the room was dirty.", false),
];

/// (text, word carrying the sentiment) to trace.
const TRACED: [(&str, &str); 2] = [
    ("The concert was amazing from start to finish.", "amazing"),
    ("The movie was boring and far too long.", "boring"),
];

/// `[log p(" good"), log p(" bad")]` at the last position, per row of `logits: [rows, vocab]`.
fn features(logits: &Tensor, good: i64, bad: i64) -> Result<Tensor, gpt_core::tch::TchError> {
    let lp = logits.f_log_softmax(-1, Kind::Float)?;
    Tensor::f_stack(&[lp.f_select(1, good)?, lp.f_select(1, bad)?], 1)
}

fn token(m: &LoadedModel, text: &str) -> anyhow::Result<i64> {
    let ids = m.tokenizer.encode(text)?.ids;
    anyhow::ensure!(ids.len() == 1, "{text:?} is not a single token: {ids:?}");
    Ok(ids[0])
}

/// Logistic regression by full-batch gradient descent on standardised features.
/// Returns (weights [2], bias) in the original feature scale and the training accuracy.
fn fit(x: &[[f64; 2]], y: &[bool]) -> ([f64; 2], f64, f64) {
    let n = x.len() as f64;
    let mean = [0, 1].map(|j| x.iter().map(|r| r[j]).sum::<f64>() / n);
    let std = [0, 1].map(|j| {
        (x.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n)
            .sqrt()
            .max(1e-9)
    });
    let z: Vec<[f64; 2]> = x
        .iter()
        .map(|r| [0, 1].map(|j| (r[j] - mean[j]) / std[j]))
        .collect();
    let (mut w, mut b) = ([0.0f64; 2], 0.0f64);
    for _ in 0..5000 {
        let (mut gw, mut gb) = ([0.0; 2], 0.0);
        for (zi, &yi) in z.iter().zip(y) {
            let p = 1.0 / (1.0 + (-(w[0] * zi[0] + w[1] * zi[1] + b)).exp());
            let err = p - f64::from(u8::from(yi));
            gw[0] += err * zi[0];
            gw[1] += err * zi[1];
            gb += err;
        }
        // Small L2 penalty keeps the separable case finite.
        w = [0, 1].map(|j| w[j] - 0.5 * (gw[j] / n + 0.01 * w[j]));
        b -= 0.5 * gb / n;
    }
    let correct = z
        .iter()
        .zip(y)
        .filter(|(zi, &yi)| ((w[0] * zi[0] + w[1] * zi[1] + b) > 0.0) == yi)
        .count();
    let w_orig = [w[0] / std[0], w[1] / std[1]];
    let b_orig = b - w_orig[0] * mean[0] - w_orig[1] * mean[1];
    (w_orig, b_orig, correct as f64 / n)
}

fn main() -> anyhow::Result<()> {
    let out: PathBuf = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("out/sentiment"), PathBuf::from);
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let m = gpt_core::load_model(&path, Default::default())?;
    let (good, bad) = (token(&m, " good")?, token(&m, " bad")?);

    let _guard = gpt_core::tch::no_grad_guard();
    let mut x = Vec::new();
    let mut y = Vec::new();
    for (text, positive) in LABELLED {
        let ids = m.tokenizer.encode(&format!("{text}{SUFFIX}"))?.ids;
        let logits = m
            .model
            .forward(&TokenBatch::single(&ids, m.model.device())?)?;
        let f = features(&logits.select(1, -1), good, bad)?;
        x.push([f.double_value(&[0, 0]), f.double_value(&[0, 1])]);
        y.push(positive);
    }
    let (w, b, accuracy) = fit(&x, &y);
    println!(
        "logistic regression on [log p(\" good\"), log p(\" bad\")]: w = [{:.3}, {:.3}], b = {:.3}, training accuracy {:.0}% ({} texts)",
        w[0],
        w[1],
        b,
        100.0 * accuracy,
        LABELLED.len()
    );

    let subjects: Vec<String> = TRACED.iter().map(|(_, s)| s.to_string()).collect();
    let sigma = embedding_std(&m.model, &m.tokenizer, &subjects)?;
    std::fs::create_dir_all(&out)?;
    for (i, (text, word)) in TRACED.iter().enumerate() {
        // The proxy: P(positive | text) from the fitted regression, per corrupted row.
        let metric: Box<dyn Metric> =
            Box::new(FnMetric::new("P(positive)", move |logits: &Tensor| {
                let f = features(logits, good, bad)?;
                let score = f
                    .f_select(1, 0)?
                    .f_mul_scalar(w[0])?
                    .f_add(&f.f_select(1, 1)?.f_mul_scalar(w[1])?)?
                    .f_add_scalar(b)?;
                Ok(score.f_sigmoid()?)
            }));
        let prompt = SubjectPrompt::new(&m.tokenizer, &format!("{text}{SUFFIX}"), word)?;
        let setup = TraceSetup {
            samples: 10,
            corruption: Corruption::paper_default(),
            sigma: Some(sigma),
            seed: 1,
        };
        let tracer = Tracer::new(&m.model, &m.tokenizer, prompt, setup, Some(metric))?;
        let grid = tracer.grid(&GridSpec::new(TraceKind::Hidden))?;
        let best = grid
            .scores
            .iter()
            .enumerate()
            .flat_map(|(r, row)| row.iter().enumerate().map(move |(l, &v)| (v, r, l)))
            .max_by(|a, b| {
                (a.0 - grid.corrupted_score)
                    .abs()
                    .total_cmp(&(b.0 - grid.corrupted_score).abs())
            });
        println!(
            "{text:?} (subject {word:?}): P(positive) clean {:.3}, corrupted {:.3}",
            grid.clean_score, grid.corrupted_score
        );
        if let Some((v, r, l)) = best {
            println!(
                "  largest restoration effect: token {:?} at layer {l}: {v:.3}",
                grid.tokens[grid.rows[r]]
            );
        }
        let mut map = grid.to_heatmap("SmolLM2-135M");
        map.title = format!(
            "Restoring states after corrupting {word:?}\nP(positive): clean {:.3}, corrupted {:.3}",
            grid.clean_score, grid.corrupted_score
        );
        map.vmin = None;
        map.save(&out.join(format!("sentiment_{i}.png")))?;
        viz::write_atomic(
            &out.join(format!("sentiment_{i}.json")),
            &serde_json::to_vec_pretty(&grid)?,
        )?;
    }
    println!("wrote {}", out.display());
    Ok(())
}
