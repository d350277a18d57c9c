//! End-to-end tests of the `factscope` command line on the tiny fixture models (hermetic):
//! the JSON interfaces named in the issues and the error messages of bad input.

#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn factscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_factscope"))
        .args(args)
        .output()
        .expect("run factscope")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const PROMPT: &str = "The Eiffel Tower is located in the city of";

#[test]
fn predict_json_lists_prompt_ids_and_top_tokens() {
    let model = fixture("tiny-gpt2");
    let out = factscope(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        PROMPT,
        "--top",
        "3",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(v["prompt"], PROMPT);
    assert!(!v["token_ids"].as_array().unwrap().is_empty());
    let top = v["top"].as_array().unwrap();
    assert_eq!(top.len(), 3);
    let probs: Vec<f64> = top
        .iter()
        .map(|c| c["probability"].as_f64().unwrap())
        .collect();
    assert!(probs.windows(2).all(|w| w[0] >= w[1]), "sorted: {probs:?}");
    assert!(probs.iter().all(|p| (0.0..=1.0).contains(p)));
    for c in top {
        assert!(c["id"].as_i64().is_some() && c["text"].as_str().is_some());
    }
}

#[test]
fn generate_is_reproducible_with_a_seed() {
    let model = fixture("tiny-llama");
    let run = |seed: &str| {
        let out = factscope(&[
            "generate",
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            PROMPT,
            "--max-new-tokens",
            "6",
            "--seed",
            seed,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    assert_eq!(run("7"), run("7"));
    assert!(run("7").starts_with(PROMPT));
}

#[test]
fn trace_writes_grids_and_pictures_and_prints_json() {
    let model = fixture("tiny-gpt2");
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("trace");
    let out = factscope(&[
        "trace",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        PROMPT,
        "--subject",
        "Eiffel Tower",
        "--kind",
        "all",
        "--samples",
        "2",
        "--noise-std",
        "0.5",
        "--window",
        "1",
        "--seed",
        "3",
        "--out",
        out_dir.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let grids: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    let grids = grids.as_array().unwrap();
    assert_eq!(grids.len(), 3);
    for (g, kind) in grids.iter().zip(["hidden", "mlp", "attn"]) {
        assert_eq!(g["kind"], kind);
        for field in [
            "scores",
            "clean_score",
            "corrupted_score",
            "answer",
            "tokens",
            "subject_range",
            "window",
            "noise",
            "seed",
        ] {
            assert!(!g[field].is_null(), "{kind}: field {field}");
        }
        assert_eq!(
            g["scores"].as_array().unwrap().len(),
            g["tokens"].as_array().unwrap().len()
        );
        for ext in ["json", "svg", "png"] {
            assert!(
                out_dir.join(format!("trace_{kind}.{ext}")).is_file(),
                "trace_{kind}.{ext}"
            );
        }
    }
}

#[test]
fn bad_input_names_what_is_wrong() {
    let model = fixture("tiny-gpt2");
    let m = model.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["predict", "--model", "/nonexistent/model", "--prompt", "x"],
            "/nonexistent/model",
        ),
        (&["predict", "--model", m, "--prompt", ""], "empty"),
        (
            &[
                "trace",
                "--model",
                m,
                "--prompt",
                PROMPT,
                "--subject",
                "Colosseum",
                "--window",
                "1",
            ],
            "Colosseum",
        ),
        (
            &[
                "trace",
                "--model",
                m,
                "--prompt",
                PROMPT,
                "--subject",
                "Eiffel",
                "--window",
                "9",
            ],
            "window 9",
        ),
        (
            &[
                "trace",
                "--model",
                m,
                "--prompt",
                PROMPT,
                "--subject",
                "Eiffel",
                "--samples",
                "0",
            ],
            "samples",
        ),
    ];
    for (args, needle) in cases {
        let out = factscope(args);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = stderr(&out);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn trace_dataset_reports_bad_records_by_index_and_field() {
    let model = fixture("tiny-gpt2");
    let dir = tempfile::tempdir().unwrap();
    let facts = dir.path().join("facts.json");
    std::fs::write(&facts, r#"[{"known_id": 0, "subject": "Paris", "attribute": "France", "prompt": "Paris is in"}, {"known_id": 1, "attribute": "x", "prompt": "y"}]"#).unwrap();
    let out = factscope(&[
        "trace-dataset",
        "--model",
        model.to_str().unwrap(),
        "--facts",
        facts.to_str().unwrap(),
        "--out",
        dir.path().join("out").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("record 1") && err.contains("subject"), "{err}");
}

#[test]
fn outputs_and_counts_are_checked_before_any_work() {
    let model = fixture("tiny-gpt2");
    let m = model.to_str().unwrap();
    let out = factscope(&["predict", "--model", m, "--prompt", PROMPT, "--top", "0"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--top 0"), "{}", stderr(&out));

    // An --out that is an existing file: refused at once, the file untouched.
    let dir = tempfile::tempdir().unwrap();
    let occupied = dir.path().join("occupied");
    std::fs::write(&occupied, b"user data").unwrap();
    let out = factscope(&[
        "trace",
        "--model",
        m,
        "--prompt",
        PROMPT,
        "--subject",
        "Eiffel Tower",
        "--window",
        "1",
        "--out",
        occupied.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("occupied") && err.contains("not a folder"),
        "{err}"
    );
    assert_eq!(std::fs::read(&occupied).unwrap(), b"user data");

    // The summary prints the noise as a person reads it, not as a Rust value.
    let out = factscope(&[
        "trace",
        "--model",
        m,
        "--prompt",
        PROMPT,
        "--subject",
        "Eiffel Tower",
        "--kind",
        "hidden",
        "--samples",
        "2",
        "--window",
        "1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("Gaussian noise, std"), "{text}");
    assert!(!text.contains("Gaussian {"), "{text}");
}

#[test]
fn stats_and_edit_on_a_tiny_model() {
    let model = fixture("tiny-gpt2");
    let m = model.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_factscope"))
            .args(args)
            .env("FACTSCOPE_CACHE", &cache)
            .output()
            .unwrap()
    };
    // Statistics of layer 1 over a text file, then an edit with them.
    let corpus = dir.path().join("corpus.txt");
    let text: String = (0..30)
        .map(|i| format!("The tower {i} is located in the city of Paris and people visit it.\n\n"))
        .collect();
    std::fs::write(&corpus, text).unwrap();
    let stats = dir.path().join("layer1.safetensors");
    let out = run(&[
        "stats",
        "--model",
        m,
        "--layer",
        "1",
        "--corpus",
        corpus.to_str().unwrap(),
        "--out",
        stats.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stats.is_file());

    let base = [
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
    ];
    let mut args = base.to_vec();
    args.extend(["--layer", "1", "--stats", stats.to_str().unwrap(), "--json"]);
    let out = run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["method"], "rome");
    assert_eq!(v["layers"], serde_json::json!([1]));
    assert_eq!(v["requests"][0]["target"], "Rome");
    for key in ["before", "after"] {
        let top = &v[key][0]["top"];
        assert_eq!(top.as_array().unwrap().len(), 5, "{key}");
        for c in top.as_array().unwrap() {
            assert!(c["id"].is_i64() && c["text"].is_string() && c["probability"].is_f64());
        }
    }
    assert!(v["seconds"].as_f64().unwrap() > 0.0);

    // --save-delta and --save-model write new files; the saved model loads and predicts what
    // the edited model predicted.
    let delta = dir.path().join("edit.safetensors");
    let saved = dir.path().join("edited-model");
    let mut args = base.to_vec();
    args.extend([
        "--layer",
        "1",
        "--stats",
        stats.to_str().unwrap(),
        "--json",
        "--save-delta",
        delta.to_str().unwrap(),
        "--save-model",
        saved.to_str().unwrap(),
    ]);
    let out = run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(delta.is_file() && saved.join("model.safetensors").is_file());
    let after: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let out = run(&[
        "predict",
        "--model",
        saved.to_str().unwrap(),
        "--prompt",
        "The Eiffel Tower is located in the city of",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let p: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(p["top"][0]["id"], after["after"][0]["top"][0]["id"]);
    // Neither is written over.
    let out = run(&args);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));

    // Statistics for another layer are refused; so are bad requests and unfinished methods.
    let mut args = base.to_vec();
    args.extend(["--layer", "0", "--stats", stats.to_str().unwrap()]);
    let out = run(&args);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("layer 1"), "{}", stderr(&out));
    let out = run(&[
        "edit",
        "--model",
        m,
        "--prompt",
        "The Eiffel Tower is in",
        "--subject",
        "The Eiffel Tower",
        "--target",
        "Rome",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("{}"), "{}", stderr(&out));
    let mut args = base.to_vec();
    args.extend(["--layer", "9"]);
    let out = run(&args);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("layer 9"), "{}", stderr(&out));
    let mut args = base.to_vec();
    args.extend(["--method", "ft", "--layer", "1", "--json"]);
    let out = run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let ft: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(ft["method"], "ft");
    assert_eq!(ft["layers"], serde_json::json!([1]));
    // MEMIT with its statistics from one layer's file.
    let out = run(&[
        "edit",
        "--model",
        m,
        "--prompt",
        "{} is located in the city of",
        "--subject",
        "The Eiffel Tower",
        "--target",
        "Rome",
        "--method",
        "memit",
        "--preset",
        "smollm2",
        "--layer",
        "1",
        "--stats",
        stats.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["method"], "memit");
    assert_eq!(v["layers"], serde_json::json!([1]));
    // A non-UTF-8 corpus names the file and the byte offset.
    std::fs::write(&corpus, b"fine\n\ncaf\xe9").unwrap();
    let out = run(&[
        "stats",
        "--model",
        m,
        "--layer",
        "0",
        "--corpus",
        corpus.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("offset 9"), "{}", stderr(&out));
}

#[test]
fn progress_lines_appear_when_stderr_is_not_a_terminal() {
    let model = fixture("tiny-gpt2");
    let m = model.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // `output()` pipes stderr: no terminal, so plain lines instead of a bar.
    let run = |args: &[&str], interval: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_factscope"));
        command
            .args(args)
            .env("FACTSCOPE_CACHE", dir.path().join("cache"));
        match interval {
            Some(secs) => command.env("FACTSCOPE_PROGRESS_INTERVAL", secs),
            None => command.env_remove("FACTSCOPE_PROGRESS_INTERVAL"),
        };
        let out = command.output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stderr(&out)
    };
    let lines = |err: &str| -> Vec<String> {
        err.lines()
            .filter(|l| l.starts_with("progress: "))
            .map(str::to_string)
            .collect()
    };

    // Interval 0: a line per token row, each with stage, done/total, rate and time left.
    let err = run(
        &[
            "trace",
            "--model",
            m,
            "--prompt",
            PROMPT,
            "--subject",
            "Eiffel Tower",
            "--kind",
            "hidden",
            "--samples",
            "2",
            "--window",
            "1",
        ],
        Some("0"),
    );
    let rows = lines(&err);
    let n = rows.len() - 1; // one line before the first row, one after each
    assert!(n >= 5, "{err}");
    assert!(
        rows[0].starts_with(&format!(
            "progress: hidden trace: 0/{n} rows | - rows/s | elapsed "
        )),
        "{err}"
    );
    assert!(
        rows[1..n]
            .iter()
            .all(|l| l.contains(" rows/s | ") && l.contains(" | eta ")),
        "{err}"
    );
    assert!(
        rows[n].starts_with(&format!("progress: hidden trace: {n}/{n} rows | "))
            && rows[n].ends_with(" | done"),
        "{err}"
    );

    // The default interval (10 s): at least the start and the end of the stage, with the
    // operation's own count.
    let corpus = dir.path().join("corpus.txt");
    let text: String = (0..12)
        .map(|i| format!("The tower {i} is located in the city of Paris.\n\n"))
        .collect();
    std::fs::write(&corpus, text).unwrap();
    let out = dir.path().join("layer0.safetensors");
    let err = run(
        &[
            "stats",
            "--model",
            m,
            "--layer",
            "0",
            "--corpus",
            corpus.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        None,
    );
    let stats = lines(&err);
    assert_eq!(stats.len(), 2, "{err}");
    assert!(
        stats[0].starts_with("progress: layer 0: key statistics: 0/12 documents (tokens 0) | "),
        "{err}"
    );
    assert!(
        stats[1].starts_with("progress: layer 0: key statistics: 12/12 documents (tokens ")
            && stats[1].ends_with(" | done"),
        "{err}"
    );
}

/// A copy of the fixture `name` in `dir` whose safetensors tensors are rewritten: `edit`
/// gets each tensor's name and its f32 values.
fn patched_fixture(name: &str, dir: &Path, edit: impl Fn(&str, &mut [f32])) -> PathBuf {
    let src = fixture(name);
    let dst = dir.join(name);
    std::fs::create_dir_all(&dst).unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dst.join(entry.file_name())).unwrap();
    }
    let path = dst.join("model.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    for (tensor, info) in header.as_object().unwrap() {
        if tensor == "__metadata__" {
            continue;
        }
        assert_eq!(info["dtype"], "F32", "{tensor}");
        let start = 8 + n + info["data_offsets"][0].as_u64().unwrap() as usize;
        let end = 8 + n + info["data_offsets"][1].as_u64().unwrap() as usize;
        let mut values: Vec<f32> = bytes[start..end]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        edit(tensor, &mut values);
        for (chunk, v) in bytes[start..end].chunks_exact_mut(4).zip(values) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
    }
    std::fs::write(&path, bytes).unwrap();
    dst
}

#[test]
fn outputs_are_checked_before_the_model_is_loaded() {
    // A model path that does not exist: an error about --out shows --out is checked first.
    let dir = tempfile::tempdir().unwrap();
    let occupied = dir.path().join("occupied");
    std::fs::write(&occupied, b"user data").unwrap();
    let facts = dir.path().join("facts.json");
    std::fs::write(
        &facts,
        r#"[{"known_id": 0, "subject": "Paris", "attribute": "France", "prompt": "Paris is in"}]"#,
    )
    .unwrap();
    let o = occupied.to_str().unwrap();
    let cases: [&[&str]; 3] = [
        &[
            "trace",
            "--model",
            "/nonexistent/model",
            "--prompt",
            PROMPT,
            "--subject",
            "Eiffel Tower",
            "--out",
            o,
        ],
        &[
            "trace-dataset",
            "--model",
            "/nonexistent/model",
            "--facts",
            facts.to_str().unwrap(),
            "--out",
            o,
        ],
        &["demo", "--model", "/nonexistent/model", "--out", o],
    ];
    for args in cases {
        let started = std::time::Instant::now();
        let out = factscope(args);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = stderr(&out);
        assert!(
            err.contains(o) && err.contains("not a folder"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("/nonexistent/model"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(started.elapsed().as_secs() < 30, "{args:?} took too long");
        assert_eq!(std::fs::read(&occupied).unwrap(), b"user data");
    }
}

#[test]
fn trace_warns_about_repeated_subjects_and_ineffective_noise() {
    let model = fixture("tiny-gpt2");
    let m = model.to_str().unwrap();
    let prompt = "Paris is Paris and";
    let trace = |extra: &[&str]| {
        let mut args = vec![
            "trace",
            "--model",
            m,
            "--prompt",
            prompt,
            "--subject",
            "Paris",
            "--kind",
            "hidden",
            "--samples",
            "2",
            "--window",
            "1",
            "--json",
        ];
        args.extend_from_slice(extra);
        factscope(&args)
    };
    let first = trace(&[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let err = stderr(&first);
    assert!(
        err.contains("occurs 2 times") && err.contains("--subject-occurrence"),
        "{err}"
    );
    let second = trace(&["--subject-occurrence", "1"]);
    assert!(second.status.success(), "{}", stderr(&second));
    let range = |out: &Output| {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v[0]["subject_range"].clone()
    };
    assert_ne!(range(&first), range(&second));
    let missing = trace(&["--subject-occurrence", "2"]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("occurrence 2"),
        "{}",
        stderr(&missing)
    );

    // No noise: the corrupted runs score as the clean run, and the user is told.
    let out = trace(&["--noise-std", "0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("not below the clean run") && err.contains("not meaningful"),
        "{err}"
    );
    // Ordinary noise: no such warning.
    assert!(!stderr(&first).contains("not below"), "{}", stderr(&first));
}

#[test]
fn generate_and_predict_report_broken_models_and_hide_the_end_of_text() {
    let dir = tempfile::tempdir().unwrap();
    // A final layer-norm bias of NaN: every logit is NaN.
    let nan = dir.path().join("nan");
    std::fs::create_dir_all(&nan).unwrap();
    let model = patched_fixture("tiny-gpt2", &nan, |name, v| {
        if name == "transformer.ln_f.bias" {
            v.fill(f32::NAN);
        }
    });
    let m = model.to_str().unwrap();
    for args in [
        &["predict", "--model", m, "--prompt", PROMPT, "--json"][..],
        &["generate", "--model", m, "--prompt", PROMPT],
    ] {
        let out = factscope(args);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = stderr(&out);
        assert!(err.contains("NaN") && err.contains("logits"), "{err}");
        assert!(!stdout(&out).contains("null"), "{}", stdout(&out));
    }

    // A model that always predicts <|endoftext|> (id 0; tied embeddings): the continuation
    // is empty, not the end-of-text marker.
    let eos = dir.path().join("eos");
    std::fs::create_dir_all(&eos).unwrap();
    let model = patched_fixture("tiny-gpt2", &eos, |name, v| match name {
        "transformer.ln_f.weight" => v.fill(0.0),
        "transformer.ln_f.bias" => v.fill(1.0),
        "transformer.wte.weight" => v[..32].fill(10.0),
        _ => {}
    });
    let m = model.to_str().unwrap();
    let out = factscope(&["predict", "--model", m, "--prompt", PROMPT, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["top"][0]["text"], "<|endoftext|>");
    for extra in [&[][..], &["--seed", "1", "--top-k", "1"][..]] {
        let mut args = vec!["generate", "--model", m, "--prompt", PROMPT];
        args.extend_from_slice(extra);
        let out = factscope(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out), format!("{PROMPT}\n"));
    }

    // Bad sampling settings are refused before the model is loaded.
    let out = factscope(&[
        "generate",
        "--model",
        "/nonexistent/model",
        "--prompt",
        PROMPT,
        "--seed",
        "1",
        "--top-k",
        "0",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--top-k 0"), "{}", stderr(&out));
}

#[test]
fn f16_on_the_cpu_is_warned_about() {
    let model = fixture("tiny-gpt2");
    let out = factscope(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        PROMPT,
        "--device",
        "cpu",
        "--dtype",
        "f16",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("f16") && err.contains("bf16"), "{err}");
    let out = factscope(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        PROMPT,
        "--device",
        "cpu",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("f16"), "{}", stderr(&out));
}

#[test]
fn trace_dataset_names_the_cases_it_traces_again() {
    let model = fixture("tiny-gpt2");
    let dir = tempfile::tempdir().unwrap();
    let facts = dir.path().join("facts.json");
    std::fs::write(
        &facts,
        r#"[{"known_id": 0, "subject": "Paris", "attribute": "France", "prompt": "Paris is in"}]"#,
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let run = || {
        factscope(&[
            "trace-dataset",
            "--model",
            model.to_str().unwrap(),
            "--facts",
            facts.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
            "--samples",
            "2",
            "--window",
            "1",
        ])
    };
    let out = run();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("Gaussian noise, std"), "{text}");
    assert!(!text.contains("traced again"), "{text}");
    let case = out_dir.join("cases").join("known_0.json");
    assert!(case.is_file());
    std::fs::write(&case, b"not json").unwrap();
    let out = run();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("traced again 1 case") && text.contains("case 0:"),
        "{text}"
    );
}

fn counterfact_cases(dir: &Path) -> PathBuf {
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
    let cases = serde_json::json!([
        case(0, "The Eiffel Tower", "Rome", "Paris"),
        case(1, "The Colosseum", "Paris", "Rome"),
        {"case_id": 2, "prompt": "no subject", "subject": "X", "target_new": "Y",
         "ground_truth": "Z", "rephrase_prompt": "r", "locality_prompt": "l",
         "locality_ground_truth": "Z"},
    ]);
    let path = dir.join("cases.json");
    std::fs::write(&path, serde_json::to_vec(&cases).unwrap()).unwrap();
    path
}

#[test]
fn evaluate_writes_a_summary_resumes_and_compares() {
    let model = fixture("tiny-llama");
    let dir = tempfile::tempdir().unwrap();
    let cases = counterfact_cases(dir.path());
    let run = |method: &str, out: &Path, extra: &[&str]| {
        let mut args = vec![
            "evaluate",
            "--model",
            model.to_str().unwrap(),
            "--cases",
            cases.to_str().unwrap(),
            "--method",
            method,
            "--out",
            out.to_str().unwrap(),
            "--layer",
            "0",
            "--json",
        ];
        args.extend_from_slice(extra);
        factscope(&args)
    };
    // A malformed record stops the run, naming it; --skip-bad skips it with a count.
    let none = dir.path().join("none");
    let out = run("none", &none, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("record 2") && stderr(&out).contains("prompt"),
        "{}",
        stderr(&out)
    );
    let out = run("none", &none, &["--skip-bad"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("skipped 1 malformed record"),
        "{}",
        stderr(&out)
    );
    let summary: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(summary["n"], 2);
    assert_eq!(summary["method"], "none");
    for m in ["ES", "PS", "NS", "S", "EM", "PM", "NM", "GE"] {
        let i = &summary["metrics"][m];
        let (mean, lo, hi) = (
            i["mean"].as_f64().unwrap(),
            i["lo"].as_f64().unwrap(),
            i["hi"].as_f64().unwrap(),
        );
        assert!(lo <= mean + 1e-12 && mean <= hi + 1e-12, "{m}: {i}");
    }
    for f in [
        "summary.json",
        "summary.md",
        "summary.svg",
        "summary.png",
        "report.html",
    ] {
        assert!(none.join(f).is_file(), "{f}");
    }
    // The same folder again: refused without --resume; with it, nothing is redone.
    let out = run("none", &none, &["--skip-bad"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--resume"), "{}", stderr(&out));
    let out = run("ft", &none, &["--skip-bad", "--resume"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("another run"), "{}", stderr(&out));
    let out = run("none", &none, &["--skip-bad", "--resume"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // An edit method, sharded into one folder.
    let ft = dir.path().join("ft");
    for shard in ["0/2", "1/2"] {
        let out = run(
            "ft",
            &ft,
            &["--skip-bad", "--no-generation", "--shard", shard],
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ft.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["n"], 2);
    assert!(summary["edit_seconds_per_case"].as_f64().is_some());
    assert!(summary["pre"]["ES"]["mean"].as_f64().is_some());

    let cmp = dir.path().join("cmp");
    let out = factscope(&[
        "compare",
        none.to_str().unwrap(),
        ft.to_str().unwrap(),
        "--out",
        cmp.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Rows are named by method and folder, so two runs of one method stay apart.
    let table = stdout(&out);
    assert!(
        table.contains(&format!("| ft ({}) |", ft.display()))
            && table.contains(&format!("| none ({}) |", none.display())),
        "{table}"
    );
    for f in ["compare.md", "compare.svg", "compare.png", "compare.html"] {
        assert!(cmp.join(f).is_file(), "{f}");
    }
    let out = factscope(&["compare", dir.path().to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no run here"), "{}", stderr(&out));
}

#[test]
fn evaluate_runs_zsre_records_with_every_method() {
    let model = fixture("tiny-gpt2");
    let m = model.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let record = |subject: &str, alt: &str, truth: &str| {
        serde_json::json!({
            "subject": subject,
            "src": format!("What city is {subject} in?"),
            "pred": truth,
            "rephrase": format!("Where is {subject}?"),
            "alt": alt,
            "answers": [truth],
            "loc": "nq question: who wrote the play",
            "loc_ans": "William Shakespeare",
            "cond": "",
        })
    };
    let cases = dir.path().join("zsre.json");
    let list = serde_json::json!([
        record("The Eiffel Tower", "Rome", "Paris"),
        record("Big Ben", "London", "London"),
        record("The Colosseum", "Paris", "Rome"),
    ]);
    std::fs::write(&cases, serde_json::to_vec(&list).unwrap()).unwrap();
    let corpus = dir.path().join("corpus.txt");
    let text: String = (0..30)
        .map(|i| format!("The tower {i} is located in the city of Paris and people visit it.\n\n"))
        .collect();
    std::fs::write(&corpus, text).unwrap();
    let stats = dir.path().join("layer1.safetensors");
    let out = factscope(&[
        "stats",
        "--model",
        m,
        "--layer",
        "1",
        "--corpus",
        corpus.to_str().unwrap(),
        "--out",
        stats.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run = |method: &str, extra: &[&str]| {
        let out_dir = dir.path().join(method);
        let mut args = vec![
            "evaluate",
            "--model",
            m,
            "--cases",
            cases.to_str().unwrap(),
            "--method",
            method,
            "--out",
            out_dir.to_str().unwrap(),
            "--layer",
            "1",
            "--preset",
            "gpt2-medium",
            "--stats",
            stats.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        (factscope(&args), out_dir)
    };
    // A record whose new answer is its true answer is a bad record, named.
    let (out, _) = run("none", &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("record 1") && err.contains("`alt`") && err.contains("change nothing"),
        "{err}"
    );
    for method in ["none", "rome", "r-rome", "memit", "ft"] {
        let (out, dir) = run(method, &["--skip-bad"]);
        assert!(out.status.success(), "{method}: {}", stderr(&out));
        let summary: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(summary["n"], 2, "{method}");
        for table in ["metrics", "pre"] {
            for metric in ["efficacy", "paraphrase", "specificity"] {
                let i = &summary[table][metric];
                let (mean, lo, hi) = (
                    i["mean"].as_f64().unwrap(),
                    i["lo"].as_f64().unwrap(),
                    i["hi"].as_f64().unwrap(),
                );
                assert!(
                    lo <= mean + 1e-12 && mean <= hi + 1e-12,
                    "{method} {table}.{metric}: {i}"
                );
            }
        }
        assert_eq!(summary["edit_seconds_per_case"].is_null(), method == "none");
        let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
        assert!(
            md.contains("| Efficacy | Paraphrase | Specificity |"),
            "{md}"
        );
        let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
        assert!(
            html.contains("<title>zsRE: ") && html.contains(">Specificity</th>"),
            "{method}"
        );
        // How the run was made: the command as typed, the data file, the hyperparameters.
        for detail in [
            ">command</th><td>",
            "evaluate --model",
            "zsre.json (",
            ">hyperparameters</th>",
            "Wilson",
        ] {
            assert!(
                html.contains(detail) || method == "none" && detail.contains("hyperparameters"),
                "{method}: {detail}"
            );
        }
    }
}

#[test]
fn auto_preset_needs_a_layer_for_a_model_no_preset_was_made_for() {
    let model = fixture("tiny-gpt2");
    let out = factscope(&[
        "edit",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "{} is located in the city of",
        "--subject",
        "The Eiffel Tower",
        "--target",
        "Rome",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("no hyperparameter preset") && err.contains("--layer") && err.contains("gpt2"),
        "{err}"
    );
    let out = factscope(&[
        "edit",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "{} is located in the city of",
        "--subject",
        "The Eiffel Tower",
        "--target",
        "Rome",
        "--method",
        "memit",
        "--preset",
        "neox-20b",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no MEMIT hyperparameters"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn fv_vector_arithmetic_reports_the_composed_vector() {
    let model = fixture("tiny-llama");
    let dir = tempfile::tempdir().unwrap();
    let words = [
        "tower", "city", "river", "capital", "house", "cat", "time", "small", "language",
        "country", "people", "day", "pictures", "near", "mother", "sport", "official", "statue",
        "liberty", "mount", "apple", "located", "there", "once", "upon", "lived", "france",
        "italy", "japan", "germany",
    ];
    let pairs: Vec<serde_json::Value> = words
        .iter()
        .map(|w| serde_json::json!({"input": w, "output": w.to_uppercase()}))
        .collect();
    let task = dir.path().join("capitalize.json");
    std::fs::write(&task, serde_json::to_vec(&pairs).unwrap()).unwrap();
    let out_dir = dir.path().join("fv");
    let out = factscope(&[
        "fv",
        "--model",
        model.to_str().unwrap(),
        "--task",
        task.to_str().unwrap(),
        "--arithmetic",
        "--list-len",
        "2",
        "--shots",
        "1",
        "--trials",
        "2",
        "--mean-trials",
        "2",
        "--heads",
        "2",
        "--layer",
        "1",
        "--max-eval",
        "3",
        "--no-sweep",
        "--out",
        out_dir.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let names: Vec<&str> = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "first-capitalize",
            "last-copy",
            "first-copy",
            "last-capitalize"
        ]
    );
    let a = &report["arithmetic"];
    assert_eq!(a["target"], "last-capitalize");
    assert_eq!(
        a["composed_from"],
        serde_json::json!(["first-capitalize", "last-copy", "first-copy"])
    );
    let acc = &a["accuracy"]["all"]["zero_shot_fv"];
    assert_eq!(acc["n"], 3);
    let rate = acc["rate"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&rate));
    let md = std::fs::read_to_string(out_dir.join("accuracy.md")).unwrap();
    assert!(md.contains("v_AD + v_BC − v_AC"), "{md}");
    // Two base tasks cannot be composed.
    let out = factscope(&[
        "fv",
        "--model",
        model.to_str().unwrap(),
        "--task",
        task.to_str().unwrap(),
        "--task",
        task.to_str().unwrap(),
        "--arithmetic",
    ]);
    assert!(!out.status.success());
}

/// An OS error is printed once, not once by the library's message and again as its source.
#[test]
fn os_errors_are_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let missing = missing.to_str().unwrap();
    for args in [
        vec![
            "fv",
            "--task",
            missing,
            "--out",
            dir.path().join("o").to_str().unwrap(),
        ],
        vec!["predict", "--model", missing, "--prompt", "x"],
        vec![
            "trace-dataset",
            "--facts",
            missing,
            "--out",
            dir.path().join("t").to_str().unwrap(),
        ],
    ] {
        let out = factscope(&args);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert_eq!(err.matches("os error 2").count(), 1, "{args:?}: {err}");
        assert!(err.contains("missing.json"), "{args:?}: {err}");
    }
}

/// Flags that cannot apply are refused, and negative numbers get a message about the value.
#[test]
fn conflicting_flags_and_negative_numbers_are_named() {
    let model = fixture("tiny-gpt2");
    let model = model.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let requests = dir.path().join("r.json");
    std::fs::write(
        &requests,
        r#"[{"prompt": "{} is in", "subject": "Paris", "target": "Rome"}]"#,
    )
    .unwrap();
    let out = factscope(&[
        "edit",
        "--model",
        model,
        "--requests",
        requests.to_str().unwrap(),
        "--prompt",
        "{} is in",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("--requests") && err.contains("--prompt"),
        "{err}"
    );
    for (args, flag) in [
        (vec!["stats", "--model", model, "--layer", "-1"], "--layer"),
        (
            vec![
                "evaluate", "--model", model, "--cases", "x.json", "--out", "o", "--shard", "-1/2",
            ],
            "--shard",
        ),
    ] {
        let out = factscope(&args);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(
            err.contains("-1") && err.contains(flag) && !err.contains("unexpected argument"),
            "{err}"
        );
    }
}

/// The output-folder rule for `evaluate`: an empty selection fails before anything is
/// written; a user's file is never replaced (nor a folder holding one used without
/// --force); resuming after the cases file changed is refused.
#[test]
fn evaluate_checks_its_selection_folder_and_cases_before_work() {
    let model = fixture("tiny-llama");
    let dir = tempfile::tempdir().unwrap();
    let cases = counterfact_cases(dir.path());
    let run = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "evaluate",
            "--model",
            model.to_str().unwrap(),
            "--cases",
            cases.to_str().unwrap(),
            "--method",
            "none",
            "--skip-bad",
            "--no-generation",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        factscope(&args)
    };
    // Empty selections: nothing is written, so the next run is not blocked.
    let empty = dir.path().join("empty");
    for extra in [&["--limit", "0"][..], &["--shard", "5/9"][..]] {
        let out = run(&empty, extra);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("no cases selected"),
            "{}",
            stderr(&out)
        );
        assert!(!empty.exists(), "{extra:?} left a folder");
    }
    // A user's file with an output's name: refused, with or without --force, and kept.
    let mine = dir.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("summary.json"), b"my notes").unwrap();
    for extra in [&[][..], &["--force"][..]] {
        let out = run(&mine, extra);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("did not write"), "{}", stderr(&out));
    }
    assert_eq!(
        std::fs::read(mine.join("summary.json")).unwrap(),
        b"my notes"
    );
    // Another user's file beside the outputs: refused, then accepted with --force and kept.
    let beside = dir.path().join("beside");
    std::fs::create_dir(&beside).unwrap();
    std::fs::write(beside.join("notes.txt"), b"mine").unwrap();
    assert!(!run(&beside, &["--limit", "1"]).status.success());
    let out = run(&beside, &["--limit", "1", "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(beside.join("notes.txt")).unwrap(), b"mine");
    assert!(beside.join("summary.json").is_file() && beside.join("report.html").is_file());
    // The cases file changed: --resume is refused instead of mixing two sets of cases.
    let text = std::fs::read_to_string(&cases)
        .unwrap()
        .replace("Rome", "Berlin");
    std::fs::write(&cases, text).unwrap();
    let out = run(&beside, &["--limit", "2", "--resume"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cases_fingerprint"),
        "{}",
        stderr(&out)
    );

    // Known facts with `--method none` (documented in --help): the summary and the report
    // draw what the run measured instead of failing on metrics it has not.
    let known = dir.path().join("known.json");
    std::fs::write(
        &known,
        r#"[{"known_id": 3, "subject": "Paris", "attribute": "France",
             "template": "{} is located in", "prompt": "Paris is located in", "relation_id": "P17"}]"#,
    )
    .unwrap();
    let known_out = dir.path().join("known");
    let out = factscope(&[
        "evaluate",
        "--model",
        model.to_str().unwrap(),
        "--cases",
        known.to_str().unwrap(),
        "--method",
        "none",
        "--no-generation",
        "--out",
        known_out.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(known_out.join("report.html").is_file());
}

#[test]
fn alphaedit_and_emmet_edit_and_evaluate_on_a_tiny_model() {
    let model = fixture("tiny-llama");
    let m = model.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_factscope"))
            .args(args)
            .env("FACTSCOPE_CACHE", &cache)
            .output()
            .unwrap()
    };
    let corpus = dir.path().join("corpus.txt");
    let text: String = (0..30)
        .map(|i| format!("The tower {i} is located in the city of Paris and people visit it.\n\n"))
        .collect();
    std::fs::write(&corpus, text).unwrap();
    let stats = dir.path().join("layer0.safetensors");
    let out = run(&[
        "stats",
        "--model",
        m,
        "--layer",
        "0",
        "--corpus",
        corpus.to_str().unwrap(),
        "--out",
        stats.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let requests = dir.path().join("requests.json");
    std::fs::write(
        &requests,
        serde_json::to_vec(&serde_json::json!([
            {"prompt": "{} is located in the city of", "subject": "The Eiffel Tower", "target": "Rome"},
            {"prompt": "The capital of {} is", "subject": "France", "target": "Berlin"},
        ]))
        .unwrap(),
    )
    .unwrap();
    for method in ["alphaedit", "emmet"] {
        let out = run(&[
            "edit",
            "--model",
            m,
            "--requests",
            requests.to_str().unwrap(),
            "--method",
            method,
            "--preset",
            "smollm2",
            "--layer",
            "0",
            "--stats",
            stats.to_str().unwrap(),
            "--json",
        ]);
        assert!(out.status.success(), "{method}: {}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["method"], method);
        assert_eq!(v["layers"], serde_json::json!([0]));
        assert_eq!(v["after"].as_array().unwrap().len(), 2);
        assert_eq!(v["delta_norms"].as_array().unwrap().len(), 1);
        if method == "alphaedit" {
            // --key-history: written after the edit, read and grown by the next.
            let history = dir.path().join("history");
            for round in 1..=2u64 {
                let out = run(&[
                    "edit",
                    "--model",
                    m,
                    "--requests",
                    requests.to_str().unwrap(),
                    "--method",
                    method,
                    "--preset",
                    "smollm2",
                    "--layer",
                    "0",
                    "--stats",
                    stats.to_str().unwrap(),
                    "--key-history",
                    history.to_str().unwrap(),
                    "--json",
                ]);
                assert!(out.status.success(), "{}", stderr(&out));
                let h = rome::KeyHistory::load(&rome::AlphaEditEditor::history_path(&history, 0))
                    .unwrap();
                assert_eq!(h.count(), 2 * round, "two keys per edit");
            }
            // Only AlphaEdit keeps one.
            let out = run(&[
                "edit",
                "--model",
                m,
                "--requests",
                requests.to_str().unwrap(),
                "--method",
                "emmet",
                "--layer",
                "0",
                "--key-history",
                history.to_str().unwrap(),
            ]);
            assert!(!out.status.success());
            assert!(
                stderr(&out).contains("--method alphaedit"),
                "{}",
                stderr(&out)
            );
            // The directions the layer's null-space projector keeps, out of d_mlp.
            let kept = v["kept"].as_array().unwrap();
            assert_eq!(kept.len(), 1);
            assert!(kept[0].as_u64().unwrap() <= 1024, "{v}");
        } else {
            assert!(v.get("kept").is_none(), "{v}");
        }
        // A preset without the method's values is refused by name.
        let out = run(&[
            "edit",
            "--model",
            m,
            "--requests",
            requests.to_str().unwrap(),
            "--method",
            method,
            "--preset",
            "neox-20b",
        ]);
        assert!(!out.status.success());
        let name = if method == "alphaedit" {
            "AlphaEdit"
        } else {
            "EMMET"
        };
        assert!(
            stderr(&out).contains(&format!("no {name} hyperparameters")),
            "{}",
            stderr(&out)
        );
        // evaluate, the cases of a batch written jointly.
        let cases = counterfact_cases(dir.path());
        let run_dir = dir.path().join(format!("eval-{method}"));
        let out = run(&[
            "evaluate",
            "--model",
            m,
            "--cases",
            cases.to_str().unwrap(),
            "--method",
            method,
            "--preset",
            "smollm2",
            "--layer",
            "0",
            "--stats",
            stats.to_str().unwrap(),
            "--batch",
            "2",
            "--skip-bad",
            "--no-generation",
            "--out",
            run_dir.to_str().unwrap(),
            "--json",
        ]);
        assert!(out.status.success(), "{method}: {}", stderr(&out));
        let summary: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(summary["method"], method);
        assert_eq!(summary["n"], 2);
    }
}

#[test]
fn evaluate_sequential_keeps_edits_reports_a_curve_and_retention() {
    let model = fixture("tiny-llama");
    let dir = tempfile::tempdir().unwrap();
    let cases = counterfact_cases(dir.path());
    let text = dir.path().join("held-out.txt");
    std::fs::write(
        &text,
        "The river runs through the old town.\n\nA second document about the sea and the hills.",
    )
    .unwrap();
    let known = dir.path().join("known.json");
    std::fs::write(
        &known,
        r#"[{"known_id": 0, "subject": "Paris", "attribute": "France", "template": "{} is in"},
            {"known_id": 1, "subject": "Berlin", "attribute": "Germany", "template": "{} is in"}]"#,
    )
    .unwrap();
    let run = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "evaluate",
            "--model",
            model.to_str().unwrap(),
            "--cases",
            cases.to_str().unwrap(),
            "--skip-bad",
            "--method",
            "ft",
            "--layer",
            "0",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        factscope(&args)
    };
    let seq = dir.path().join("seq");
    let out = run(
        &seq,
        &[
            "--sequential",
            "--batch",
            "1",
            "--checkpoint-every",
            "1",
            "--retention-text",
            text.to_str().unwrap(),
            "--known-facts",
            known.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(summary["sequential"]["edits"], 2);
    assert_eq!(summary["sequential"]["batch"], 1);
    let edits: Vec<u64> = summary["curve"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["edits"].as_u64().unwrap())
        .collect();
    assert_eq!(edits, [0, 1, 2]);
    for p in summary["curve"].as_array().unwrap() {
        assert!(p["ES"].is_number() && p["perplexity"].is_number(), "{p}");
    }
    for what in ["perplexity", "known_facts"] {
        for when in ["before", "after"] {
            assert!(
                summary["retention"][what][when].is_number(),
                "{what}.{when}"
            );
        }
    }
    assert!(summary["metrics"]["ES_gen"]["mean"].is_number());
    let report = std::fs::read_to_string(seq.join("report.html")).unwrap();
    assert!(report.contains("sequential edits") && report.contains("perplexity"));
    let md = std::fs::read_to_string(seq.join("summary.md")).unwrap();
    assert!(md.contains("## Sequential editing"), "{md}");
    assert!(seq.join("sequential/state.json").is_file());
    // Run again: nothing to do, the same summary.
    let again = run(
        &seq,
        &[
            "--sequential",
            "--batch",
            "1",
            "--checkpoint-every",
            "1",
            "--retention-text",
            text.to_str().unwrap(),
            "--known-facts",
            known.to_str().unwrap(),
            "--resume",
        ],
    );
    assert!(again.status.success(), "{}", stderr(&again));
    let second: serde_json::Value = serde_json::from_str(&stdout(&again)).unwrap();
    assert_eq!(second["curve"], summary["curve"]);

    // Bad combinations are named before any work.
    let bad = dir.path().join("bad");
    for (extra, says) in [
        (&["--sequential", "--shard", "0/2"][..], "--shard"),
        (&["--checkpoint-every", "2"][..], "--sequential"),
        (
            &["--sequential", "--checkpoint-every", "0"][..],
            "at least 1",
        ),
    ] {
        let out = run(&bad, extra);
        assert!(!out.status.success(), "{extra:?}");
        assert!(stderr(&out).contains(says), "{extra:?}: {}", stderr(&out));
    }
    let mut none = vec!["--sequential"];
    none.push("--method");
    none.push("none");
    let out = run(&bad, &none);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--method"), "{}", stderr(&out));
    assert!(
        !bad.join("run.json").exists(),
        "a refused run wrote into --out"
    );
}

#[test]
fn edit_save_gguf_writes_a_folder_s_model_and_refuses_existing_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.gguf");
    let base = [
        "edit",
        "--prompt",
        "{} is located in the city of",
        "--subject",
        "The Eiffel Tower",
        "--target",
        "Rome",
        "--layer",
        "0",
        "--method",
        "ft",
    ];
    let hf = fixture("tiny-llama");
    let with = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend([
            "--model",
            hf.to_str().unwrap(),
            "--save-gguf",
            out.to_str().unwrap(),
        ]);
        args.extend_from_slice(extra);
        factscope(&args)
    };
    // From a folder, --gguf-edited-type has no meaning.
    let o = with(&["--gguf-edited-type", "f32"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--gguf-type"), "{}", stderr(&o));
    assert!(!out.exists());
    let o = with(&["--gguf-type", "q8_0", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let g = &v["gguf"];
    assert!(g["exported"]["types"]["Q8_0"].as_u64().unwrap() > 0, "{g}");
    assert_eq!(g["exported"]["pre_tokenizer"], "gpt-2");
    // The written file's predictions are the edited model's (within Q8_0's rounding).
    let after = v["after"][0]["top"][0]["id"].clone();
    assert_eq!(g["predictions"][0]["top"][0]["id"], after, "{v}");
    let file = gguf::GgufFile::from_bytes(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(file.architecture(), Some("llama"));
    let tiny = gpt_core::load_model(&out, gpt_core::LoadOptions::default()).unwrap();
    assert_eq!(gpt_core::HookableModel::config(&tiny.model).n_layers, 2);
    std::fs::remove_file(&out).unwrap();
    // A tokenizer whose llama.cpp pre-tokenizer is not known is refused before the edit,
    // naming the flag that gives it.
    let odd = dir.path().join("odd-tokenizer");
    std::fs::create_dir(&odd).unwrap();
    for f in std::fs::read_dir(&hf).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, odd.join(f.file_name().unwrap())).unwrap();
    }
    let mut tok: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(odd.join("tokenizer.json")).unwrap())
            .unwrap();
    tok["pre_tokenizer"] = serde_json::json!({"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "\\p{N}{1,2}"}, "behavior": "Isolated", "invert": false},
        {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}]});
    std::fs::write(odd.join("tokenizer.json"), tok.to_string()).unwrap();
    let mut args = base.to_vec();
    args.extend([
        "--model",
        odd.to_str().unwrap(),
        "--save-gguf",
        out.to_str().unwrap(),
    ]);
    let o = factscope(&args);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--gguf-pre"), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("fine-tuning"),
        "the edit ran: {}",
        stderr(&o)
    );
    assert!(!out.exists());
    std::fs::write(&out, b"user data").unwrap();
    let bundled =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let mut args = base.to_vec();
    args.extend([
        "--model",
        bundled.to_str().unwrap(),
        "--save-gguf",
        out.to_str().unwrap(),
    ]);
    let o = factscope(&args);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--save-gguf") && stderr(&o).contains("exists"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"user data");
    // A .gguf model keeps its types: --gguf-type is refused before any work.
    args.extend(["--gguf-type", "q8_0"]);
    let o = factscope(&args);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--gguf-edited-type"), "{}", stderr(&o));
}

#[test]
fn predict_applies_a_llama_cpp_control_vector() {
    let model = fixture("tiny-llama");
    let m = model.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let loaded = gpt_core::load_model(&model, gpt_core::LoadOptions::default()).unwrap();
    let d = gpt_core::HookableModel::config(&loaded.model).d_model;
    let cv = dir.path().join("cv.gguf");
    let direction = gpt_core::tch::Tensor::ones(
        [d as i64],
        (gpt_core::tch::Kind::Float, gpt_core::tch::Device::Cpu),
    ) * 4.0;
    gpt_core::steering::SteeringVector::new(d, gpt_core::steering::SteerPositions::All)
        .with_direction(1, &direction)
        .unwrap()
        .save_control_vector(&cv, "llama")
        .unwrap();
    let top = |extra: &[&str]| {
        let mut args = vec!["predict", "--model", m, "--prompt", PROMPT, "--json"];
        args.extend_from_slice(extra);
        let out = factscope(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["top"].clone()
    };
    let plain = top(&[]);
    let steered = top(&["--control-vector", cv.to_str().unwrap()]);
    assert_ne!(plain, steered, "the control vector changed nothing");
    let zero = top(&[
        "--control-vector",
        cv.to_str().unwrap(),
        "--control-vector-scale",
        "0",
    ]);
    assert_eq!(plain, zero);
    // A vector for another width is refused by name.
    let wide = dir.path().join("wide.gguf");
    gpt_core::steering::SteeringVector::new(d + 1, gpt_core::steering::SteerPositions::All)
        .with_direction(
            1,
            &gpt_core::tch::Tensor::ones(
                [d as i64 + 1],
                (gpt_core::tch::Kind::Float, gpt_core::tch::Device::Cpu),
            ),
        )
        .unwrap()
        .save_control_vector(&wide, "llama")
        .unwrap();
    let out = factscope(&[
        "predict",
        "--model",
        m,
        "--prompt",
        PROMPT,
        "--control-vector",
        wide.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the model's width"),
        "{}",
        stderr(&out)
    );
}
