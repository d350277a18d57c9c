//! The `factscope` command line: thin glue that parses arguments, calls the library crates
//! and prints or saves their results.

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// libtorch's OpenMP threads busy-wait between parallel regions by default. On a machine
/// shared with other busy processes that makes every small operation crawl (measured: an
/// 11 × 10 forward pass of the bundled model took 2.0 s instead of 0.45 s under load), while
/// passive waiting costs little on an idle machine (see the README's performance notes).
/// OpenMP reads `OMP_WAIT_POLICY` when libtorch is loaded, before `main`, so the only way to
/// choose it for the user is to start again with it set. An explicit `OMP_WAIT_POLICY`
/// (including `ACTIVE`) is always respected.
#[cfg(unix)]
fn prefer_passive_openmp() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("OMP_WAIT_POLICY").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    // `exec` only returns if it failed; then this process simply carries on.
    let _failed = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("OMP_WAIT_POLICY", "PASSIVE")
        .exec();
}

#[cfg(not(unix))]
fn prefer_passive_openmp() {}

fn main() -> ExitCode {
    prefer_passive_openmp();
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
