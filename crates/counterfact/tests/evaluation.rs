//! CounterFact evaluation on tiny random models (hermetic): the three record schemas and
//! their errors, batched scoring against the one-pass-per-pair oracle, the metric formulas,
//! fluency, a resumable run that restores the weights, and summaries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use counterfact::fluency::{fluency, ngram_entropy, words};
use counterfact::{
    load_cases, read_run, run_cases, score_cases, score_items, score_items_naive, summarize,
    summarize_run, BatchLimits, Bootstrap, CaseMetrics, CaseNll, EditCase, Error, PairNll, RunDir,
    RunOptions, RunSettings, ScoreItem,
};
use gpt_core::progress::{self, Progress};
use gpt_core::random::tiny_config;
use gpt_core::tch::{Device, Kind, Tensor};
use gpt_core::{
    load_hf_tokenizer, Architecture, EditableModel, Layer, RandomInit, Tokenizer, Transformer,
    WeightId,
};
use serde_json::json;

fn tokenizer() -> Tokenizer {
    load_hf_tokenizer(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-gpt2"))
        .unwrap()
}

fn model(arch: Architecture, tok: &Tokenizer, kind: Kind) -> Transformer {
    let mut c = tiny_config(arch);
    c.vocab_size = tok.vocab_size();
    c.n_layers = 3;
    Transformer::random(&c, RandomInit { seed: 11, std: 0.5 }, Device::Cpu, kind).unwrap()
}

fn write(dir: &Path, name: &str, value: &serde_json::Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_vec(value).unwrap()).unwrap();
    p
}

fn compact(id: u64, subject: &str, new: &str, truth: &str) -> serde_json::Value {
    json!({
        "case_id": id,
        "prompt": format!("{subject} is located in the city of"),
        "subject": subject,
        "target_new": new,
        "ground_truth": truth,
        "rephrase_prompt": format!("Where is {subject}? It is in"),
        "locality_prompt": "The Louvre is located in the city of",
        "locality_ground_truth": truth,
    })
}

fn compact_cases(dir: &Path) -> Vec<EditCase> {
    let records = json!([
        compact(0, "The Eiffel Tower", "Rome", "Paris"),
        compact(1, "The Colosseum", "Paris", "Rome"),
        compact(2, "Big Ben", "Berlin", "London"),
    ]);
    load_cases(&write(dir, "cases.json", &records), false)
        .unwrap()
        .cases
}

#[test]
fn the_three_schemas_load_and_bad_records_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let original = json!([{
        "case_id": 7,
        "requested_rewrite": {
            "prompt": "The mother tongue of {} is",
            "relation_id": "P103",
            "target_new": {"str": "English", "id": "Q1860"},
            "target_true": {"str": "French", "id": "Q150"},
            "subject": "Danielle Darrieux"
        },
        "paraphrase_prompts": ["a. Danielle Darrieux, a native", "b. Danielle Darrieux speaks"],
        "neighborhood_prompts": ["The mother tongue of Léon Blum is"],
        "attribute_prompts": ["The mother tongue of Douglas Adams is"],
        "generation_prompts": ["Danielle Darrieux's mother tongue is"]
    }]);
    let cases = load_cases(&write(dir.path(), "o.json", &original), false)
        .unwrap()
        .cases;
    let c = &cases[0];
    assert_eq!(c.case_id, 7);
    assert_eq!(c.relation_id.as_deref(), Some("P103"));
    assert_eq!(
        c.request.filled(),
        "The mother tongue of Danielle Darrieux is"
    );
    assert_eq!(
        (c.request.target.as_str(), c.target_true.as_str()),
        ("English", "French")
    );
    assert_eq!(c.paraphrase_prompts.len(), 2);
    assert_eq!(c.neighborhood[0].true_target, "French");
    assert_eq!(c.generation_prompts.len(), 1);

    let cases = compact_cases(dir.path());
    assert_eq!(cases[0].request.prompt, "{} is located in the city of");
    assert_eq!(cases[0].generation_prompts.len(), 2);

    let known = json!([{"known_id": 3, "subject": "Vinson Massif", "attribute": "Antarctica",
        "template": "{} is located in the continent",
        "prompt": "Vinson Massif is located in the continent of", "relation_id": "P30"}]);
    let k = &load_cases(&write(dir.path(), "k.json", &known), false)
        .unwrap()
        .cases[0];
    assert!(!k.has_edit());
    assert_eq!(
        k.request.filled(),
        "Vinson Massif is located in the continent of"
    );

    // Bad records: named by index and field; skipped with a count when asked.
    let mut bad = compact(1, "X", "Y", "Z");
    bad["prompt"] = json!("no subject here");
    let mut no_target = compact(2, "The Eiffel Tower", "Rome", "Paris");
    no_target["target_new"] = json!("");
    let list = json!([
        compact(0, "The Eiffel Tower", "Rome", "Paris"),
        bad,
        no_target,
        5
    ]);
    let path = write(dir.path(), "bad.json", &list);
    match load_cases(&path, false).unwrap_err() {
        Error::Record { index, field, .. } => assert_eq!((index, field.as_str()), (1, "prompt")),
        e => panic!("{e}"),
    }
    let loaded = load_cases(&path, true).unwrap();
    assert_eq!(loaded.cases.len(), 1);
    assert_eq!(loaded.skipped.len(), 3);
    let messages: Vec<String> = loaded.skipped.iter().map(ToString::to_string).collect();
    assert!(
        messages[1].contains("record 2") && messages[1].contains("target_new"),
        "{messages:?}"
    );
    assert!(messages[2].contains("record 3"), "{messages:?}");

    for (name, value, expect) in [
        ("empty.json", json!([]), "empty"),
        ("obj.json", json!({"a": 1}), "JSON list"),
    ] {
        let e = load_cases(&write(dir.path(), name, &value), false).unwrap_err();
        assert!(e.to_string().contains(expect), "{e}");
    }
    // A duplicate case id would drop a case from the summary: refused by record and field
    // (skipped with `skip_bad`, keeping the first).
    let dup = json!([
        compact(0, "The Eiffel Tower", "Rome", "Paris"),
        compact(1, "The Colosseum", "Paris", "Rome"),
        compact(0, "Big Ben", "Berlin", "London"),
    ]);
    let dup_path = write(dir.path(), "dup.json", &dup);
    match load_cases(&dup_path, false).unwrap_err() {
        e @ Error::Record { index: 2, .. } => {
            let m = e.to_string();
            assert!(m.contains("case_id") && m.contains("record 0"), "{m}");
        }
        e => panic!("{e}"),
    }
    let loaded = load_cases(&dup_path, true).unwrap();
    assert_eq!((loaded.cases.len(), loaded.skipped.len()), (2, 1));
    // Edit cases and known facts in one file have metrics for only some cases: refused.
    let mixed = json!([
        compact(0, "The Eiffel Tower", "Rome", "Paris"),
        {"known_id": 3, "subject": "Vinson Massif", "attribute": "Antarctica",
         "template": "{} is located in the continent",
         "prompt": "Vinson Massif is located in the continent of", "relation_id": "P30"},
    ]);
    let e = load_cases(&write(dir.path(), "mixed.json", &mixed), false).unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("record 1") && m.contains("known fact") && m.contains("record 0"),
        "{m}"
    );

    let e = load_cases(&dir.path().join("missing.json"), false).unwrap_err();
    assert!(e.to_string().contains("missing.json"), "{e}");
    let shard: Vec<u32> = counterfact::dataset::shard(&[0, 1, 2, 3, 4], 1, 2).unwrap();
    assert_eq!(shard, vec![1, 3]);
    assert!(counterfact::dataset::shard(&[0], 2, 2).is_err());
}

#[test]
fn batched_scores_equal_one_pass_per_pair() {
    let tok = tokenizer();
    for arch in Architecture::ALL {
        let m = model(arch, &tok, Kind::Double);
        let texts = [
            ("The Eiffel Tower is located in", " Rome"),
            ("Paris", " the city of lights"),
            ("Where is the Colosseum? It is in the city of", " Paris"),
            ("A", " B"),
        ];
        let items: Vec<ScoreItem> = texts
            .iter()
            .map(|(p, t)| ScoreItem {
                prompt: tok.encode(p).unwrap().ids,
                target: tok.encode(t).unwrap().ids,
            })
            .collect();
        let naive = score_items_naive(&m, &items).unwrap();
        // Small limits force several batches of different lengths.
        let limits = BatchLimits {
            rows: 2,
            tokens: 24,
        };
        let fast = score_items(&m, &items, limits).unwrap();
        for (a, b) in fast.iter().zip(&naive) {
            assert!(
                (a.mean_nll - b.mean_nll).abs() <= 1e-9,
                "{arch:?}: {} vs {}",
                a.mean_nll,
                b.mean_nll
            );
            assert_eq!(a.first_token_top1, b.first_token_top1);
        }
    }
}

#[test]
fn metric_formulas() {
    let pair = |new: f64, truth: f64| PairNll { new, truth };
    let nll = CaseNll {
        rewrite: vec![pair(0.1, 2.0)],
        paraphrase: vec![pair(0.5, 0.4), pair(0.2, 3.0)],
        neighborhood: vec![pair(3.0, 0.3)],
    };
    let m = nll.metrics();
    assert_eq!(m.es, Some(1.0));
    assert!((m.em.unwrap() - ((-0.1f64).exp() - (-2.0f64).exp())).abs() < 1e-12);
    assert_eq!(m.ps, Some(0.5));
    assert_eq!(m.ns, Some(1.0));
    assert!((m.nm.unwrap() - ((-0.3f64).exp() - (-3.0f64).exp())).abs() < 1e-12);

    // S is the harmonic mean of the case-averaged ES, PS, NS.
    let a = CaseMetrics {
        es: Some(1.0),
        ps: Some(1.0),
        ns: Some(0.5),
        ..CaseMetrics::default()
    };
    let b = CaseMetrics {
        es: Some(1.0),
        ps: Some(0.0),
        ns: Some(1.0),
        ..CaseMetrics::default()
    };
    let table = summarize(&[&a, &b], Bootstrap::default());
    let s = table["S"];
    let expected = 3.0 / (1.0 / 1.0 + 1.0 / 0.5 + 1.0 / 0.75);
    assert!((s.mean - expected).abs() < 1e-12, "{s:?}");
    assert!(s.lo <= s.mean && s.mean <= s.hi);
    assert_eq!(table["PS"].mean, 0.5);
    assert!(table["PS"].lo < 0.5 && table["PS"].hi > 0.5);
    // Seeded: the same intervals again.
    assert_eq!(summarize(&[&a, &b], Bootstrap::default()), table);
}

#[test]
fn fluency_is_the_weighted_ngram_entropy() {
    assert_eq!(
        words("It's a well-known city, isn't it? 3.5 km."),
        vec![
            "It's",
            "a",
            "well-known",
            "city",
            ",",
            "isn't",
            "it",
            "?",
            "3.5",
            "km",
            "."
        ]
    );
    // n distinct words: every n-gram once, H = log2(count).
    let distinct: Vec<&str> = "a b c d e f g h i".split(' ').collect();
    assert!((ngram_entropy(&distinct, 2) - (8f64).log2()).abs() < 1e-12);
    assert!((ngram_entropy(&distinct, 3) - (7f64).log2()).abs() < 1e-12);
    // Repetition lowers it.
    let text = "a b c d e f g h i";
    let repeated = "a b a b a b a b a";
    assert!(fluency(repeated) < fluency(text));
    let expected = (2.0 / 3.0 * (8f64).log2() + 4.0 / 3.0 * (7f64).log2()) / 2.0;
    assert!((fluency(text) - expected).abs() < 1e-12);
}

/// FT-L at layer 1 with a quick schedule and a loose bound: an edit that changes the tiny
/// model's scores in a few steps.
fn small_ft() -> rome::FtEditor {
    rome::FtEditor {
        hparams: rome::FtHparams {
            norm_constraint: 0.05,
            lr: 0.05,
            num_steps: 5,
            ..rome::FtHparams::constrained(1)
        },
    }
}

fn settings(method: &str) -> RunSettings {
    RunSettings {
        method: method.into(),
        model: "tiny".into(),
        model_fingerprint: "f".into(),
        cases: "cases.json".into(),
        cases_fingerprint: "c".into(),
        limit: None,
        batch: 1,
        generation: true,
        seed: 1,
        hparams: serde_json::Value::Null,
        sequential: None,
    }
}

#[test]
fn runs_resume_without_redoing_and_restore_the_weights() {
    let tok = tokenizer();
    let dir = tempfile::tempdir().unwrap();
    let cases = compact_cases(dir.path());
    let mut m = model(Architecture::Llama, &tok, Kind::Float);
    let options = RunOptions {
        generation_length: 16,
        ..RunOptions::default()
    };
    let snapshot: Vec<Tensor> = (0..3)
        .map(|l| m.weight(WeightId::MlpOut(Layer(l))).unwrap().copy())
        .collect();
    let mut editor = small_ft();

    // One uninterrupted run.
    let full = dir.path().join("full");
    let (run, done) = RunDir::open(&full, &settings("ft"), (0, 1), false).unwrap();
    assert!(done.is_empty());
    let out = run_cases(
        &mut m,
        &tok,
        Some(&mut editor),
        &cases,
        &done,
        &options,
        &run,
        &mut progress::ignore,
    )
    .unwrap();
    assert_eq!(out.finished, 3);
    for (l, w) in snapshot.iter().enumerate() {
        assert!(
            m.weight(WeightId::MlpOut(Layer(l))).unwrap().equal(w),
            "layer {l} changed"
        );
    }
    let (_, full_records) = read_run(&full).unwrap();
    assert_eq!(full_records.len(), 3);
    let r = &full_records[0];
    let post = r.post.as_ref().unwrap();
    assert!(post.es.is_some() && post.ps.is_some() && post.ns.is_some() && post.ge.is_some());
    // Generation success: the greedy continuation of the rewrite prompt (and the one
    // paraphrase) contains the new target or not.
    let greedy = counterfact::fluency::greedy_continuations(
        &m,
        &tok,
        &[
            cases[0].request.filled(),
            cases[0].paraphrase_prompts[0].clone(),
        ],
        counterfact::fluency::GREEDY_TOKENS,
        8,
    )
    .unwrap();
    assert_eq!(greedy.len(), 2);
    assert!(matches!(post.es_gen, Some(x) if x == 0.0 || x == 1.0));
    assert!(matches!(post.ps_gen, Some(x) if x == 0.0 || x == 1.0));
    assert_eq!(r.pre.es_gen, None, "no pre generation asked");
    // The unedited model's (a `none` run of case 0): exactly what its greedy texts say.
    let none_dir = dir.path().join("none");
    let (run, done) = RunDir::open(&none_dir, &settings("none"), (0, 1), false).unwrap();
    run_cases(
        &mut m,
        &tok,
        None,
        &cases[..1],
        &done,
        &options,
        &run,
        &mut progress::ignore,
    )
    .unwrap();
    let (_, none_records) = read_run(&none_dir).unwrap();
    let hit = |t: &str| {
        f64::from(u8::from(counterfact::fluency::contains_target(
            t,
            &cases[0].request.target,
        )))
    };
    assert_eq!(none_records[0].pre.es_gen, Some(hit(&greedy[0])));
    assert_eq!(none_records[0].pre.ps_gen, Some(hit(&greedy[1])));
    assert_eq!(r.generation.as_ref().unwrap().texts.len(), 2);

    // The same run stopped after one case, then resumed (the last line cut by a "kill").
    // (The first report comes before any case.)
    let part = dir.path().join("part");
    let (run, done) = RunDir::open(&part, &settings("ft"), (0, 1), false).unwrap();
    let mut reports = Vec::new();
    let out = run_cases(
        &mut m,
        &tok,
        Some(&mut editor),
        &cases,
        &done,
        &options,
        &run,
        &mut |p: &Progress| {
            reports.push(p.clone());
            if p.done >= 1 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    )
    .unwrap();
    assert!(out.stopped);
    assert_eq!(
        reports,
        [
            Progress::new(counterfact::CASES_STAGE, 0, Some(3), "cases").with_count("failed", 0),
            Progress::new(counterfact::CASES_STAGE, 1, Some(3), "cases")
                .with_count("failed", 0)
                .with_item(0),
        ]
    );
    assert_eq!(out.finished, 1);
    let file = part.join("records-0-of-1.jsonl");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend_from_slice(b"{\"case_id\": 1, \"trunc");
    std::fs::write(&file, bytes).unwrap();
    // Without resuming, or with other settings: refused, nothing lost.
    let e = RunDir::open(&part, &settings("ft"), (0, 1), false).unwrap_err();
    assert!(
        e.to_string().contains("already holds this run's records"),
        "{e}"
    );
    let e = RunDir::open(&part, &settings("rome"), (0, 1), true).unwrap_err();
    assert!(
        e.to_string().contains("another run") && e.to_string().contains("method"),
        "{e}"
    );
    let (run, done) = RunDir::open(&part, &settings("ft"), (0, 1), true).unwrap();
    assert_eq!(done, BTreeSet::from([0]));
    let out = run_cases(
        &mut m,
        &tok,
        Some(&mut editor),
        &cases,
        &done,
        &options,
        &run,
        &mut progress::ignore,
    )
    .unwrap();
    assert_eq!((out.finished, out.already_done), (2, 1));
    let (s, part_records) = read_run(&part).unwrap();
    assert_eq!(part_records.len(), 3);
    for (a, b) in part_records.iter().zip(&full_records) {
        assert_eq!(a.case_id, b.case_id);
        // The unedited scores were batched with other cases in the two runs (padding and
        // kernel blocking differ), so they agree to rounding; the edited ones exactly.
        let close = |x: &[PairNll], y: &[PairNll]| {
            x.len() == y.len()
                && x.iter().zip(y).all(|(p, q)| {
                    (p.new - q.new).abs() <= 1e-4 && (p.truth - q.truth).abs() <= 1e-4
                })
        };
        assert!(
            close(&a.pre.nll.rewrite, &b.pre.nll.rewrite),
            "case {}",
            a.case_id
        );
        assert!(close(&a.pre.nll.paraphrase, &b.pre.nll.paraphrase));
        assert!(close(&a.pre.nll.neighborhood, &b.pre.nll.neighborhood));
        assert_eq!(a.post, b.post, "case {}", a.case_id);
        assert_eq!(a.generation, b.generation);
    }
    let summary = summarize_run(&s, &part_records, Bootstrap::default());
    assert_eq!(summary.n, 3);
    assert!(summary.metrics.contains_key("S") && summary.pre.contains_key("ES"));
    assert!(summary.unavailable.contains_key("RS"));
    let json = serde_json::to_value(&summary).unwrap();
    for key in ["n", "method", "model", "metrics", "pre", "seconds_per_case"] {
        assert!(json.get(key).is_some(), "summary.json lacks {key}");
    }
    for key in ["mean", "lo", "hi"] {
        assert!(json["metrics"]["ES"].get(key).is_some());
    }
}

#[test]
fn method_none_scores_known_facts_and_shards_share_a_folder() {
    let tok = tokenizer();
    let dir = tempfile::tempdir().unwrap();
    let mut m = model(Architecture::Gpt2, &tok, Kind::Float);
    let known = json!([
        {"known_id": 0, "subject": "Paris", "attribute": "France", "template": "{} is in"},
        {"known_id": 1, "subject": "Rome", "attribute": "Italy", "template": "{} is in"},
        {"known_id": 2, "subject": "Berlin", "attribute": "Germany", "template": "{} is in"}
    ]);
    let cases = load_cases(&write(dir.path(), "k.json", &known), false)
        .unwrap()
        .cases;
    let options = RunOptions {
        generation: false,
        ..RunOptions::default()
    };
    let out = dir.path().join("run");
    for k in 0..2 {
        let mine = counterfact::dataset::shard(&cases, k, 2).unwrap();
        let (run, done) = RunDir::open(&out, &settings("none"), (k, 2), false).unwrap();
        run_cases(
            &mut m,
            &tok,
            None,
            &mine,
            &done,
            &options,
            &run,
            &mut progress::ignore,
        )
        .unwrap();
    }
    let (_, records) = read_run(&out).unwrap();
    assert_eq!(
        records.iter().map(|r| r.case_id).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert!(records
        .iter()
        .all(|r| r.pre.known.is_some() && r.post.is_none()));
    // An edit method cannot run known-facts records (they have no new target).
    let mut editor = rome::FtEditor {
        hparams: rome::FtHparams::constrained(0),
    };
    let (run, done) = RunDir::open(&dir.path().join("e"), &settings("ft"), (0, 1), false).unwrap();
    let e = run_cases(
        &mut m,
        &tok,
        Some(&mut editor),
        &cases,
        &done,
        &options,
        &run,
        &mut progress::ignore,
    )
    .unwrap_err();
    assert!(e.to_string().contains("only method `none`"), "{e}");
    // A target that tokenises to nothing is a clear error.
    let mut bad = cases[0].clone();
    bad.target_true = " ".into();
    let e = score_cases(&m, &tok, &[&bad], BatchLimits::default()).unwrap_err();
    assert!(e.to_string().to_lowercase().contains("target"), "{e}");
}

/// With pre-generation, each edited case's record keeps the unedited model's texts beside
/// the edited ones (the same prompts and seeds: the texts differ only by the edit), and the
/// report's worst cases show both, with the case's paraphrase and neighbourhood prompts.
#[test]
fn pre_generation_texts_are_kept_and_reported_beside_the_edited_ones() {
    let tok = tokenizer();
    let dir = tempfile::tempdir().unwrap();
    let cases = compact_cases(dir.path());
    let mut m = model(Architecture::Llama, &tok, Kind::Float);
    let mut editor = small_ft();
    let options = RunOptions {
        generation_length: 16,
        pre_generation: true,
        ..RunOptions::default()
    };
    let out = dir.path().join("pre");
    let (run, done) = RunDir::open(&out, &settings("ft"), (0, 1), false).unwrap();
    run_cases(
        &mut m,
        &tok,
        Some(&mut editor),
        &cases,
        &done,
        &options,
        &run,
        &mut progress::ignore,
    )
    .unwrap();
    let (settings, records) = read_run(&out).unwrap();
    for r in &records {
        let before = r.pre_generation.as_ref().expect("unedited texts");
        let after = r.generation.as_ref().expect("edited texts");
        assert_eq!(before.seed, after.seed);
        assert_eq!(before.texts.len(), after.texts.len());
        assert!(
            r.pre.ge.is_some(),
            "the unedited GE comes from the same texts"
        );
    }
    let summary = counterfact::summarize_run(&settings, &records, Default::default());
    let html = counterfact::report::report_html(&counterfact::report::Report {
        title: "pre-generation",
        details: &[],
        summaries: &[&summary],
        figures: &[],
        records: &records,
        worst: 3,
        cases: &cases,
    });
    let esc = counterfact::report::escape;
    for (c, r) in cases.iter().zip(&records) {
        assert!(html.contains(&format!("id=\"case-{}-details\"", c.case_id)));
        assert!(html.contains(&esc(&c.paraphrase_prompts[0])), "{html}");
        assert!(html.contains(&esc(&c.neighborhood[0].prompt)), "{html}");
        let first_before = &r.pre_generation.as_ref().unwrap().texts[0];
        assert!(html.contains(&esc(first_before)), "{first_before}");
    }
    assert!(html.contains(">generated before the edit</th>"));
    assert!(!html.contains("not generated in this run"));
}
