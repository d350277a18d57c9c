//! The `factscope` command line: thin glue that parses arguments, calls the library crates
//! and prints or saves their results.

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// Settings of libtorch's native libraries that the CLI chooses unless the user has set them.
/// Both are read from the environment once, when the library loads or first runs, so the
/// only way to choose them for the user is to start again with them set; an explicit value
/// (including the library's default) is always respected.
///
/// - `OMP_WAIT_POLICY=PASSIVE`: libtorch's OpenMP threads busy-wait between parallel regions
///   by default. On a machine shared with other busy processes that makes every small
///   operation crawl (measured: an 11 × 10 forward pass of the bundled model took 2.0 s
///   instead of 0.45 s under load), while passive waiting costs little on an idle machine
///   (see the README's performance notes).
/// - `ONEDNN_PRIMITIVE_CACHE_CAPACITY`: oneDNN, which runs bf16 matrix products on CPUs, keeps
///   up to 1,024 compiled kernels, one per operand shape, each with its own buffers. A causal
///   trace feeds it hundreds of shapes (lanes of every length), and the cache alone grew a
///   bf16 trace's peak memory from 1.09 GB to 1.42 GB (see the README's bf16 notes); a
///   small cache keeps the shapes that repeat within a step.
const PREFERRED_ENV: [(&str, &str); 2] = [
    ("OMP_WAIT_POLICY", "PASSIVE"),
    ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16"),
];

#[cfg(unix)]
fn prefer_environment() {
    use std::os::unix::process::CommandExt;
    let unset: Vec<(&str, &str)> = PREFERRED_ENV
        .into_iter()
        .filter(|(key, _)| std::env::var_os(key).is_none())
        .collect();
    if unset.is_empty() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    // `exec` only returns if it failed; then this process simply carries on.
    let _failed = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .envs(unset)
        .exec();
}

#[cfg(not(unix))]
fn prefer_environment() {}

fn main() -> ExitCode {
    prefer_environment();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once: library errors often already
/// quote their source in their own message (`cannot read F: No such file or directory`),
/// and printing the chain as well would say it twice.
fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}
