//! zsRE evaluation on tiny random models (hermetic): the record schema and its bad records,
//! token-level top-1 accuracy batched against the one-pass-per-item oracle, the metric
//! formulas, and a run whose summary and reports carry efficacy, paraphrase, specificity.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::{Path, PathBuf};

use counterfact::report::report_html;
use counterfact::{
    load_cases, markdown_table, read_run, run_cases, score_cases, score_items, score_items_naive,
    summarize, summarize_run, BatchLimits, Bootstrap, CaseKind, CaseTop1, Error, RunDir,
    RunOptions, RunSettings, ScoreItem, TokenHits,
};
use gpt_core::progress;
use gpt_core::random::tiny_config;
use gpt_core::tch::{Device, Kind, Tensor};
use gpt_core::{
    load_hf_tokenizer, target_tokens, Architecture, EditableModel, ForwardOptions, HookableModel,
    Layer, NoHooks, RandomInit, TokenBatch, Tokenizer, Transformer, WeightId,
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
    // Room for the NQ question and its answer.
    c.n_ctx = 128;
    Transformer::random(&c, RandomInit { seed: 11, std: 0.5 }, Device::Cpu, kind).unwrap()
}

fn write(dir: &Path, name: &str, value: &serde_json::Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_vec(value).unwrap()).unwrap();
    p
}

/// A record in the MEND evaluation split's shape.
fn zsre(subject: &str, alt: &str, truth: &str) -> serde_json::Value {
    json!({
        "subject": subject,
        "src": format!("What university did {subject} attend?"),
        "pred": "Trinity College",
        "rephrase": format!("Which university did {subject} go to?"),
        "alt": alt,
        "answers": [truth],
        "loc": "nq question: who played desmond doss father in hacksaw ridge",
        "loc_ans": "Hugo Weaving",
        "cond": format!("Trinity College >> {alt} || What university did {subject} attend?"),
    })
}

fn zsre_file(dir: &Path) -> PathBuf {
    write(
        dir,
        "zsre.json",
        &json!([
            zsre(
                "Watts Humphrey",
                "University of Michigan",
                "Illinois Institute"
            ),
            zsre("Denny Herzig", " Harvard", "Yale"),
            zsre("Ada Lovelace", "Oxford", "Cambridge"),
        ]),
    )
}

#[test]
fn zsre_records_load_as_rome_reads_them_and_bad_ones_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cases = load_cases(&zsre_file(dir.path()), false).unwrap().cases;
    assert_eq!(cases.len(), 3);
    let c = &cases[0];
    assert_eq!(c.kind, CaseKind::Zsre);
    assert!(c.has_edit());
    // The id is the record's index; the prompt is `src` with the subject as `{}`.
    assert_eq!(c.case_id, 0);
    assert_eq!(c.request.prompt, "What university did {} attend?");
    assert_eq!(c.request.subject, "Watts Humphrey");
    assert_eq!(c.request.target, "University of Michigan");
    assert_eq!(c.target_true, "Illinois Institute");
    assert_eq!(
        c.paraphrase_prompts,
        ["Which university did Watts Humphrey go to?"]
    );
    assert_eq!(
        c.neighborhood[0].prompt,
        "nq question: who played desmond doss father in hacksaw ridge?"
    );
    assert_eq!(c.neighborhood[0].true_target, "Hugo Weaving");
    assert!(c.generation_prompts.is_empty() && c.relation_id.is_none());
    // A leading space of `alt` (21 records of the MEND split) is dropped.
    assert_eq!(
        (cases[1].case_id, cases[1].request.target.as_str()),
        (1, "Harvard")
    );

    // Bad records: named by index and field, never a panic; skipped with a count.
    let mut no_subject = zsre("Ada Lovelace", "Oxford", "Cambridge");
    no_subject["src"] = json!("Where did she study?");
    let empty_alt = zsre("Ada Lovelace", " ", "Cambridge");
    let mut trivial = zsre("Ada Lovelace", "Cambridge", "Oxford");
    trivial["answers"] = json!(["Oxford", "Cambridge"]);
    let mut no_answers = zsre("Ada Lovelace", "Oxford", "Cambridge");
    no_answers["answers"] = json!([]);
    let mut answers_text = zsre("Ada Lovelace", "Oxford", "Cambridge");
    answers_text["answers"] = json!("Cambridge");
    let mut no_loc_ans = zsre("Ada Lovelace", "Oxford", "Cambridge");
    no_loc_ans.as_object_mut().unwrap().remove("loc_ans");
    let mut rephrase_number = zsre("Ada Lovelace", "Oxford", "Cambridge");
    rephrase_number["rephrase"] = json!(3);
    let mut two_marks = zsre("Ada Lovelace", "Oxford", "Cambridge");
    two_marks["src"] = json!("What {} university did Ada Lovelace attend?");
    let list = json!([
        zsre("Watts Humphrey", "Michigan", "Illinois"),
        no_subject,
        empty_alt,
        trivial,
        no_answers,
        answers_text,
        no_loc_ans,
        rephrase_number,
        two_marks,
    ]);
    let path = write(dir.path(), "bad.json", &list);
    match load_cases(&path, false).unwrap_err() {
        Error::Record { index, field, .. } => assert_eq!((index, field.as_str()), (1, "src")),
        e => panic!("{e}"),
    }
    let loaded = load_cases(&path, true).unwrap();
    assert_eq!(loaded.cases.len(), 1);
    let named: Vec<(usize, String)> = loaded
        .skipped
        .iter()
        .map(|e| match e {
            Error::Record { index, field, .. } => (*index, field.clone()),
            e => panic!("{e}"),
        })
        .collect();
    let expected = [
        (1, "src"),
        (2, "alt"),
        (3, "alt"),
        (4, "answers"),
        (5, "answers"),
        (6, "loc_ans"),
        (7, "rephrase"),
        (8, "src"),
    ];
    assert_eq!(
        named,
        expected.map(|(i, f)| (i, f.to_string())).to_vec(),
        "{:?}",
        loaded.skipped
    );
    let trivial = loaded.skipped[2].to_string();
    assert!(
        trivial.contains("answers[1]") && trivial.contains("change nothing"),
        "{trivial}"
    );

    // zsRE and CounterFact records in one file: refused like known facts among edit cases.
    let counterfact = json!({
        "case_id": 0,
        "prompt": "The Eiffel Tower is located in the city of",
        "subject": "The Eiffel Tower",
        "target_new": "Rome",
        "ground_truth": "Paris",
        "rephrase_prompt": "Where is The Eiffel Tower? It is in",
        "locality_prompt": "The Louvre is located in the city of",
        "locality_ground_truth": "Paris",
    });
    for (name, list, kinds) in [
        (
            "mixed1.json",
            json!([zsre("Ada Lovelace", "Oxford", "Cambridge"), counterfact]),
            ["an edit case", "a zsRE record"],
        ),
        (
            "mixed2.json",
            json!([counterfact, zsre("Ada Lovelace", "Oxford", "Cambridge")]),
            ["a zsRE record", "an edit case"],
        ),
    ] {
        let e = load_cases(&write(dir.path(), name, &list), false).unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("record 1")
                && m.contains(&format!(
                    "{} in a file whose record 0 is {}",
                    kinds[0], kinds[1]
                ))
                && m.contains("separate files"),
            "{m}"
        );
    }
    // A record of no known schema names the zsRE fields too.
    let e = load_cases(
        &write(dir.path(), "none.json", &json!([{"src": "x"}])),
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("zsRE") && e.contains("record 0"), "{e}");
}

/// The greedy continuation of `prompt` for `n` tokens, one full pass per token.
fn greedy(m: &Transformer, prompt: &[i64], n: usize) -> Vec<i64> {
    let mut ids = prompt.to_vec();
    for _ in 0..n {
        let batch = TokenBatch::single(&ids, Device::Cpu).unwrap();
        let logits = m
            .forward_with(&batch, ForwardOptions::all(), &mut NoHooks)
            .unwrap()
            .logits()
            .unwrap();
        let next = logits
            .select(0, 0)
            .select(0, ids.len() as i64 - 1)
            .argmax(-1, false)
            .int64_value(&[]);
        ids.push(next);
    }
    ids[prompt.len()..].to_vec()
}

#[test]
fn batched_top1_hits_equal_one_pass_per_item() {
    let tok = tokenizer();
    for arch in Architecture::ALL {
        let m = model(arch, &tok, Kind::Double);
        let prompt = |p: &str| tok.encode(p).unwrap().ids;
        let mut items: Vec<ScoreItem> = [
            ("What university did Watts Humphrey attend?", " Michigan"),
            (
                "nq question: who played desmond doss father?",
                " Hugo Weaving",
            ),
            ("A", " B"),
        ]
        .iter()
        .map(|(p, t)| ScoreItem {
            prompt: prompt(p),
            target: tok.encode(t).unwrap().ids,
        })
        .collect();
        // The model's own greedy answers: every token a hit; with the last token changed,
        // every token but the last (earlier positions do not see it).
        let p = prompt("Which university did Ada Lovelace go to?");
        let answer = greedy(&m, &p, 4);
        let mut wrong = answer.clone();
        wrong[3] = (answer[3] + 1) % tok.vocab_size() as i64;
        items.push(ScoreItem {
            prompt: p.clone(),
            target: answer,
        });
        items.push(ScoreItem {
            prompt: p,
            target: wrong,
        });
        let naive = score_items_naive(&m, &items).unwrap();
        let limits = BatchLimits {
            rows: 2,
            tokens: 24,
        };
        let fast = score_items(&m, &items, limits).unwrap();
        for (a, b) in fast.iter().zip(&naive) {
            assert_eq!(a.top1_hits, b.top1_hits, "{arch:?}");
            assert!((a.mean_nll - b.mean_nll).abs() <= 1e-9, "{arch:?}");
            assert_eq!(a.first_token_top1, b.first_token_top1);
        }
        assert_eq!((naive[3].top1_hits, naive[4].top1_hits), (4, 3), "{arch:?}");
        assert!(naive.iter().all(|s| s.top1_hits <= 4));
    }
}

#[test]
fn zsre_metric_formulas() {
    let h = |hits, tokens| TokenHits { hits, tokens };
    let t = CaseTop1 {
        rewrite: vec![h(3, 4)],
        paraphrase: vec![h(1, 2), h(0, 3)],
        neighborhood: vec![],
    };
    let m = t.metrics();
    assert_eq!(m.efficacy, Some(0.75));
    // Hits over the tokens of all paraphrases together (ROME's mean of the concatenated
    // per-token results), not the mean of per-prompt accuracies.
    assert_eq!(m.paraphrase, Some(0.2));
    assert_eq!(m.specificity, None);
    assert_eq!(m.es, None);
    assert_eq!(m.top1.as_ref(), Some(&t));
    // Cases without zsRE results keep their serialised form: no new keys.
    let plain = serde_json::to_value(counterfact::CaseMetrics::default()).unwrap();
    for key in ["efficacy", "paraphrase", "specificity", "top1"] {
        assert!(plain.get(key).is_none(), "{key}");
    }

    // Case means with intervals; no S (it needs ES, PS, NS).
    let a = CaseTop1 {
        rewrite: vec![h(1, 1)],
        paraphrase: vec![h(1, 2)],
        neighborhood: vec![h(0, 2)],
    }
    .metrics();
    let b = CaseTop1 {
        rewrite: vec![h(0, 3)],
        paraphrase: vec![h(0, 1)],
        neighborhood: vec![h(1, 2)],
    }
    .metrics();
    let table = summarize(&[&a, &b], Bootstrap::default());
    assert_eq!(table["efficacy"].mean, 0.5);
    assert_eq!(table["paraphrase"].mean, 0.25);
    assert_eq!(table["specificity"].mean, 0.25);
    assert!(table["efficacy"].lo < 0.5 && table["efficacy"].hi > 0.5);
    assert!(!table.contains_key("S") && !table.contains_key("ES"));
}

#[test]
fn zsre_scores_are_the_oracle_token_accuracies() {
    let tok = tokenizer();
    let dir = tempfile::tempdir().unwrap();
    let cases = load_cases(&zsre_file(dir.path()), false).unwrap().cases;
    let m = model(Architecture::Llama, &tok, Kind::Double);
    let refs: Vec<_> = cases.iter().collect();
    let scored = score_cases(&m, &tok, &refs, BatchLimits::default()).unwrap();
    for (case, metrics) in cases.iter().zip(&scored) {
        let new = target_tokens(&tok, &case.request.target).unwrap();
        let loc = target_tokens(&tok, &case.neighborhood[0].true_target).unwrap();
        let item = |p: &str, target: &[i64]| ScoreItem {
            prompt: tok.encode(p).unwrap().ids,
            target: target.to_vec(),
        };
        let items = [
            item(&case.request.filled(), &new),
            item(&case.paraphrase_prompts[0], &new),
            item(&case.neighborhood[0].prompt, &loc),
        ];
        let oracle = score_items_naive(&m, &items).unwrap();
        let acc = |i: usize| oracle[i].top1_hits as f64 / items[i].target.len() as f64;
        assert_eq!(metrics.efficacy, Some(acc(0)), "case {}", case.case_id);
        assert_eq!(metrics.paraphrase, Some(acc(1)));
        assert_eq!(metrics.specificity, Some(acc(2)));
        let top1 = metrics.top1.as_ref().unwrap();
        assert_eq!(top1.rewrite[0].tokens, new.len());
        assert_eq!(top1.neighborhood[0].tokens, loc.len());
        assert!(metrics.es.is_none() && metrics.nll.rewrite.is_empty());
    }
}

fn settings(method: &str) -> RunSettings {
    RunSettings {
        method: method.into(),
        model: "tiny".into(),
        model_fingerprint: "f".into(),
        cases: "zsre.json".into(),
        cases_fingerprint: "z".into(),
        limit: None,
        batch: 1,
        generation: true,
        seed: 1,
        hparams: serde_json::Value::Null,
        sequential: None,
    }
}

#[test]
fn zsre_runs_summarise_efficacy_paraphrase_and_specificity() {
    let tok = tokenizer();
    let dir = tempfile::tempdir().unwrap();
    let cases = load_cases(&zsre_file(dir.path()), false).unwrap().cases;
    let mut m = model(Architecture::Llama, &tok, Kind::Float);
    let options = RunOptions {
        generation_length: 16,
        ..RunOptions::default()
    };
    let snapshot: Vec<Tensor> = (0..3)
        .map(|l| m.weight(WeightId::MlpOut(Layer(l))).unwrap().copy())
        .collect();
    let mut editor = rome::FtEditor {
        hparams: rome::FtHparams {
            norm_constraint: 0.05,
            lr: 0.05,
            num_steps: 5,
            ..rome::FtHparams::constrained(1)
        },
    };
    for (method, editor) in [
        ("none", None),
        ("ft", Some(&mut editor as &mut dyn gpt_core::Editor)),
    ] {
        let out = dir.path().join(method);
        let (run, done) = RunDir::open(&out, &settings(method), (0, 1), false).unwrap();
        let outcome = run_cases(
            &mut m,
            &tok,
            editor,
            &cases,
            &done,
            &options,
            &run,
            &mut progress::ignore,
        )
        .unwrap();
        assert_eq!(outcome.finished, 3);
        for (l, w) in snapshot.iter().enumerate() {
            assert!(
                m.weight(WeightId::MlpOut(Layer(l))).unwrap().equal(w),
                "layer {l} changed"
            );
        }
        let (s, records) = read_run(&out).unwrap();
        let r = &records[0];
        // zsRE has no fluency test: nothing generated.
        assert!(r.generation.is_none() && r.pre.ge.is_none());
        assert!(r.pre.efficacy.is_some() && r.pre.top1.is_some());
        assert_eq!(r.post.is_some(), method == "ft");
        let summary = summarize_run(&s, &records, Bootstrap::default());
        assert!(summary.has_zsre());
        assert!(summary.unavailable.is_empty(), "{:?}", summary.unavailable);
        let json = serde_json::to_value(&summary).unwrap();
        for table in ["metrics", "pre"] {
            for metric in ["efficacy", "paraphrase", "specificity"] {
                let i = &json[table][metric];
                let (mean, lo, hi) = (
                    i["mean"].as_f64().unwrap(),
                    i["lo"].as_f64().unwrap(),
                    i["hi"].as_f64().unwrap(),
                );
                assert!(
                    (0.0..=1.0).contains(&mean) && lo <= mean + 1e-12 && mean <= hi + 1e-12,
                    "{table}.{metric}: {i}"
                );
            }
            assert!(json[table].get("ES").is_none() && json[table].get("GE").is_none());
        }
        let md = markdown_table(&[&summary], true);
        assert!(
            md.starts_with(
                "| run | n | Efficacy | Paraphrase | Specificity | ES_gen | PS_gen | s/case |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| unedited | 3 |") && md.contains("teacher forcing"),
            "{md}"
        );
        assert!(
            !md.contains("| ES |") && !md.contains("RS is not available"),
            "{md}"
        );
        let html = report_html(&counterfact::report::Report {
            title: "zsRE",
            details: &[],
            summaries: &[&summary],
            figures: &[],
            records: &records,
            worst: 2,
            cases: &cases,
        });
        for heading in [
            ">Efficacy</th>",
            ">Paraphrase</th>",
            ">Specificity</th>",
            "<dt>Efficacy</dt>",
            "name=\"viewport\"",
        ] {
            assert!(html.contains(heading), "{heading}");
        }
        assert!(!html.contains(">ES</th>") && !html.contains("<dt>ES</dt>"));
        assert_eq!(
            html.contains("worst cases (lowest Efficacy after the edit)"),
            method == "ft"
        );
        if method == "ft" {
            // Each listed case in detail: its rephrased and unrelated questions, its record.
            let shown: Vec<_> = cases
                .iter()
                .filter(|c| html.contains(&format!("id=\"case-{}-details\"", c.case_id)))
                .collect();
            assert_eq!(shown.len(), 2, "{html}");
            for c in shown {
                let esc = counterfact::report::escape;
                assert!(html.contains(&esc(&c.paraphrase_prompts[0])), "{html}");
                assert!(html.contains(&esc(&c.neighborhood[0].prompt)), "{html}");
                assert!(html.contains(&format!("href=\"#case-{}-details\"", c.case_id)));
            }
            assert!(html.contains("<pre>{"), "the records as JSON");
        }
    }
}
