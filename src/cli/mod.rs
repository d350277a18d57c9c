//! Argument parsing and dispatch of the `factscope` subcommands.

mod common;
mod demo;
mod generate;
mod predict;

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
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Generate(args) => generate::run(args),
    }
}
