//! Sequential editing on tiny random models (hermetic): edits kept from batch to batch, the
//! curve, a stopped run resumed bit for bit (weights, records, editor state), the model
//! restored on return, and the retention probe against its oracle.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use counterfact::sequential::{state_dir, EDITS_STAGE};
use counterfact::{
    apply_checkpoint, load_cases, read_run, run_sequential, score_cases, score_items_naive,
    summarize_dir, BatchLimits, Bootstrap, EditCase, RetentionProbe, RunDir, RunOptions,
    RunSettings, ScoreItem, SequentialOptions, SequentialSettings, SequentialState,
};
use gpt_core::progress::{self, Progress};
use gpt_core::random::tiny_config;
use gpt_core::tch::{Device, Kind, Tensor};
use gpt_core::{
    load_hf_tokenizer, undo_all, Architecture, EditModel, EditableModel, Editor, Layer, Method,
    RandomInit, RewriteRequest, Tokenizer, Transformer, WeightDelta, WeightId,
};
use serde_json::json;

fn tokenizer() -> Tokenizer {
    load_hf_tokenizer(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-gpt2"))
        .unwrap()
}

fn model(tok: &Tokenizer) -> Transformer {
    let mut c = tiny_config(Architecture::Llama);
    c.vocab_size = tok.vocab_size();
    c.n_layers = 3;
    Transformer::random(
        &c,
        RandomInit { seed: 11, std: 0.5 },
        Device::Cpu,
        Kind::Float,
    )
    .unwrap()
}

fn write(dir: &Path, name: &str, value: &serde_json::Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_vec(value).unwrap()).unwrap();
    p
}

fn cases(dir: &Path) -> Vec<EditCase> {
    let case = |id: u64, subject: &str, new: &str, truth: &str| {
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
    };
    let records = json!([
        case(0, "The Eiffel Tower", "Rome", "Paris"),
        case(1, "The Colosseum", "Paris", "Rome"),
        case(2, "Big Ben", "Berlin", "London"),
        case(3, "The Brandenburg Gate", "Madrid", "Berlin"),
        case(4, "The Prado", "London", "Madrid"),
    ]);
    load_cases(&write(dir, "cases.json", &records), false)
        .unwrap()
        .cases
}

fn settings() -> RunSettings {
    RunSettings {
        method: "ft".into(),
        model: "tiny".into(),
        model_fingerprint: "f".into(),
        cases: "cases.json".into(),
        cases_fingerprint: "c".into(),
        limit: None,
        batch: 2,
        generation: true,
        seed: 1,
        hparams: serde_json::Value::Null,
        sequential: Some(SequentialSettings {
            checkpoint_every: Some(2),
            retention: None,
        }),
    }
}

/// FT-L with a counter of its calls kept as editor state (saved and loaded with the run), so
/// the test sees that a resumed run's editor continues where it stopped.
struct CountingFt {
    inner: rome::FtEditor,
    calls: usize,
}

impl Editor for CountingFt {
    fn method(&self) -> Method {
        Method::Ft
    }
    fn joint(&self) -> bool {
        true
    }
    fn compute(
        &mut self,
        model: &mut dyn EditModel,
        tokenizer: &Tokenizer,
        requests: &[RewriteRequest],
        progress: &mut gpt_core::progress::ProgressFn<'_>,
    ) -> gpt_core::Result<Vec<WeightDelta>> {
        self.calls += 1;
        self.inner.compute(model, tokenizer, requests, progress)
    }
    fn save_state(&self, dir: &Path) -> gpt_core::Result<()> {
        std::fs::write(dir.join("calls"), self.calls.to_string()).unwrap();
        Ok(())
    }
    fn load_state(&mut self, dir: &Path) -> gpt_core::Result<()> {
        self.calls = std::fs::read_to_string(dir.join("calls"))
            .unwrap()
            .parse()
            .unwrap();
        Ok(())
    }
}

fn editor() -> CountingFt {
    CountingFt {
        inner: rome::FtEditor {
            hparams: rome::FtHparams {
                norm_constraint: 0.05,
                lr: 0.05,
                num_steps: 5,
                ..rome::FtHparams::constrained(1)
            },
        },
        calls: 0,
    }
}

fn options() -> SequentialOptions {
    SequentialOptions {
        batch: 2,
        checkpoint_every: Some(2),
        run: RunOptions {
            generation_length: 16,
            ..RunOptions::default()
        },
    }
}

fn weights(m: &Transformer) -> Vec<Tensor> {
    (0..3)
        .map(|l| m.weight(WeightId::MlpOut(Layer(l))).unwrap().copy())
        .collect()
}

/// One call of [`run_sequential`] on the run folder `path` (resuming what is there).
fn go(
    m: &mut Transformer,
    tok: &Tokenizer,
    editor: &mut CountingFt,
    cases: &[EditCase],
    path: &Path,
    options: &SequentialOptions,
    progress: &mut gpt_core::progress::ProgressFn<'_>,
) -> counterfact::Result<counterfact::SequentialOutcome> {
    let (run, done) = RunDir::open(path, &settings(), (0, 1), path.exists()).unwrap();
    run_sequential(m, tok, editor, cases, &done, options, None, &run, progress)
}

#[test]
fn sequential_runs_keep_edits_resume_bit_exactly_and_restore_the_model() {
    let tok = tokenizer();
    let dir = tempfile::tempdir().unwrap();
    let cases = cases(dir.path());
    let mut m = model(&tok);
    let snapshot = weights(&m);

    // One uninterrupted run: 5 cases in batches of 2 (3 edit calls), a point every 2 edits.
    let full = dir.path().join("full");
    let mut ed = editor();
    let out = go(
        &mut m,
        &tok,
        &mut ed,
        &cases,
        &full,
        &options(),
        &mut progress::ignore,
    )
    .unwrap();
    assert_eq!((out.batches, out.edits, out.recorded), (3, 5, 5));
    assert_eq!(ed.calls, 3);
    for (l, w) in snapshot.iter().enumerate() {
        assert!(
            m.weight(WeightId::MlpOut(Layer(l))).unwrap().equal(w),
            "layer {l} is not restored"
        );
    }
    let state = SequentialState::read(&full).unwrap().unwrap();
    assert_eq!(state.edited, vec![0, 1, 2, 3, 4]);
    assert_eq!(state.weights, vec![WeightId::MlpOut(Layer(1))]);
    assert_eq!(
        state.curve.iter().map(|p| p.edits).collect::<Vec<_>>(),
        vec![0, 2, 4, 5]
    );
    assert!(state.curve.iter().all(|p| p.metrics.contains_key("ES")));

    // The records' post scores are those of the model holding every edit (the checkpoint).
    let (_, records) = read_run(&full).unwrap();
    assert_eq!(records.len(), 5);
    let undos = apply_checkpoint(&mut m, &full).unwrap();
    assert!(!m
        .weight(WeightId::MlpOut(Layer(1)))
        .unwrap()
        .equal(&snapshot[1]));
    let all: Vec<&EditCase> = cases.iter().collect();
    let post = score_cases(&m, &tok, &all, BatchLimits::default()).unwrap();
    undo_all(&mut m, &undos).unwrap();
    for (r, p) in records.iter().zip(&post) {
        let rp = r.post.as_ref().unwrap();
        assert_eq!(rp.nll, p.nll, "case {}", r.case_id);
        assert!(rp.ge.is_some());
    }
    let (summary, _) = summarize_dir(&full, Bootstrap::default()).unwrap();
    let json = serde_json::to_value(&summary).unwrap();
    assert_eq!(json["sequential"]["edits"], 5);
    assert_eq!(json["sequential"]["batch"], 2);
    assert_eq!(json["curve"][0]["edits"], 0);
    assert!(json["curve"][3]["ES"].is_number());
    assert!(json.get("retention").is_none(), "no probe, no retention");

    // The same run stopped after its first batch, then resumed with a fresh editor.
    let part = dir.path().join("part");
    let mut ed = editor();
    let out = go(
        &mut m,
        &tok,
        &mut ed,
        &cases,
        &part,
        &options(),
        &mut |p: &Progress| {
            if p.stage == EDITS_STAGE && p.done >= 1 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    )
    .unwrap();
    assert!(out.stopped);
    assert_eq!((out.batches, out.edits, out.recorded), (1, 2, 0));
    for (l, w) in snapshot.iter().enumerate() {
        assert!(m.weight(WeightId::MlpOut(Layer(l))).unwrap().equal(w));
    }
    // Another batch size is refused, naming the state.
    let e = go(
        &mut m,
        &tok,
        &mut editor(),
        &cases,
        &part,
        &SequentialOptions {
            batch: 3,
            ..options()
        },
        &mut progress::ignore,
    )
    .unwrap_err();
    assert!(e.to_string().contains("2 case(s) at a time"), "{e}");
    let mut ed = editor();
    let out = go(
        &mut m,
        &tok,
        &mut ed,
        &cases,
        &part,
        &options(),
        &mut progress::ignore,
    )
    .unwrap();
    assert_eq!((out.batches, out.edits, out.recorded), (2, 5, 5));
    assert_eq!(ed.calls, 3, "the editor's state was not restored");
    let (_, resumed) = read_run(&part).unwrap();
    for (a, b) in resumed.iter().zip(&records) {
        assert_eq!(a.case_id, b.case_id);
        assert_eq!(a.pre, b.pre, "case {}", a.case_id);
        assert_eq!(a.post, b.post, "case {}", a.case_id);
        assert_eq!(a.generation, b.generation);
    }
    let deltas = |run: &Path| {
        let s = SequentialState::read(run).unwrap().unwrap();
        std::fs::read(state_dir(run).join(format!("deltas-{}.safetensors", s.checkpoint.unwrap())))
            .unwrap()
    };
    assert_eq!(deltas(&full), deltas(&part), "checkpoints differ");
    // Only the last checkpoint is kept.
    let names: BTreeSet<String> = std::fs::read_dir(state_dir(&part))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "state.json".to_string(),
            "deltas-b3.safetensors".into(),
            "editor-b3".into()
        ])
    );
    // A finished run called again records nothing and edits nothing.
    let mut ed = editor();
    let out = go(
        &mut m,
        &tok,
        &mut ed,
        &cases,
        &part,
        &options(),
        &mut progress::ignore,
    )
    .unwrap();
    assert_eq!((out.batches, out.recorded, ed.calls), (0, 0, 3));
}

#[test]
fn retention_is_perplexity_and_known_facts_accuracy() {
    let tok = tokenizer();
    let dir = tempfile::tempdir().unwrap();
    let m = model(&tok);
    let known = json!([
        {"known_id": 0, "subject": "Paris", "attribute": "France", "template": "{} is in"},
        {"known_id": 1, "subject": "Rome", "attribute": "Italy", "template": "{} is in"},
        {"known_id": 2, "subject": "Berlin", "attribute": "Germany", "template": "{} is in"}
    ]);
    let known = load_cases(&write(dir.path(), "k.json", &known), false)
        .unwrap()
        .cases;
    let docs = vec![
        "The river flows through the old town and into the sea.".to_string(),
        "A second document, short.".to_string(),
    ];
    let probe = RetentionProbe::new(&tok, &docs, 1000, 5, known.clone()).unwrap();
    // The oracle: every window of up to 5 tokens of each document, scored pass by pass.
    let mut items = Vec::new();
    for d in &docs {
        for w in tok
            .encode(d)
            .unwrap()
            .ids
            .chunks(5)
            .filter(|w| w.len() >= 2)
        {
            items.push(ScoreItem {
                prompt: w[..1].to_vec(),
                target: w[1..].to_vec(),
            });
        }
    }
    let naive = score_items_naive(&m, &items).unwrap();
    let tokens: usize = items.iter().map(|i| i.target.len()).sum();
    let nll: f64 = naive
        .iter()
        .zip(&items)
        .map(|(s, i)| s.mean_nll * i.target.len() as f64)
        .sum();
    assert_eq!(probe.text_tokens(), tokens);
    let scores = probe.measure(&m, &tok, BatchLimits::default()).unwrap();
    let ppl = scores.perplexity.unwrap();
    assert!(
        (ppl.ln() - nll / tokens as f64).abs() < 1e-4,
        "{ppl} vs {}",
        (nll / tokens as f64).exp()
    );
    let all: Vec<&EditCase> = known.iter().collect();
    let k = score_cases(&m, &tok, &all, BatchLimits::default()).unwrap();
    let expected = k.iter().filter_map(|c| c.known).sum::<f64>() / 3.0;
    assert_eq!(scores.known_facts, Some(expected));
    // A token budget cuts the text; edited subjects leave the known facts.
    let probe = RetentionProbe::new(&tok, &docs, 7, 5, known.clone())
        .unwrap()
        .without_subjects(&BTreeSet::from(["Rome".to_string()]));
    assert_eq!(probe.text_tokens(), 7 - 2);
    assert_eq!(probe.known_facts(), 2);
    // Bad settings are named.
    let e = RetentionProbe::new(&tok, &docs, 100, 1, Vec::new()).unwrap_err();
    assert!(e.to_string().contains("at least 2"), "{e}");
    let n_ctx = gpt_core::HookableModel::config(&m).n_ctx;
    let long_doc = vec!["the sea and the town ".repeat(n_ctx)];
    let long = RetentionProbe::new(&tok, &long_doc, 10 * n_ctx, n_ctx + 1, Vec::new()).unwrap();
    let e = long.measure(&m, &tok, BatchLimits::default()).unwrap_err();
    assert!(e.to_string().contains("context"), "{e}");
}
