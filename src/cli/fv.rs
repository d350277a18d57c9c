//! `factscope fv`: function vectors of in-context-learning tasks (Todd et al. 2024): the
//! head scan, the vector, and its accuracy zero-shot and with shuffled labels.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use function_vectors::file::{self, FvMeta};
use function_vectors::{
    default_layer, evaluate_items, extract, function_vector, mean_grid, model_fingerprint,
    summarize, top_heads, Accuracy, AccuracyTable, EvalOptions, ExtractSettings, Extraction,
    HeadScore, PromptBuilder, Schedule, Splits, Task, TaskAccuracy, HEAD_SCAN_STAGE,
};
use gpt_core::steering::llama_cpp_arch;
use gpt_core::HookableModel;
use viz::Figure;

use super::common::ModelArgs;
use super::progress::ProgressView;

/// Arguments of `factscope fv`.
#[derive(Args, Debug)]
pub struct FvArgs {
    /// A task file: a JSON list of {"input", "output"} pairs. Repeat for several tasks: the
    /// heads are then the top heads of the indirect effect averaged over the tasks.
    #[arg(long = "task", value_name = "FILE", required = true)]
    tasks: Vec<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    /// Number of top heads summed into the vector.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true)]
    heads: usize,
    /// Layer whose output (`blocks.{L}.hook_resid_post`) gets the vector [default: ⌊layers/3⌋]
    #[arg(long, value_name = "L", allow_negative_numbers = true)]
    layer: Option<usize>,
    /// Shuffled-label prompts of the head scan (per task).
    #[arg(long, default_value_t = 25)]
    trials: usize,
    /// Clean prompts averaged for the mean head activations (per task).
    #[arg(long, default_value_t = 100)]
    mean_trials: usize,
    /// Demonstrations per prompt.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true)]
    shots: usize,
    /// Seed of the splits and of every draw (the reference's scripts use 42).
    #[arg(long, default_value_t = 1)]
    seed: u32,
    /// Evaluate at most this many test items per task [default: all].
    #[arg(long, value_name = "N")]
    max_eval: Option<usize>,
    /// Evaluate at the chosen layer only (no layer sweep).
    #[arg(long)]
    no_sweep: bool,
    /// Run the head scan with one full pass per head (the slow oracle).
    #[arg(long)]
    naive: bool,
    /// Folder for heads.{json,svg,png}, fv.safetensors, accuracy.{json,md} and
    /// layer-sweep.{svg,png}.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write into --out even though it holds files factscope did not write (they are kept;
    /// a file with an output's name is still never replaced).
    #[arg(long)]
    force: bool,
    /// Print the accuracy table and the top heads as JSON.
    #[arg(long)]
    json: bool,
    /// Vector arithmetic on lists built from the one --task D (Todd et al. §5): the tasks
    /// "first item, D" (AD), "last item, copied" (BC), "first item, copied" (AC) and "last
    /// item, D" (BD) are extracted with one head set, and v_AD + v_BC − v_AC is evaluated on
    /// BD beside BD's own vector.
    #[arg(long)]
    arithmetic: bool,
    /// Items per list of the --arithmetic tasks.
    #[arg(long, default_value_t = 3, value_name = "N")]
    list_len: usize,
    /// Also write the function vector (at --layer, times --control-vector-scale) as a
    /// llama.cpp control vector (`llama-cli --control-vector FILE`): one --task, a layer
    /// above 0, a new file.
    #[arg(long, value_name = "FILE.gguf")]
    save_control_vector: Option<PathBuf>,
    /// The factor the saved control vector is multiplied by.
    #[arg(long, default_value_t = 1.0, requires = "save_control_vector")]
    control_vector_scale: f64,
}

/// The composed vector's evaluation (`--arithmetic`).
#[derive(serde::Serialize)]
struct ArithmeticReport {
    /// The task the composed vector is evaluated on (BD).
    target: String,
    /// `v_AD + v_BC − v_AC` from these tasks.
    composed_from: [String; 3],
    /// Accuracy on BD's test items with the composed vector (its `+FV` columns; the other
    /// columns equal BD's own).
    accuracy: TaskAccuracy,
}

/// What `--json` prints and `accuracy.json` holds.
#[derive(serde::Serialize)]
struct Report<'a> {
    model: String,
    layer: usize,
    /// Demonstrations per ICL / shuffled prompt (`--shots`).
    shots: usize,
    top_heads: &'a [HeadScore],
    tasks: Vec<TaskReport<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arithmetic: Option<ArithmeticReport>,
}

#[derive(serde::Serialize)]
struct TaskReport<'a> {
    task: &'a str,
    file: &'a Path,
    splits: [usize; 3],
    valid_icl_correct: usize,
    queries_filtered: bool,
    scan_seconds: f64,
    accuracy: &'a TaskAccuracy,
}

fn task_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Runs `factscope fv`.
pub fn run(args: FvArgs) -> anyhow::Result<()> {
    let shots = args.shots;
    run_checked(args).map_err(|e| {
        // The library says a prompt is too long; only here is it known which flag made it so.
        let too_long = e.chain().any(|c| {
            matches!(
                c.downcast_ref::<gpt_core::Error>(),
                Some(gpt_core::Error::ContextOverflow { .. })
            ) || matches!(
                c.downcast_ref::<function_vectors::Error>(),
                Some(function_vectors::Error::Model(
                    gpt_core::Error::ContextOverflow { .. }
                ))
            )
        });
        if too_long {
            e.context(format!(
                "--shots {shots}: prompts of {shots} demonstrations are longer than the model's context; lower --shots"
            ))
        } else {
            e
        }
    })
}

fn run_checked(args: FvArgs) -> anyhow::Result<()> {
    if args.heads == 0 || args.trials == 0 || args.mean_trials == 0 || args.shots == 0 {
        bail!("--heads, --trials, --mean-trials and --shots must be at least 1");
    }
    if args.max_eval == Some(0) {
        bail!("--max-eval must be at least 1");
    }
    // Every task is read and checked before the model runs, so bad input costs nothing.
    let mut tasks = Vec::with_capacity(args.tasks.len());
    for path in &args.tasks {
        let task = Task::load(path)?;
        Splits::new(task.len(), args.seed).check(&task, args.shots)?;
        if !task_name_ok(&task.name) {
            bail!(
                "task file {}: its name {:?} must be letters, digits, '-', '_' or '.'",
                path.display(),
                task.name
            );
        }
        if tasks.iter().any(|t: &Task| t.name == task.name) {
            bail!("task {:?} is given twice ({})", task.name, path.display());
        }
        tasks.push(task);
    }
    if args.arithmetic {
        tasks = arithmetic_tasks(tasks, args.list_len, args.seed)?;
        for task in &tasks {
            Splits::new(task.len(), args.seed).check(task, args.shots)?;
        }
    }
    let loaded = args.model.load()?;
    let model = &loaded.model;
    let c = model.config();
    let layer = args.layer.unwrap_or_else(|| default_layer(c.n_layers));
    if layer >= c.n_layers {
        bail!(
            "--layer {layer} is out of range: the model has {} layers (0..{})",
            c.n_layers,
            c.n_layers - 1
        );
    }
    if let Some(path) = &args.save_control_vector {
        if args.tasks.len() != 1 || args.arithmetic {
            bail!("--save-control-vector writes one vector: give exactly one --task (without --arithmetic)");
        }
        if layer == 0 {
            bail!("--save-control-vector: llama.cpp does not steer layer 0's output; choose --layer 1 or above");
        }
        super::common::check_out_file("--save-control-vector", path, false)?;
    }
    if args.heads > c.n_layers * c.n_heads {
        bail!(
            "--heads {} exceeds the model's {} heads",
            args.heads,
            c.n_layers * c.n_heads
        );
    }
    let builders = tasks
        .iter()
        .map(|t| PromptBuilder::new(&loaded.tokenizer, c, t))
        .collect::<Result<Vec<_>, _>>()?;
    // The one output-folder rule, checked once the settings are known to be valid and before any work: every output name is claimed, so
    // a user's file of that name is never replaced.
    if let Some(out) = &args.out {
        let mut names: Vec<String> = ["heads.json", "heads.svg", "heads.png", "fv.safetensors"]
            .iter()
            .chain(&["accuracy.json", "accuracy.md"])
            .map(|n| n.to_string())
            .collect();
        if !args.no_sweep {
            for task in &tasks {
                let stem = if tasks.len() == 1 {
                    "layer-sweep".to_string()
                } else {
                    format!("layer-sweep-{}", task.name)
                };
                names.extend(["svg", "png"].map(|ext| format!("{stem}.{ext}")));
            }
        }
        super::common::claim_outputs(out, args.force, &names)?;
    }
    let model_name = super::trace::model_name(&loaded.path);
    let settings = ExtractSettings {
        shots: args.shots,
        mean_trials: args.mean_trials,
        cie_trials: args.trials,
        seed: args.seed,
        schedule: if args.naive {
            Schedule::Naive
        } else {
            Schedule::Fast
        },
        ..ExtractSettings::default()
    };

    let mut runs: Vec<(Extraction, f64)> = Vec::new();
    for builder in &builders {
        let name = &builder.task().name;
        let mut view = ProgressView::shown_if(!args.json, name);
        let started = Instant::now();
        let mut scan_started = None;
        let mut show = view.callback();
        let run = extract(model, builder, &settings, &mut |p| {
            if p.stage == HEAD_SCAN_STAGE && scan_started.is_none() {
                scan_started = Some(Instant::now());
            }
            show(p)
        })?;
        drop(show);
        view.finish();
        let scan_seconds = scan_started.map_or(0.0, |t| t.elapsed().as_secs_f64());
        if !args.json {
            eprintln!(
                "{name}: {} of {} valid queries right with {}-shot ICL; extraction {:.1} s (head scan {:.1} s)",
                run.icl_correct_valid.len(),
                run.splits.valid.len(),
                args.shots,
                started.elapsed().as_secs_f64(),
                scan_seconds
            );
            if !run.queries_filtered {
                eprintln!("{name}: warning: the model answers no valid query with ICL; using every valid query");
            }
        }
        runs.push((run, scan_seconds));
    }
    let aies: Vec<Vec<Vec<f64>>> = runs.iter().map(|(r, _)| r.scan.aie()).collect();
    let aie = mean_grid(&aies)?;
    let top = top_heads(&aie, args.heads);

    let layers: Vec<usize> = if args.no_sweep {
        vec![layer]
    } else {
        (0..c.n_layers).collect()
    };
    let options = EvalOptions {
        shots: args.shots,
        layers: layers.clone(),
        seed: args.seed,
        max_items: args.max_eval,
        max_rows: settings.max_rows,
    };
    let mut vectors = Vec::new();
    let mut accuracies = Vec::new();
    for (builder, (run, _)) in builders.iter().zip(&runs) {
        let name = &builder.task().name;
        let v = function_vector(model, &run.mean, &top)?;
        let mut view = ProgressView::shown_if(!args.json, name);
        let items = evaluate_items(
            model,
            builder,
            &run.splits,
            &v,
            &options,
            &mut view.callback(),
        )?;
        view.finish();
        accuracies.push(summarize(name, &items, &layers, layer, args.shots)?);
        vectors.push(v);
    }
    if let (Some(path), Some(v)) = (&args.save_control_vector, vectors.first()) {
        let steering = function_vectors::vector::steering_vector(v, layer, c.d_model)?
            .scaled(args.control_vector_scale);
        steering.save_control_vector(path, llama_cpp_arch(c.arch))?;
        if !args.json {
            eprintln!(
                "wrote {} (direction.{layer}, scale {})",
                path.display(),
                args.control_vector_scale
            );
        }
    }

    let arithmetic = if args.arithmetic {
        let [ad, bc, ac, bd] = [0, 1, 2, 3].map(|i| &builders[i]);
        let composed =
            function_vectors::arithmetic::compose_vectors(&vectors[0], &vectors[1], &vectors[2])?;
        let at_layer = EvalOptions {
            layers: vec![layer],
            ..options.clone()
        };
        let mut view = ProgressView::shown_if(
            !args.json,
            &format!("{} (v_AD + v_BC − v_AC)", bd.task().name),
        );
        let items = evaluate_items(
            model,
            bd,
            &runs[3].0.splits,
            &composed,
            &at_layer,
            &mut view.callback(),
        )?;
        view.finish();
        let name = |b: &PromptBuilder<'_>| b.task().name.clone();
        Some(ArithmeticReport {
            target: name(bd),
            composed_from: [name(ad), name(bc), name(ac)],
            accuracy: summarize(
                &format!("{} (v_AD + v_BC − v_AC)", name(bd)),
                &items,
                &[layer],
                layer,
                args.shots,
            )?,
        })
    } else {
        None
    };

    let report = Report {
        model: loaded.path.display().to_string(),
        layer,
        shots: args.shots,
        top_heads: &top,
        arithmetic,
        tasks: builders
            .iter()
            .zip(&runs)
            .zip(&accuracies)
            .map(|((b, (run, secs)), acc)| TaskReport {
                task: &b.task().name,
                file: &b.task().source,
                splits: [
                    run.splits.train.len(),
                    run.splits.valid.len(),
                    run.splits.test.len(),
                ],
                valid_icl_correct: run.icl_correct_valid.len(),
                queries_filtered: run.queries_filtered,
                scan_seconds: *secs,
                accuracy: acc,
            })
            .collect(),
    };

    if let Some(out) = &args.out {
        let what = if tasks.len() == 1 {
            tasks[0].name.clone()
        } else {
            format!("mean over {} tasks", tasks.len())
        };
        let heads_json = serde_json::json!({
            "model": report.model,
            "n_layers": c.n_layers,
            "n_heads": c.n_heads,
            "trials": args.trials,
            "mean_trials": args.mean_trials,
            "shots": args.shots,
            "seed": args.seed,
            "aie": aie,
            "aie_per_task": tasks.iter().map(|t| t.name.clone()).zip(aies.iter()).collect::<std::collections::BTreeMap<_, _>>(),
            "top_heads": top,
        });
        factscope_common::write_json_atomic(&out.join("heads.json"), &heads_json)?;
        let map = function_vectors::figures::heads_heatmap(&aie, &top, &model_name, &what);
        for ext in ["svg", "png"] {
            map.save(&out.join(format!("heads.{ext}")))
                .context("heads heatmap")?;
        }
        let meta = FvMeta {
            model_fingerprint: model_fingerprint(model)?,
            model_type: c.model_type.clone(),
            d_model: c.d_model,
            n_layers: c.n_layers,
            layer,
            heads: top.clone(),
            tasks: tasks.iter().map(|t| t.name.clone()).collect(),
            shots: args.shots,
            seed: args.seed,
            mean_trials: args.mean_trials,
            cie_trials: args.trials,
        };
        file::save(&out.join("fv.safetensors"), &meta, &vectors)?;
        factscope_common::write_json_atomic(&out.join("accuracy.json"), &report)?;
        factscope_common::write_atomic(&out.join("accuracy.md"), markdown(&report).as_bytes())?;
        if !args.no_sweep {
            for acc in &accuracies {
                let plot = function_vectors::figures::layer_sweep_plot(acc, &model_name);
                let stem = if accuracies.len() == 1 {
                    "layer-sweep".to_string()
                } else {
                    format!("layer-sweep-{}", acc.task)
                };
                for ext in ["svg", "png"] {
                    plot.save(&out.join(format!("{stem}.{ext}")))
                        .context("layer sweep plot")?;
                }
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", markdown(&report));
        if let Some(out) = &args.out {
            println!("\nwrote {}", out.display());
        }
    }
    Ok(())
}

/// The four list tasks of `--arithmetic` from the one base task D, in the order AD, BC, AC,
/// BD (A = first item, B = last item, C = copy it, D = apply the base task).
fn arithmetic_tasks(mut tasks: Vec<Task>, list_len: usize, seed: u32) -> anyhow::Result<Vec<Task>> {
    use function_vectors::arithmetic::{compose_list_task, Select, Transform};
    if tasks.len() != 1 {
        bail!(
            "--arithmetic composes lists from one base task; {} --task files were given",
            tasks.len()
        );
    }
    let Some(base) = tasks.pop() else {
        bail!("--arithmetic needs a --task");
    };
    let n = base.len();
    let combos = [
        (Select::First, Transform::Apply),
        (Select::Last, Transform::Copy),
        (Select::First, Transform::Copy),
        (Select::Last, Transform::Apply),
    ];
    combos
        .iter()
        .map(|&(select, transform)| {
            compose_list_task(&base, select, transform, list_len, n, seed)
                .with_context(|| format!("--arithmetic lists of {list_len} from {}", base.name))
        })
        .collect()
}

fn cell(a: &Accuracy) -> String {
    if a.n == 0 {
        return "–".into();
    }
    format!("{:.3} [{:.3}, {:.3}]", a.rate, a.ci_low, a.ci_high)
}

fn table(out: &mut String, title: &str, shots: usize, rows: &[(&str, &AccuracyTable)]) {
    out.push_str(&format!("\n{title}\n\n"));
    out.push_str(&format!(
        "| task | n | {shots}-shot ICL | zero-shot | zero-shot + FV | shuffled | shuffled + FV |\n"
    ));
    out.push_str("|---|---|---|---|---|---|---|\n");
    for (task, t) in rows {
        out.push_str(&format!(
            "| {task} | {} | {} | {} | {} | {} | {} |\n",
            t.icl.n,
            cell(&t.icl),
            cell(&t.zero_shot),
            cell(&t.zero_shot_fv),
            cell(&t.shuffled),
            cell(&t.shuffled_fv)
        ));
    }
}

/// The accuracy tables and top heads as Markdown.
fn markdown(report: &Report<'_>) -> String {
    let mut out = format!(
        "# Function vectors\n\nModel `{}`; FV added at `blocks.{}.hook_resid_post` (last token). Top-1 accuracy of the first answer token, 95% Wilson intervals.\n",
        report.model, report.layer
    );
    let all: Vec<(&str, &AccuracyTable)> = report
        .tasks
        .iter()
        .map(|t| (t.task, &t.accuracy.all))
        .collect();
    table(&mut out, "## All test items", report.shots, &all);
    let good: Vec<(&str, &AccuracyTable)> = report
        .tasks
        .iter()
        .map(|t| (t.task, &t.accuracy.icl_correct))
        .collect();
    table(
        &mut out,
        "## Test items the model answers with clean ICL (the paper's protocol)",
        report.shots,
        &good,
    );
    if let Some(a) = &report.arithmetic {
        let own = report
            .tasks
            .iter()
            .find(|t| t.task == a.target)
            .map(|t| &t.accuracy.all);
        out.push_str(&format!(
            "\n## Vector arithmetic on {} (all test items, layer {})\n\n| vector | n | zero-shot + FV | shuffled + FV |\n|---|---|---|---|\n",
            a.target, report.layer
        ));
        if let Some(own) = own {
            out.push_str(&format!(
                "| none | {} | {} | {} |\n| v_BD (extracted) | {} | {} | {} |\n",
                own.zero_shot.n,
                cell(&own.zero_shot),
                cell(&own.shuffled),
                own.zero_shot_fv.n,
                cell(&own.zero_shot_fv),
                cell(&own.shuffled_fv)
            ));
        }
        let c = &a.accuracy.all;
        out.push_str(&format!(
            "| v_AD + v_BC − v_AC ({} + {} − {}) | {} | {} | {} |\n",
            a.composed_from[0],
            a.composed_from[1],
            a.composed_from[2],
            c.zero_shot_fv.n,
            cell(&c.zero_shot_fv),
            cell(&c.shuffled_fv)
        ));
    }
    out.push_str("\n## Top heads (layer, head, AIE)\n\n");
    for h in report.top_heads {
        out.push_str(&format!("- ({}, {}) {:.4}\n", h.layer, h.head, h.score));
    }
    for t in &report.tasks {
        let sweep = &t.accuracy.sweep;
        if sweep.layers.len() > 1 {
            let best = |acc: &[Accuracy]| {
                acc.iter()
                    .zip(&sweep.layers)
                    .max_by(|a, b| a.0.rate.total_cmp(&b.0.rate))
                    .map(|(a, l)| format!("layer {l}: {}", cell(a)))
                    .unwrap_or_default()
            };
            out.push_str(&format!(
                "\n{}: best layer, zero-shot + FV {}; shuffled + FV {}\n",
                t.task,
                best(&sweep.zero_shot_fv),
                best(&sweep.shuffled_fv)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    //! Bad input to `factscope fv` gives a clear error before any work, and writes nothing.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

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
}
