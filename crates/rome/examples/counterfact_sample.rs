//! ROME on CounterFact cases of `../shared/data/counterfact_dev.json` (compact schema), one
//! edit at a time with the weights restored after each, on the bundled model with C from
//! `../shared/data/wikitext2_articles.jsonl` (max length 1024): efficacy, paraphrase and
//! neighbourhood success (per-token mean NLL comparisons, as CounterFact's probability
//! tests), before and after, and mean p(new) − p(true).
//!
//! `cargo run --release -p factscope-rome --example counterfact_sample -- [N] [FIRST]`
//! (N cases from index FIRST; defaults 12 and 0; the r-ROME variant with `RROME=1`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

use std::path::Path;
use std::time::Instant;

use gpt_core::tch::{Kind, Tensor};
use gpt_core::{target_tokens, EditableModel, HookableModel, LoadedModel, TokenBatch};
use rome::{
    compute_rome, context_templates, Corpus, KeyStatsRun, RewriteRequest, RomeHparams, RomeVariant,
    Schedule, StatsOptions,
};

/// Mean per-token NLL of `" " + target` after `prompt` (teacher forced).
fn target_nll(m: &LoadedModel, prompt: &str, target: &str) -> anyhow::Result<f64> {
    let _guard = gpt_core::tch::no_grad_guard();
    let p = m.tokenizer.encode(prompt)?.ids;
    let t = target_tokens(&m.tokenizer, target)?;
    let ids: Vec<i64> = p.iter().chain(&t).copied().collect();
    let logits = m
        .model
        .forward(&TokenBatch::single(&ids, m.model.device())?)?;
    let lp = logits.squeeze_dim(0).log_softmax(-1, Kind::Double);
    let mut total = 0.0;
    for (j, &tok) in t.iter().enumerate() {
        total -= lp.double_value(&[(p.len() + j - 1) as i64, tok]);
    }
    Ok(total / t.len() as f64)
}

struct Scores {
    es: bool,
    ps: bool,
    ns: bool,
    em: f64,
    pm: f64,
}

fn score(m: &LoadedModel, case: &serde_json::Value) -> anyhow::Result<Scores> {
    let s = |k: &str| case[k].as_str().unwrap_or_default().to_string();
    let (new, truth) = (s("target_new"), s("ground_truth"));
    let (p_new, p_true) = (
        target_nll(m, &s("prompt"), &new)?,
        target_nll(m, &s("prompt"), &truth)?,
    );
    let (r_new, r_true) = (
        target_nll(m, &s("rephrase_prompt"), &new)?,
        target_nll(m, &s("rephrase_prompt"), &truth)?,
    );
    let (l_new, l_true) = (
        target_nll(m, &s("locality_prompt"), &new)?,
        target_nll(m, &s("locality_prompt"), &s("locality_ground_truth"))?,
    );
    Ok(Scores {
        es: p_new < p_true,
        ps: r_new < r_true,
        ns: l_true < l_new,
        em: (-p_new).exp() - (-p_true).exp(),
        pm: (-r_new).exp() - (-r_true).exp(),
    })
}

fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (n, first) = (
        args.first().copied().unwrap_or(12),
        args.get(1).copied().unwrap_or(0),
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let data = root.join("../shared/data");
    let mut m = gpt_core::load_model(
        &root.join("models/SmolLM2-135M-Instruct.Q4_1.gguf"),
        Default::default(),
    )?;
    let mut hp = RomeHparams::smollm2();
    if std::env::var("RROME").is_ok_and(|v| v == "1") {
        hp.variant = RomeVariant::RRome;
    }
    let t = Instant::now();
    let corpus = Corpus::from_path(&data.join("wikitext2_articles.jsonl"))?;
    let stats = KeyStatsRun::new(
        &m.model,
        &m.tokenizer,
        &corpus,
        &StatsOptions::new(hp.layer),
    )
    .compute()?;
    println!(
        "C of layer {} over {} tokens of {} articles in {:.1} s",
        hp.layer,
        stats.meta.tokens,
        stats.meta.texts,
        t.elapsed().as_secs_f64()
    );
    let c: Tensor = stats.c()?;
    let cases: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(data.join("counterfact_dev.json"))?)?;
    let templates = context_templates(
        &m.model,
        &m.tokenizer,
        &hp.context_template_length_params,
        0,
    )?;
    let (mut pre, mut post) = (Vec::new(), Vec::new());
    let t = Instant::now();
    for case in cases.iter().skip(first).take(n) {
        let subject = case["subject"].as_str().unwrap_or_default();
        let prompt = case["prompt"]
            .as_str()
            .unwrap_or_default()
            .replacen(subject, "{}", 1);
        let request = RewriteRequest::new(
            prompt,
            subject,
            case["target_new"].as_str().unwrap_or_default(),
        )?;
        pre.push(score(&m, case)?);
        let edit = compute_rome(
            &m.model,
            &m.tokenizer,
            &request,
            &hp,
            Some(&c),
            &templates,
            Schedule::Fast,
            &mut gpt_core::progress::ignore,
        )?;
        let undo = m.model.apply(&edit.delta)?;
        post.push(score(&m, case)?);
        m.model.undo(&undo)?;
        let last = post.last().unwrap();
        println!(
            "case {}: {:?} → {:?}: ES {} PS {} NS {}",
            case["case_id"],
            request.filled(),
            request.target,
            last.es,
            last.ps,
            last.ns
        );
    }
    let rate = |v: &[Scores], f: fn(&Scores) -> bool| v.iter().filter(|s| f(s)).count();
    let mean =
        |v: &[Scores], f: fn(&Scores) -> f64| v.iter().map(f).sum::<f64>() / v.len().max(1) as f64;
    for (name, v) in [("unedited", &pre), ("edited", &post)] {
        println!(
            "{name}: efficacy {}/{n}, paraphrase {}/{n}, neighbourhood {}/{n}; mean p(new) − p(true): prompt {:.3}, paraphrase {:.3}",
            rate(v, |s| s.es),
            rate(v, |s| s.ps),
            rate(v, |s| s.ns),
            mean(v, |s| s.em),
            mean(v, |s| s.pm),
        );
    }
    println!(
        "{:.1} s per edit (scoring included), variant {:?}",
        t.elapsed().as_secs_f64() / n.max(1) as f64,
        hp.variant
    );
    Ok(())
}
