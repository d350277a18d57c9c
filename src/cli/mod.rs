//! Argument parsing and dispatch of the `factscope` subcommands.

mod common;
mod compare;
mod demo;
mod edit;
mod evaluate;
mod fv;
mod generate;
mod predict;
mod progress;
mod serve;
mod stats;
mod trace;
mod trace_dataset;

use clap::{Parser, Subcommand};

/// Locate, edit and measure factual associations in GPT-style language models.
#[derive(Parser, Debug)]
#[command(name = "factscope", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The main job on the bundled model: predictions and greedy continuations of factual
    /// prompts.
    Demo(demo::DemoArgs),
    /// Show the most probable next tokens after a prompt.
    Predict(predict::PredictArgs),
    /// Continue a prompt (greedy, or seeded top-k sampling).
    Generate(generate::GenerateArgs),
    /// Causal trace of one fact: restoration grids over tokens × layers, with pictures.
    Trace(trace::TraceArgs),
    /// Key statistics C = E[k kᵀ] of one layer's MLP keys over a corpus (resumable, cached).
    Stats(stats::StatsArgs),
    /// Write a fact into the weights (ROME, r-ROME) and show the model before and after.
    Edit(edit::EditArgs),
    /// Evaluate an editing method on CounterFact cases (ES, PS, NS, S, GE with intervals);
    /// resumable, shardable.
    Evaluate(evaluate::EvaluateArgs),
    /// Put several `evaluate` runs side by side (table, bars, HTML).
    Compare(compare::CompareArgs),
    /// Causal traces of every known fact of a known-facts file, averaged per token category
    /// (ROME §1.5), with figures; resumable.
    TraceDataset(trace_dataset::TraceDatasetArgs),
    /// Function vectors of in-context-learning tasks (Todd et al. 2024): head scan, vector,
    /// and accuracy zero-shot and with shuffled labels, with and without it.
    Fv(fv::FvArgs),
    /// A local web page to trace and edit the model in the browser, with a JSON API.
    Serve(serve::ServeArgs),
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Trace(args) => trace::run(args),
        Command::TraceDataset(args) => trace_dataset::run(args),
        Command::Stats(args) => stats::run(args),
        Command::Edit(args) => edit::run(args),
        Command::Evaluate(args) => evaluate::run(args),
        Command::Compare(args) => compare::run(args),
        Command::Fv(args) => fv::run(args),
        Command::Serve(args) => serve::run(args),
    }
}
