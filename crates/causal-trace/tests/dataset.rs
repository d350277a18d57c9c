//! Dataset runs: loading known-facts files, token categories and averages (ROME §1.5), and
//! an end-to-end, resumable run on a tiny random model.

#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use causal_trace::dataset::{
    case_path, category_rows, check_known, expected_token, load_known_facts, mean_ci, run_dataset,
    summarize, DatasetRun, KnownFact, TokenCategory, TraceRecord, DATASET_STAGE,
};
use causal_trace::noise::{Corruption, NoiseLevel};
use causal_trace::{Error, Schedule, TokenText, TraceGrid, TraceKind};
use gpt_core::progress::{self, Progress};
use gpt_core::random::tiny_config;
use gpt_core::tch::{Device, Kind};
use gpt_core::{load_hf_tokenizer, Architecture, RandomInit, Tokenizer, Transformer};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

fn record(id: u64, subject: &str, prompt: &str) -> serde_json::Value {
    serde_json::json!({
        "known_id": id, "subject": subject, "attribute": "Paris",
        "template": "{} is in", "prediction": " Paris", "prompt": prompt, "relation_id": "P1"
    })
}

// ---------------------------------------------------------------- loading

#[test]
fn load_reads_valid_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut recs: Vec<_> = (0..3)
        .map(|i| record(i, "The Eiffel Tower", "The Eiffel Tower is in"))
        .collect();
    // Informative fields may be absent.
    recs.push(serde_json::json!({"known_id": 9, "subject": "Rome", "attribute": "Italy", "prompt": "Rome is in"}));
    let p = write(
        dir.path(),
        "f.json",
        &serde_json::to_string(&recs).expect("json"),
    );
    let facts = load_known_facts(&p).expect("load");
    assert_eq!(facts.len(), 4);
    assert_eq!(facts[1].known_id, 1);
    assert_eq!(facts[0].relation_id, "P1");
    assert_eq!(facts[3].template, "");
}

#[test]
fn load_rejects_a_file_that_is_not_a_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "obj.json", r#"{"known_id": 0}"#);
    let e = load_known_facts(&p).expect_err("object");
    assert!(matches!(e, Error::BadFile { .. }), "{e:?}");
    assert!(e.to_string().contains("list"), "{e}");

    let p = write(dir.path(), "bad.json", "[{");
    assert!(matches!(load_known_facts(&p), Err(Error::BadFile { .. })));

    let e = load_known_facts(&dir.path().join("absent.json")).expect_err("absent");
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
}

#[test]
fn load_names_the_record_and_the_missing_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut recs: Vec<_> = (0..5).map(|i| record(i, "Rome", "Rome is in")).collect();
    recs[3].as_object_mut().expect("obj").remove("subject");
    let p = write(
        dir.path(),
        "f.json",
        &serde_json::to_string(&recs).expect("json"),
    );
    let e = load_known_facts(&p).expect_err("missing");
    match &e {
        Error::BadRecord { index, reason, .. } => {
            assert_eq!(*index, 3);
            assert!(reason.contains("subject"), "{reason}");
        }
        other => panic!("expected BadRecord, got {other:?}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("record 3") && msg.contains("`subject`"),
        "{msg}"
    );
}

#[test]
fn load_names_the_field_of_the_wrong_type() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut recs: Vec<_> = (0..3).map(|i| record(i, "Rome", "Rome is in")).collect();
    recs[1]["known_id"] = serde_json::json!("one");
    let p = write(
        dir.path(),
        "f.json",
        &serde_json::to_string(&recs).expect("json"),
    );
    match load_known_facts(&p) {
        Err(Error::BadRecord {
            index: 1, reason, ..
        }) => {
            assert!(
                reason.contains("known_id") && reason.contains("invalid type"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    let mut recs: Vec<_> = (0..3).map(|i| record(i, "Rome", "Rome is in")).collect();
    recs[2]["prompt"] = serde_json::json!(7);
    let p = write(
        dir.path(),
        "g.json",
        &serde_json::to_string(&recs).expect("json"),
    );
    match load_known_facts(&p) {
        Err(Error::BadRecord {
            index: 2, reason, ..
        }) => assert!(reason.contains("prompt"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let p = write(dir.path(), "h.json", "[1]");
    assert!(matches!(
        load_known_facts(&p),
        Err(Error::BadRecord { index: 0, .. })
    ));
}

#[test]
fn load_rejects_empty_or_absent_subjects_and_repeated_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (i, (subject, prompt)) in [
        ("", "Rome is in"),
        ("  ", "Rome is in"),
        ("Milan", "Rome is in"),
    ]
    .into_iter()
    .enumerate()
    {
        let recs = vec![record(0, "Rome", "Rome is in"), record(1, subject, prompt)];
        let p = write(
            dir.path(),
            &format!("f{i}.json"),
            &serde_json::to_string(&recs).expect("json"),
        );
        match load_known_facts(&p) {
            Err(Error::BadRecord {
                index: 1, reason, ..
            }) => assert!(reason.contains("`subject`"), "{reason}"),
            other => panic!("{subject:?}: {other:?}"),
        }
    }
    let recs = vec![
        record(4, "Rome", "Rome is in"),
        record(4, "Rome", "Rome is in"),
    ];
    let p = write(
        dir.path(),
        "dup.json",
        &serde_json::to_string(&recs).expect("json"),
    );
    match load_known_facts(&p) {
        Err(Error::BadRecord {
            index: 1, reason, ..
        }) => assert!(reason.contains("known_id"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
#[cfg_attr(
    not(feature = "shared-data"),
    ignore = "needs ../shared/data beside the checkout: cargo test --features shared-data"
)]
fn load_reads_the_shared_dev_file() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/known_facts_dev.json");
    assert!(p.is_file(), "{} is absent", p.display());
    let facts = load_known_facts(&p).expect("load");
    assert_eq!(facts.len(), 605);
    assert_eq!(facts[0].subject, "Vinson Massif");
}

// ---------------------------------------------------------------- categories

fn cats(subject: (usize, usize), n: usize) -> Vec<Vec<usize>> {
    category_rows(subject, n)
        .into_iter()
        .map(|(_, v)| v)
        .collect()
}

#[test]
fn category_rows_follow_rome() {
    // [first, middle, last subject, first subsequent, further, last]
    // 3-token subject at the start, 4 more tokens.
    assert_eq!(
        cats((0, 3), 7),
        vec![vec![0], vec![1], vec![2], vec![3], vec![4, 5], vec![6]]
    );
    // After a BOS, 4-token subject: two middle tokens.
    assert_eq!(
        cats((1, 5), 8),
        vec![vec![1], vec![2, 3], vec![4], vec![5], vec![6], vec![7]]
    );
    // Single-token subject: first == last subject, no middle.
    assert_eq!(
        cats((0, 1), 4),
        vec![vec![0], vec![], vec![0], vec![1], vec![2], vec![3]]
    );
    // Two-token subject: no middle.
    assert_eq!(
        cats((2, 4), 6),
        vec![vec![2], vec![], vec![3], vec![4], vec![], vec![5]]
    );
    // One token after the subject: it is both first subsequent and last; no further tokens.
    assert_eq!(
        cats((0, 2), 3),
        vec![vec![0], vec![], vec![1], vec![2], vec![], vec![2]]
    );
    // Two tokens after: no further tokens.
    assert_eq!(
        cats((0, 2), 4),
        vec![vec![0], vec![], vec![1], vec![2], vec![], vec![3]]
    );
    // Subject at the very end: no first subsequent; the last token is the last subject token.
    assert_eq!(
        cats((1, 3), 3),
        vec![vec![1], vec![], vec![2], vec![], vec![], vec![2]]
    );
    // Invalid spans: nothing.
    assert!(cats((2, 2), 5).iter().all(Vec::is_empty));
    assert!(cats((1, 6), 5).iter().all(Vec::is_empty));
    let order: Vec<TokenCategory> = category_rows((0, 1), 2).iter().map(|c| c.0).collect();
    assert_eq!(order, TokenCategory::ALL.to_vec());
}

/// A hidden grid over `n` tokens and `layers` layers with `scores[t][l] = f(t, l)`.
fn grid(
    kind: TraceKind,
    subject: (usize, usize),
    n: usize,
    layers: usize,
    low: f64,
    high: f64,
    f: impl Fn(usize, usize) -> f64,
) -> TraceGrid {
    TraceGrid {
        prompt: "p".into(),
        subject: "s".into(),
        kind,
        window: 1,
        sever: None,
        tokens: (0..n).map(|t| format!("t{t}")).collect(),
        token_ids: (0..n as i64).collect(),
        subject_range: subject,
        rows: (0..n).collect(),
        n_layers: layers,
        scores: (0..n)
            .map(|t| (0..layers).map(|l| f(t, l)).collect())
            .collect(),
        clean_score: high,
        corrupted_score: low,
        answer: TokenText {
            id: 1,
            text: " x".into(),
        },
        metric: "p".into(),
        samples: 2,
        noise: Corruption::Gaussian {
            level: NoiseLevel::Std(0.1),
        },
        seed: 1,
        schedule: Schedule::Fast,
    }
}

fn known_case(id: u64, grids: Vec<TraceGrid>) -> TraceRecord {
    TraceRecord {
        known_id: id,
        known: true,
        predicted: None,
        expected: None,
        fact: None,
        grids,
        error: None,
        seconds: None,
    }
}

#[track_caller]
fn close(a: Option<f64>, b: f64) {
    let a = a.expect("a value");
    assert!((a - b).abs() < 1e-12, "{a} vs {b}");
}

#[test]
fn summarize_assigns_rows_to_categories() {
    let code = |t: usize, l: usize| (10 * t + l) as f64;
    // Case A: subject (0, 4) of 8 tokens, low 1: first 0, middle 1,2, last subj 3, first
    // subsequent 4, further 5,6, last 7.
    let a = grid(TraceKind::Hidden, (0, 4), 8, 2, 1.0, 5.0, code);
    // Case B: single-token subject (1, 2) of 3 tokens, low 0: first = last subj = 1, first
    // subsequent = last = 2, no middle, no further.
    let b = grid(TraceKind::Hidden, (1, 2), 3, 2, 0.0, 2.0, code);
    let unknown = TraceRecord {
        known: false,
        ..known_case(7, vec![])
    };
    let failed = TraceRecord {
        error: Some("boom".into()),
        ..known_case(8, vec![])
    };
    let s = summarize(&[
        known_case(1, vec![a]),
        known_case(2, vec![b]),
        unknown,
        failed,
    ]);
    assert_eq!((s.total, s.known, s.unknown, s.failed), (4, 2, 1, 1));
    assert_eq!(s.failures[0].known_id, 8);
    assert_eq!(s.kinds.len(), 1);
    let k = s.kind(TraceKind::Hidden).expect("hidden");
    assert_eq!((k.cases, k.n_layers), (2, 2));
    for l in 0..2 {
        let lf = l as f64;
        let c = |cat| k.category(cat);
        // first: A row 0 − 1, B row 1 − 0
        close(
            c(TokenCategory::FirstSubject).aie[l],
            ((0.0 + lf - 1.0) + (10.0 + lf)) / 2.0,
        );
        assert_eq!(c(TokenCategory::FirstSubject).n[l], 2);
        // middle: A rows 1, 2 (each a sample), nothing from B
        close(
            c(TokenCategory::MiddleSubject).aie[l],
            ((10.0 + lf - 1.0) + (20.0 + lf - 1.0)) / 2.0,
        );
        assert_eq!(c(TokenCategory::MiddleSubject).n[l], 2);
        // last subject: A row 3, B row 1 (same row as its first)
        close(
            c(TokenCategory::LastSubject).aie[l],
            ((30.0 + lf - 1.0) + (10.0 + lf)) / 2.0,
        );
        // first subsequent: A row 4, B row 2
        close(
            c(TokenCategory::FirstSubsequent).aie[l],
            ((40.0 + lf - 1.0) + (20.0 + lf)) / 2.0,
        );
        // further: A rows 5, 6 only
        close(
            c(TokenCategory::Further).aie[l],
            ((50.0 + lf - 1.0) + (60.0 + lf - 1.0)) / 2.0,
        );
        assert_eq!(c(TokenCategory::Further).n[l], 2);
        // last: A row 7, B row 2 (same as its first subsequent)
        close(
            c(TokenCategory::Last).aie[l],
            ((70.0 + lf - 1.0) + (20.0 + lf)) / 2.0,
        );
        assert_eq!(c(TokenCategory::Last).n[l], 2);
    }
    // Best layer: scores grow with the layer.
    assert_eq!(k.category(TokenCategory::Last).best_layer, Some(1));
    // ATE: mean of (5 − 1, 2 − 0) = 3.
    close(k.total_effect.mean, 3.0);
    assert_eq!(k.total_effect.n, 2);
    close(k.high, 3.5);
    close(k.low, 0.5);
    // AIE is not clipped: A's first token at layer 0 is 0 − 1 = −1 alone when B is absent.
    let a = grid(TraceKind::Hidden, (0, 4), 8, 2, 1.0, 5.0, code);
    let s = summarize(&[known_case(1, vec![a])]);
    let k = s.kind(TraceKind::Hidden).expect("hidden");
    close(k.category(TokenCategory::FirstSubject).aie[0], -1.0);
    // One sample: a mean but no interval.
    assert_eq!(k.category(TokenCategory::FirstSubject).ci_low[0], None);
}

#[test]
fn summarize_handles_the_subject_at_the_end_and_partial_rows() {
    let code = |t: usize, l: usize| (10 * t + l) as f64;
    // Subject (1, 3) ends the prompt of 3 tokens: no first subsequent, last token = row 2.
    let g = grid(TraceKind::Mlp, (1, 3), 3, 1, 0.0, 1.0, code);
    let s = summarize(&[known_case(1, vec![g])]);
    let k = s.kind(TraceKind::Mlp).expect("mlp");
    assert!(s.kind(TraceKind::Hidden).is_none());
    assert_eq!(k.category(TokenCategory::FirstSubsequent).n[0], 0);
    assert_eq!(k.category(TokenCategory::FirstSubsequent).aie[0], None);
    assert_eq!(k.category(TokenCategory::FirstSubsequent).best_layer, None);
    close(k.category(TokenCategory::Last).aie[0], 20.0);
    close(k.category(TokenCategory::LastSubject).aie[0], 20.0);
    // A grid with only some rows (e.g. subject_last) contributes only those.
    let mut g = grid(TraceKind::Attn, (0, 2), 5, 1, 0.0, 1.0, code);
    g.rows = vec![1];
    g.scores = vec![vec![7.0]];
    let s = summarize(&[known_case(1, vec![g])]);
    let k = s.kind(TraceKind::Attn).expect("attn");
    close(k.category(TokenCategory::LastSubject).aie[0], 7.0);
    assert_eq!(k.category(TokenCategory::Last).n[0], 0);
}

#[test]
fn confidence_intervals_on_known_numbers() {
    let e = mean_ci(&[1.0, 2.0, 3.0, 4.0]);
    // mean 2.5, s² = (2.25 + 0.25 + 0.25 + 2.25) / 3 = 5/3, half = 1.96 · s / 2.
    let s = (5.0f64 / 3.0).sqrt();
    assert_eq!(e.n, 4);
    close(e.mean, 2.5);
    close(e.std, s);
    close(e.ci_low, 2.5 - 1.96 * s / 2.0);
    close(e.ci_high, 2.5 + 1.96 * s / 2.0);
    let e = mean_ci(&[2.0, 2.0, 2.0]);
    close(e.ci_low, 2.0);
    close(e.ci_high, 2.0);
    let e = mean_ci(&[5.0]);
    assert_eq!((e.n, e.mean, e.std, e.ci_low), (1, Some(5.0), None, None));
    let e = mean_ci(&[]);
    assert_eq!((e.n, e.mean), (0, None));

    // The per-layer interval of a category is the same rule over its samples.
    let g1 = grid(TraceKind::Hidden, (0, 1), 2, 1, 0.0, 1.0, |t, _| {
        if t == 1 {
            1.0
        } else {
            0.0
        }
    });
    let g2 = grid(TraceKind::Hidden, (0, 1), 2, 1, 0.0, 1.0, |t, _| {
        if t == 1 {
            3.0
        } else {
            0.0
        }
    });
    let s = summarize(&[known_case(1, vec![g1]), known_case(2, vec![g2])]);
    let c = s
        .kind(TraceKind::Hidden)
        .expect("hidden")
        .category(TokenCategory::Last)
        .clone();
    let half = 1.96 * 2f64.sqrt() / 2f64.sqrt();
    close(c.aie[0], 2.0);
    close(c.ci_low[0], 2.0 - half);
    close(c.ci_high[0], 2.0 + half);
}

// ---------------------------------------------------------------- end to end

fn tiny() -> (Transformer, Tokenizer) {
    let tokenizer = load_hf_tokenizer(&fixture("tiny-gpt2")).expect("tokenizer");
    let mut config = tiny_config(Architecture::Gpt2);
    config.vocab_size = tokenizer.vocab_size();
    config.n_layers = 3;
    let model = Transformer::random(
        &config,
        RandomInit { seed: 0, std: 0.5 },
        Device::Cpu,
        Kind::Float,
    )
    .expect("model");
    (model, tokenizer)
}

fn fact(id: u64, subject: &str, prompt: &str, attribute: &str) -> KnownFact {
    KnownFact {
        known_id: id,
        subject: subject.into(),
        attribute: attribute.into(),
        template: String::new(),
        prediction: String::new(),
        prompt: prompt.into(),
        relation_id: "P0".into(),
    }
}

/// Facts the tiny model knows: prompts whose greedy next token is `" " + word` for a word
/// whose own first token is that token.
fn known_facts(model: &Transformer, tok: &Tokenizer, want: usize) -> Vec<KnownFact> {
    let subjects = [
        "The Eiffel Tower",
        "Mount Everest",
        "Hello world",
        "New York City",
        "Language model",
    ];
    let tails = [
        " is in",
        " was made by",
        " is located in the city of",
        " belongs to",
        ", a product of",
        " speaks",
    ];
    let mut out = Vec::new();
    for s in subjects {
        for t in tails {
            let prompt = format!("{s}{t}");
            let mut f = fact(out.len() as u64, s, &prompt, "x");
            let check = check_known(model, tok, &f).expect("check");
            let Some(word) = check.predicted.text.strip_prefix(' ') else {
                continue;
            };
            if word.trim().is_empty() {
                continue;
            }
            if expected_token(tok, word).expect("expected").id != check.predicted.id {
                continue;
            }
            f.attribute = word.to_string();
            assert!(check_known(model, tok, &f).expect("check").known);
            out.push(f);
            if out.len() == want {
                return out;
            }
        }
    }
    panic!("only {} known facts found for the tiny model", out.len());
}

#[track_caller]
fn assert_json_close<T: serde::Serialize>(a: &T, b: &T) {
    fn walk(a: &serde_json::Value, b: &serde_json::Value, at: &str) {
        use serde_json::Value as V;
        match (a, b) {
            (V::Number(x), V::Number(y)) => {
                let (x, y) = (x.as_f64().expect("f64"), y.as_f64().expect("f64"));
                assert!(
                    (x - y).abs() <= 1e-12 * x.abs().max(y.abs()).max(1.0),
                    "{at}: {x} vs {y}"
                );
            }
            (V::Array(x), V::Array(y)) => {
                assert_eq!(x.len(), y.len(), "{at}");
                for (i, (x, y)) in x.iter().zip(y).enumerate() {
                    walk(x, y, &format!("{at}[{i}]"));
                }
            }
            (V::Object(x), V::Object(y)) => {
                assert_eq!(
                    x.keys().collect::<Vec<_>>(),
                    y.keys().collect::<Vec<_>>(),
                    "{at}"
                );
                for (k, x) in x {
                    walk(x, &y[k], &format!("{at}.{k}"));
                }
            }
            _ => assert_eq!(a, b, "{at}"),
        }
    }
    walk(
        &serde_json::to_value(a).expect("json"),
        &serde_json::to_value(b).expect("json"),
        "",
    );
}

fn mtimes(dir: &Path) -> Vec<(PathBuf, std::time::SystemTime)> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("cases"))
        .expect("cases")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.path(),
                e.metadata().expect("meta").modified().expect("mtime"),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn end_to_end_run_writes_cases_and_resumes() {
    let (model, tok) = tiny();
    let mut facts = known_facts(&model, &tok, 2);
    // Not known: an attribute that is not the prediction.
    let p0 = facts[0].prompt.clone();
    let predicted = check_known(&model, &tok, &facts[0])
        .expect("check")
        .predicted;
    let other = ["Paris", "Rome", "London", "Berlin"]
        .into_iter()
        .find(|w| expected_token(&tok, w).expect("tok").id != predicted.id)
        .expect("another word");
    facts.push(fact(100, &facts[0].subject.clone(), &p0, other));
    // Known, but the subject is not in the prompt (bypassing the loader): a failed case.
    let mut bad = facts[1].clone();
    bad.known_id = 101;
    bad.subject = "Atlantis".into();
    facts.push(bad);
    // Beyond the limit: ignored (but its subject counts for σ).
    facts.push(fact(102, "Rome", "Rome is in", "Italy"));

    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("run");
    let options = DatasetRun {
        samples: 2,
        window: 2,
        seed: 3,
        limit: Some(4),
        model_name: "tiny".into(),
        // SVG only: PNG rendering is slow in unoptimised test builds and is viz's own business.
        figure_formats: vec!["svg".into()],
        ..DatasetRun::default()
    };
    let mut reports = Vec::new();
    let report = run_dataset(
        &model,
        &tok,
        &facts,
        &options,
        &out,
        &mut progress::watch(|p| reports.push(p.clone())),
    )
    .expect("run");
    let last = reports.last().expect("progress");
    assert_eq!(reports.first().expect("first").done, 0);
    assert_eq!(
        *last,
        Progress::new(DATASET_STAGE, 4, Some(4), "cases")
            .with_count("known", 2)
            .with_count("not known", 1)
            .with_count("failed", 1)
            .with_count("reused", 0)
            .with_count("redone", 0)
            .with_item(101)
    );
    assert_eq!(report.traced, 2);
    assert!(report.trace_seconds > 0.0);
    assert!(matches!(report.noise, Corruption::Gaussian { level: NoiseLevel::Std(s) } if s > 0.0));

    // Files.
    for id in [0, 1, 100, 101] {
        assert!(case_path(&out, id).is_file(), "case {id}");
    }
    assert!(!case_path(&out, 102).exists());
    // Stopped after the first case: cancelled, with that case's file kept for a later run.
    let stopped = dir.path().join("stopped");
    let err = run_dataset(
        &model,
        &tok,
        &facts,
        &options,
        &stopped,
        &mut |p: &Progress| {
            if p.done >= 1 {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        },
    )
    .expect_err("stopped");
    assert!(
        matches!(&err, Error::Cancelled(c) if c.at.done == 1 && c.at.item == Some(0)),
        "{err:?}"
    );
    assert!(case_path(&stopped, 0).is_file());
    assert!(!case_path(&stopped, 1).exists());
    let known: TraceRecord =
        serde_json::from_str(&std::fs::read_to_string(case_path(&out, 0)).expect("read"))
            .expect("parse");
    assert!(known.known && known.fact.as_ref() == Some(&facts[0]));
    assert_eq!(known.grids.len(), 3);
    assert!(known.seconds.is_some_and(|s| s > 0.0));
    assert_eq!(
        known.grids.iter().map(|g| g.kind).collect::<Vec<_>>(),
        TraceKind::ALL.to_vec()
    );
    assert_eq!(known.grids[1].window, 2);
    let unknown: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(case_path(&out, 100)).expect("read"))
            .expect("parse");
    assert_eq!(unknown["known"], serde_json::json!(false));
    assert_eq!(unknown["predicted"], serde_json::json!(predicted.text));
    assert_eq!(unknown["expected"].as_str().map(|s| s.trim()), Some(other));
    let failed: TraceRecord =
        serde_json::from_str(&std::fs::read_to_string(case_path(&out, 101)).expect("read"))
            .expect("parse");
    assert!(
        failed
            .error
            .as_deref()
            .is_some_and(|e| e.contains("Atlantis")),
        "{failed:?}"
    );
    for f in [
        "summary.json",
        "avg_hidden.svg",
        "avg_mlp.svg",
        "avg_attn.svg",
        "lines_attn.svg",
        "lines_hidden.svg",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(out.join("cases"))
        .expect("dir")
        .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // DatasetSummary.
    let s = &report.summary;
    assert_eq!((s.total, s.known, s.unknown, s.failed), (4, 2, 1, 1));
    assert_eq!(s.kinds.len(), 3);
    for k in &s.kinds {
        assert_eq!(k.cases, 2);
        assert_eq!(k.n_layers, 3);
        assert!(k.total_effect.mean.is_some_and(f64::is_finite));
        assert!(k.total_effect.ci_low.is_some_and(f64::is_finite));
        for cat in [
            TokenCategory::FirstSubject,
            TokenCategory::LastSubject,
            TokenCategory::Last,
        ] {
            let c = k.category(cat);
            assert!(
                c.aie.iter().all(|v| v.is_some_and(f64::is_finite)),
                "{cat:?} {:?}",
                c.aie
            );
            assert!(c.ci_high.iter().all(|v| v.is_some_and(f64::is_finite)));
            assert!(c.n.iter().all(|&n| n == 2));
            assert!(c.best_layer.is_some());
        }
    }
    let on_disk: causal_trace::dataset::DatasetSummary =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("read"))
            .expect("parse");
    assert_eq!(on_disk.known, 2);

    // Again: everything is reused and no case file is touched.
    let options = DatasetRun {
        figure_formats: vec![],
        ..options
    };
    let before = mtimes(&out);
    let mut reports = Vec::new();
    let again = run_dataset(
        &model,
        &tok,
        &facts,
        &options,
        &out,
        &mut progress::watch(|p| reports.push(p.clone())),
    )
    .expect("rerun");
    let last = reports.last().expect("progress");
    assert_eq!(
        (
            last.count("reused"),
            last.done,
            last.count("known"),
            last.count("not known"),
            last.count("failed")
        ),
        (Some(4), 4, Some(2), Some(1), Some(1))
    );
    assert_eq!(again.traced, 0);
    assert_eq!(mtimes(&out), before);
    // Equal up to JSON float parsing (serde_json without `float_roundtrip` may be 1 ulp off).
    assert_json_close(&again.summary, &report.summary);

    // A truncated case file (an interrupted writer elsewhere) is recomputed, the rest reused.
    std::fs::write(case_path(&out, 1), "{\"known_id\": 1, \"kno").expect("truncate");
    let mut reports = Vec::new();
    let third = run_dataset(
        &model,
        &tok,
        &facts,
        &options,
        &out,
        &mut progress::watch(|p| reports.push(p.clone())),
    )
    .expect("third");
    assert_eq!(reports.last().expect("p").count("reused"), Some(3));
    assert_eq!(reports.last().expect("p").count("redone"), Some(1));
    assert_eq!(third.traced, 1);
    assert_eq!(third.redone.len(), 1);
    assert!(
        third.redone[0].reason.contains("not a case record"),
        "{:?}",
        third.redone
    );
    assert_json_close(&third.summary, &report.summary);

    // A well-formed case file with impossible values (a probability of 5) is not trusted:
    // it is traced again, the reason is reported, and the averages are those of a clean run.
    let path = case_path(&out, 1);
    let mut record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    record["grids"][0]["scores"][0][0] = serde_json::json!(5.0);
    std::fs::write(&path, serde_json::to_vec(&record).expect("ser")).expect("write");
    let tampered =
        run_dataset(&model, &tok, &facts, &options, &out, &mut progress::ignore).expect("tampered");
    assert_eq!(tampered.traced, 1);
    assert_eq!(tampered.redone.len(), 1);
    assert_eq!(tampered.redone[0].known_id, 1);
    assert!(
        tampered.redone[0].reason.contains("not a probability"),
        "{:?}",
        tampered.redone
    );
    assert_json_close(&tampered.summary, &report.summary);
    // Grids whose shape disagrees with the prompt are not trusted either.
    let mut record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    record["grids"][0]["scores"]
        .as_array_mut()
        .expect("rows")
        .pop();
    std::fs::write(&path, serde_json::to_vec(&record).expect("ser")).expect("write");
    let short =
        run_dataset(&model, &tok, &facts, &options, &out, &mut progress::ignore).expect("short");
    assert_eq!(short.redone.len(), 1);
    assert!(
        short.redone[0].reason.contains("score rows"),
        "{:?}",
        short.redone
    );

    // Other settings do not reuse the traces of known facts.
    let other = DatasetRun {
        samples: 3,
        ..options.clone()
    };
    let mut reports = Vec::new();
    let fourth = run_dataset(
        &model,
        &tok,
        &facts,
        &other,
        &out,
        &mut progress::watch(|p| reports.push(p.clone())),
    )
    .expect("fourth");
    assert_eq!(reports.last().expect("p").count("reused"), Some(2));
    assert_eq!(fourth.traced, 2);
    assert!(fourth.cases[0].grids.iter().all(|g| g.samples == 3));

    // Asking for the severed comparison re-traces the known cases (their records lack it)
    // and averages it; the summary and the bar plot appear.
    let severed = DatasetRun {
        severed: true,
        figure_formats: vec!["svg".into()],
        ..other
    };
    let fifth =
        run_dataset(&model, &tok, &facts, &severed, &out, &mut progress::ignore).expect("fifth");
    assert_eq!(fifth.traced, 2);
    let sev = fifth.summary.severed.as_ref().expect("severed summary");
    assert_eq!(sev.cases, 2);
    assert_eq!(sev.ordinary.len(), sev.n_layers);
    for est in [&sev.ordinary, &sev.mlp_severed, &sev.attn_severed] {
        assert!(est
            .iter()
            .all(|e| e.n == 2 && e.mean.is_some_and(f64::is_finite)));
    }
    assert!(out.join("severed.svg").is_file());
    // The ordinary last-subject-token row equals that row of the full hidden grid.
    let case = &fifth.cases[0];
    let full = case
        .grid(causal_trace::TraceKind::Hidden)
        .expect("full grid");
    let row = case.severed_grid(None).expect("ordinary row");
    let t = row.rows[0];
    for (a, b) in row.scores[0].iter().zip(&full.scores[t]) {
        assert!((a - b).abs() < 1e-5);
    }
}

#[test]
fn run_rejects_bad_settings() {
    let (model, tok) = tiny();
    let dir = tempfile::tempdir().expect("tempdir");
    let facts = vec![fact(0, "Rome", "Rome is in", "Italy")];
    for options in [
        DatasetRun {
            samples: 0,
            ..DatasetRun::default()
        },
        DatasetRun {
            window: 4,
            ..DatasetRun::default()
        },
        DatasetRun {
            window: 0,
            ..DatasetRun::default()
        },
        DatasetRun {
            kinds: vec![],
            window: 2,
            ..DatasetRun::default()
        },
    ] {
        let e = run_dataset(
            &model,
            &tok,
            &facts,
            &options,
            dir.path(),
            &mut progress::ignore,
        )
        .expect_err("bad");
        assert!(matches!(e, Error::InvalidInput(_)), "{e:?}");
    }
    // Hidden only: the window does not matter.
    let options = DatasetRun {
        kinds: vec![TraceKind::Hidden],
        samples: 2,
        window: 99,
        figure_formats: vec![],
        ..DatasetRun::default()
    };
    let r = run_dataset(
        &model,
        &tok,
        &facts,
        &options,
        dir.path(),
        &mut progress::ignore,
    )
    .expect("hidden only");
    assert_eq!(r.summary.total, 1);
}
