//! Bad input to `factscope fv` gives a clear error before any work, and writes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::{Path, PathBuf};

use super::*;
use clap::Parser;

#[derive(Parser)]
struct Cmd {
    #[command(flatten)]
    fv: FvArgs,
}

fn tiny_llama() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/tiny-llama").to_string()
}

/// Runs `fv` with `args` (plus the tiny fixture model and `--out`), expects an error and
/// checks that nothing was written; returns the error with its causes.
fn fv_error(out: &Path, args: &[&str]) -> String {
    let model = tiny_llama();
    let out_s = out.to_str().unwrap();
    let argv = ["fv", "--model", &model, "--device", "cpu", "--out", out_s]
        .into_iter()
        .chain(args.iter().copied());
    let cmd = Cmd::try_parse_from(argv).unwrap();
    let e = format!("{:#}", run(cmd.fv).unwrap_err());
    let written: Vec<_> = std::fs::read_dir(out)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(written.is_empty(), "{e}: wrote {written:?}");
    e
}

fn task_file(dir: &Path, name: &str, n: usize) -> PathBuf {
    let pairs: Vec<serde_json::Value> = (0..n)
        .map(|i| serde_json::json!({"input": format!("word{i}"), "output": format!("Word{i}")}))
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec(&pairs).unwrap()).unwrap();
    path
}

#[test]
fn bad_task_files_are_refused_by_file_record_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, "[]").unwrap();
    let e = fv_error(&out, &["--task", empty.to_str().unwrap()]);
    assert!(e.contains("empty.json") && e.contains("no records"), "{e}");

    let missing = dir.path().join("missing.json");
    std::fs::write(
        &missing,
        r#"[{"input": "a", "output": "b"}, {"input": "c"}]"#,
    )
    .unwrap();
    let e = fv_error(&out, &["--task", missing.to_str().unwrap()]);
    assert!(
        e.contains("missing.json") && e.contains("record 1") && e.contains("`output`"),
        "{e}"
    );

    // 10-shot prompts need 11 pairs; 3-shot ones are fine with 8 (then the model runs).
    let few = task_file(dir.path(), "few.json", 8);
    let e = fv_error(&out, &["--task", few.to_str().unwrap()]);
    assert!(
        e.contains("few.json") && e.contains("8 pairs") && e.contains("shots + 1"),
        "{e}"
    );
    let e = fv_error(&out, &["--task", few.to_str().unwrap(), "--shots", "8"]);
    assert!(e.contains("shots + 1"), "{e}");

    let e = fv_error(
        &out,
        &[
            "--task",
            few.to_str().unwrap(),
            "--task",
            few.to_str().unwrap(),
            "--shots",
            "2",
        ],
    );
    assert!(e.contains("given twice"), "{e}");
}

#[test]
fn out_of_range_layers_heads_and_counts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let task = task_file(dir.path(), "caps.json", 40);
    let t = task.to_str().unwrap();
    // The fixture has 2 layers of 4 heads.
    let e = fv_error(&out, &["--task", t, "--shots", "2", "--layer", "2"]);
    assert!(
        e.contains("--layer 2 is out of range") && e.contains("2 layers"),
        "{e}"
    );
    let e = fv_error(&out, &["--task", t, "--shots", "2", "--heads", "9"]);
    assert!(e.contains("--heads 9 exceeds the model's 8 heads"), "{e}");
    for flag in ["--heads", "--trials", "--mean-trials", "--shots"] {
        let e = fv_error(&out, &["--task", t, flag, "0"]);
        assert!(e.contains("must be at least 1"), "{flag}: {e}");
    }
    let e = fv_error(&out, &["--task", t, "--max-eval", "0"]);
    assert!(e.contains("--max-eval"), "{e}");
    let e = fv_error(&out, &["--task", t, "--task", t, "--arithmetic"]);
    assert!(
        e.contains("given twice") || e.contains("one base task"),
        "{e}"
    );
    let other = task_file(dir.path(), "other.json", 40);
    let e = fv_error(
        &out,
        &[
            "--task",
            t,
            "--task",
            other.to_str().unwrap(),
            "--arithmetic",
        ],
    );
    assert!(
        e.contains("--arithmetic composes lists from one base task"),
        "{e}"
    );
    let e = fv_error(&out, &["--task", t, "--arithmetic", "--list-len", "0"]);
    assert!(e.contains("lists of 0 items"), "{e}");
}

#[test]
fn control_vectors_are_written_for_llama_cpp_and_bad_requests_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let task = task_file(dir.path(), "caps.json", 40);
    let t = task.to_str().unwrap();
    let cv = dir.path().join("caps.gguf");
    let cv_s = cv.to_str().unwrap();
    let e = fv_error(
        &out,
        &["--task", t, "--layer", "0", "--save-control-vector", cv_s],
    );
    assert!(e.contains("layer 0"), "{e}");
    let other = task_file(dir.path(), "other.json", 40);
    let o = other.to_str().unwrap();
    let e = fv_error(
        &out,
        &["--task", t, "--task", o, "--save-control-vector", cv_s],
    );
    assert!(e.contains("exactly one --task"), "{e}");
    std::fs::write(&cv, b"mine").unwrap();
    let e = fv_error(
        &out,
        &["--task", t, "--layer", "1", "--save-control-vector", cv_s],
    );
    assert!(
        e.contains("--save-control-vector") && e.contains("exists"),
        "{e}"
    );
    assert_eq!(
        std::fs::read(&cv).unwrap(),
        b"mine",
        "a user's file was replaced"
    );
    std::fs::remove_file(&cv).unwrap();

    let model = tiny_llama();
    let argv = [
        "fv",
        "--model",
        &model,
        "--device",
        "cpu",
        "--task",
        t,
        "--shots",
        "2",
        "--layer",
        "1",
        "--heads",
        "2",
        "--trials",
        "2",
        "--mean-trials",
        "2",
        "--max-eval",
        "2",
        "--no-sweep",
        "--json",
        "--save-control-vector",
        cv_s,
        "--control-vector-scale",
        "2",
    ];
    run(Cmd::try_parse_from(argv).unwrap().fv).unwrap();
    let bytes = std::fs::read(&cv).unwrap();
    let file = gguf::GgufFile::from_bytes(&bytes).unwrap();
    assert_eq!(file.architecture(), Some("controlvector"));
    assert_eq!(
        file.get("controlvector.model_hint")
            .and_then(|v| v.as_str()),
        Some("llama")
    );
    assert_eq!(
        file.get("controlvector.layer_count")
            .and_then(|v| v.as_u64()),
        Some(1)
    );
    let names: Vec<&str> = file.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["direction.1"]);
    let v = gpt_core::steering::SteeringVector::load_control_vector(&cv).unwrap();
    assert_eq!(v.layers(), vec![1]);
    let d = v.direction(1).unwrap();
    assert!(d.isfinite().all().int64_value(&[]) == 1);
    assert!(d.abs().sum(gpt_core::tch::Kind::Float).double_value(&[]) > 0.0);
}
