//! The command line on CUDA against the same command on the CPU (tiny fixture models): a
//! causal trace, key statistics and a ROME edit, and an unedited CounterFact evaluation give
//! the same numbers on both devices. Every other test of the suite runs on CUDA too where a
//! GPU is present, since the CLI's default device is `cuda` when available.
//!
//! Needs a CUDA device: `cargo test --features cuda-tests --test cuda` (without the feature
//! the tests are ignored, with that reason).

#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// Runs `factscope ARGS --device DEVICE` and parses its JSON output.
fn run_json(args: &[&str], device: &str, cache: &Path) -> Value {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_factscope"))
        .args(args)
        .args(["--device", device])
        .env("FACTSCOPE_CACHE", cache)
        .output()
        .expect("run factscope");
    assert!(
        out.status.success(),
        "{device}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// Every number in `a` is within `tol` of the one at the same place in `b`; everything else is
/// equal.
fn assert_close(a: &Value, b: &Value, tol: f64, at: &str) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!((x - y).abs() <= tol, "{at}: cpu {x} vs cuda {y}");
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}: lengths");
            for (i, (x, y)) in x.iter().zip(y).enumerate() {
                assert_close(x, y, tol, &format!("{at}[{i}]"));
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                assert_close(v, &y[k], tol, &format!("{at}.{k}"));
            }
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

#[test]
#[cfg_attr(
    not(feature = "cuda-tests"),
    ignore = "needs a CUDA device: cargo test --features cuda-tests"
)]
fn cuda_is_available() {
    assert!(gpt_core::tch::Cuda::is_available(), "no CUDA device");
}

#[test]
#[cfg_attr(
    not(feature = "cuda-tests"),
    ignore = "needs a CUDA device: cargo test --features cuda-tests"
)]
fn trace_on_cuda_matches_the_cpu() {
    let model = fixture("tiny-gpt2");
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "trace",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "The Eiffel Tower is located in the city of",
        "--subject",
        "Eiffel Tower",
        "--kind",
        "all",
        "--samples",
        "4",
        "--noise-std",
        "0.5",
        "--window",
        "2",
        "--seed",
        "3",
        "--json",
    ];
    let cpu = run_json(&args, "cpu", dir.path());
    let cuda = run_json(&args, "cuda", dir.path());
    assert_eq!(cpu.as_array().unwrap().len(), 3);
    assert_close(&cpu, &cuda, 1e-4, "trace");
}

#[test]
#[cfg_attr(
    not(feature = "cuda-tests"),
    ignore = "needs a CUDA device: cargo test --features cuda-tests"
)]
fn stats_and_rome_edit_on_cuda_match_the_cpu() {
    let model = fixture("tiny-gpt2");
    let m = model.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.txt");
    let text: String = (0..30)
        .map(|i| format!("The tower {i} is located in the city of Paris and people visit it.\n\n"))
        .collect();
    std::fs::write(&corpus, text).unwrap();
    let mut stats = Vec::new();
    for device in ["cpu", "cuda"] {
        let path = dir.path().join(format!("stats-{device}.safetensors"));
        let out = Command::new(env!("CARGO_BIN_EXE_factscope"))
            .args(["stats", "--model", m, "--layer", "1", "--corpus"])
            .arg(&corpus)
            .arg("--out")
            .arg(&path)
            .args(["--device", device])
            .env("FACTSCOPE_CACHE", dir.path().join("cache"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stats.push(path);
    }
    // The same statistics file on both devices, so the edits differ only by device.
    let read = |p: &Path| {
        gpt_core::tch::Tensor::read_safetensors(p)
            .unwrap()
            .into_iter()
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let (a, b) = (read(&stats[0]), read(&stats[1]));
    for (name, t) in &a {
        let diff = (t - &b[name]).abs().max().double_value(&[]);
        let scale = t.abs().max().double_value(&[]).max(1.0);
        assert!(diff <= 1e-4 * scale, "stats {name}: max diff {diff}");
    }
    let args = [
        "edit",
        "--model",
        m,
        "--prompt",
        "{} is located in the city of",
        "--subject",
        "The Eiffel Tower",
        "--target",
        "Rome",
        "--preset",
        "gpt2-medium",
        "--layer",
        "1",
        "--stats",
        stats[0].to_str().unwrap(),
        "--json",
    ];
    let cpu = run_json(&args, "cpu", dir.path());
    let cuda = run_json(&args, "cuda", dir.path());
    // Before the edit the devices agree to rounding. The edit itself comes out of 20 Adam
    // steps, whose normalised updates amplify rounding differences (on an H100, 2e-3 on a
    // probability of 0.02), so after it the same tokens must rank first with probabilities
    // within 1e-2.
    assert_close(&cpu["before"], &cuda["before"], 1e-4, "before");
    let after = |v: &Value| -> Vec<(i64, f64)> {
        v["after"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let top = &p["top"][0];
                (
                    top["id"].as_i64().unwrap(),
                    top["probability"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    let (a, b) = (after(&cpu), after(&cuda));
    assert_eq!(a.len(), b.len());
    for ((id_a, p_a), (id_b, p_b)) in a.iter().zip(&b) {
        assert_eq!(id_a, id_b, "top-1 after the edit");
        assert!(
            (p_a - p_b).abs() <= 1e-2,
            "top-1 probability: cpu {p_a} vs cuda {p_b}"
        );
    }
}

#[test]
#[cfg_attr(
    not(feature = "cuda-tests"),
    ignore = "needs a CUDA device: cargo test --features cuda-tests"
)]
fn unedited_evaluation_on_cuda_matches_the_cpu() {
    let model = fixture("tiny-llama");
    let dir = tempfile::tempdir().unwrap();
    let case = |id: u64, subject: &str, new: &str, truth: &str| {
        serde_json::json!({
            "case_id": id,
            "prompt": format!("{subject} is located in the city of"),
            "subject": subject,
            "target_new": new,
            "ground_truth": truth,
            "rephrase_prompt": format!("Where is {subject}? It is in"),
            "locality_prompt": "The Louvre is located in the city of",
            "locality_ground_truth": truth,
        })
    };
    let cases = dir.path().join("cases.json");
    let list = serde_json::json!([
        case(0, "The Eiffel Tower", "Rome", "Paris"),
        case(1, "The Colosseum", "Paris", "Rome"),
        case(2, "Big Ben", "Berlin", "London"),
    ]);
    std::fs::write(&cases, serde_json::to_vec(&list).unwrap()).unwrap();
    let mut summaries = Vec::new();
    for device in ["cpu", "cuda"] {
        let out = dir.path().join(device);
        let args = [
            "evaluate",
            "--model",
            model.to_str().unwrap(),
            "--cases",
            cases.to_str().unwrap(),
            "--method",
            "none",
            "--no-generation",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ];
        summaries.push(run_json(&args, device, dir.path()));
    }
    assert_eq!(summaries[0]["n"], 3);
    for m in ["ES", "PS", "NS", "EM", "PM", "NM"] {
        assert_close(
            &summaries[0]["metrics"][m],
            &summaries[1]["metrics"][m],
            1e-4,
            m,
        );
    }
}
