//! The checks of `factscope fv` before any work: counts, task files, settings that depend on
//! the model, and the output names claimed in `--out`.

use std::path::Path;

use anyhow::{bail, Context as _};
use function_vectors::{default_layer, ExtractSettings, Schedule, Splits, Task};

use super::{Context, FvArgs};

/// Refuses counts of zero (heads, trials, shots, `--max-eval`): checked first, as they need
/// neither a file nor the model.
pub(super) fn check_counts(args: &FvArgs) -> anyhow::Result<()> {
    if args.heads == 0 || args.trials == 0 || args.mean_trials == 0 || args.shots == 0 {
        bail!("--heads, --trials, --mean-trials and --shots must be at least 1");
    }
    if args.max_eval == Some(0) {
        bail!("--max-eval must be at least 1");
    }
    Ok(())
}

/// Reads and checks every `--task` file (records, splits for `--shots`, name, duplicates),
/// then builds the `--arithmetic` list tasks from it; all before the model loads, so bad
/// input costs nothing.
pub(super) fn load_tasks(args: &FvArgs) -> anyhow::Result<Vec<Task>> {
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
    Ok(tasks)
}

/// A task's name becomes part of output file names (`layer-sweep-{name}.svg`), so it must be
/// a plain file-name word.
fn task_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
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

/// Checks the settings that need the model's shape (`--layer`, `--save-control-vector`,
/// `--heads`) and returns the layer the vector is added at.
pub(super) fn check_against_model(
    args: &FvArgs,
    c: &gpt_core::ModelConfig,
) -> anyhow::Result<usize> {
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
        crate::cli::common::check_out_file("--save-control-vector", path, false)?;
    }
    if args.heads > c.n_layers * c.n_heads {
        bail!(
            "--heads {} exceeds the model's {} heads",
            args.heads,
            c.n_layers * c.n_heads
        );
    }
    Ok(layer)
}

/// The one output-folder rule, checked once the settings are known to be valid and before
/// any work: every output name is claimed, so a user's file of that name is never replaced.
pub(super) fn claim_out(cx: &Context<'_>, out: &Path) -> anyhow::Result<()> {
    let mut names: Vec<String> = ["heads.json", "heads.svg", "heads.png", "fv.safetensors"]
        .iter()
        .chain(&["accuracy.json", "accuracy.md"])
        .map(|n| n.to_string())
        .collect();
    if !cx.args.no_sweep {
        for builder in cx.builders {
            names.extend(
                ["svg", "png"].map(|ext| format!("{}.{ext}", sweep_stem(cx, &builder.task().name))),
            );
        }
    }
    crate::cli::common::claim_outputs(out, cx.args.force, &names)
}

/// The file stem of a task's layer-sweep plot: `layer-sweep` for one task, else
/// `layer-sweep-{task}`.
pub(super) fn sweep_stem(cx: &Context<'_>, task: &str) -> String {
    if cx.builders.len() == 1 {
        "layer-sweep".to_string()
    } else {
        format!("layer-sweep-{task}")
    }
}

/// The extraction settings from the arguments (the rest as the library's defaults).
pub(super) fn extract_settings(args: &FvArgs) -> ExtractSettings {
    ExtractSettings {
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
    }
}
