//! Fast vs naive head scan on the bundled model, measured in one run, and the wall time of
//! a full scan of one task.
//!
//! ```text
//! cargo run --release --example fv_speed -p factscope-function-vectors -- \
//!     [TASK.json (default ../shared/data/function_vectors/antonym.json)] [MODEL]
//! ```
//!
//! Prints: the seconds of the naive schedule (one full pass per head) and of the fast one
//! on the same shuffled-label prompt, their ratio and largest CIE difference; then the
//! seconds of the mean activations (100 prompts) and of the full fast scan (25 prompts ×
//! every head).

#![allow(clippy::disallowed_methods, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Instant;

use function_vectors::extract::draw_prompts;
use function_vectors::rng::RandomState;
use function_vectors::{
    head_scan, mean_head_activations, scan_prompt, ExtractSettings, PromptBuilder, Schedule,
    Splits, Task,
};
use gpt_core::{load_model, HookableModel, LoadOptions};

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut args = std::env::args().skip(1);
    let task_path = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/data/function_vectors/antonym.json"));
    let model_path = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    let m = load_model(&model_path, LoadOptions::default())?;
    let c = m.model.config();
    let task = Task::load(&task_path)?;
    let builder = PromptBuilder::new(&m.tokenizer, c, &task)?;
    let s = ExtractSettings::default();
    let splits = Splits::new(task.len(), s.seed);
    println!(
        "model {} ({} layers × {} query heads, {} kv heads), task {} ({} pairs), {} threads",
        model_path.display(),
        c.n_layers,
        c.n_heads,
        c.n_kv_heads,
        task.name,
        task.len(),
        gpt_core::tch::get_num_threads()
    );

    let mut rng = RandomState::new(s.seed.wrapping_add(1));
    let clean = draw_prompts(
        &builder,
        &splits.train,
        &splits.valid,
        s.shots,
        s.mean_trials,
        false,
        &mut rng,
    )?;
    let t = Instant::now();
    let mean = mean_head_activations(&m.model, &clean, &mut gpt_core::progress::ignore)?;
    let t_mean = t.elapsed().as_secs_f64();

    let mut rng = RandomState::new(s.seed.wrapping_add(2));
    let corrupted = draw_prompts(
        &builder,
        &splits.train,
        &splits.valid,
        s.shots,
        s.cie_trials,
        true,
        &mut rng,
    )?;
    let p = &corrupted[0];
    println!(
        "one shuffled-label prompt of {} tokens, {} heads",
        p.ids.len(),
        c.n_layers * c.n_heads
    );
    let t = Instant::now();
    let (_, naive) = scan_prompt(&m.model, p, &mean, Schedule::Naive, 1)?;
    let t_naive = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let (_, fast) = scan_prompt(&m.model, p, &mean, Schedule::Fast, s.max_rows)?;
    let t_fast = t.elapsed().as_secs_f64();
    let max_diff = fast
        .iter()
        .flatten()
        .zip(naive.iter().flatten())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    println!("naive (one full pass per head): {t_naive:.2} s");
    println!("fast (last position from each head's layer up, batched): {t_fast:.3} s");
    println!(
        "speed-up: {:.1}x; max |CIE fast - naive| = {max_diff:.2e}",
        t_naive / t_fast
    );

    let t = Instant::now();
    let scan = head_scan(
        &m.model,
        &corrupted,
        &mean,
        Schedule::Fast,
        s.max_rows,
        &mut gpt_core::progress::ignore,
    )?;
    let t_scan = t.elapsed().as_secs_f64();
    println!(
        "full scan of {}: mean activations ({} prompts) {t_mean:.1} s + fast head scan ({} prompts × {} heads) {t_scan:.1} s = {:.1} s",
        task.name,
        s.mean_trials,
        scan.cie.len(),
        c.n_layers * c.n_heads,
        t_mean + t_scan
    );
    println!(
        "naive estimate of the same scan: {:.0} s",
        t_naive * s.cie_trials as f64
    );
    Ok(())
}
