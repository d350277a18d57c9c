//! `factscope compare`: several evaluation runs side by side (table, bars with intervals,
//! HTML report).

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use counterfact::{markdown_table, summarize_dir, Bootstrap, Summary};

use super::common::check_out_dir;
use super::evaluate::{write_outputs, Outputs};

/// Arguments of `factscope compare`.
#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Run folders of `factscope evaluate` (their records are summarised afresh, so
    /// unfinished shards count as far as they got).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Write compare.md, compare.svg, compare.png and compare.html here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the summaries as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `factscope compare`.
pub fn run(args: CompareArgs) -> anyhow::Result<()> {
    if let Some(out) = &args.out {
        check_out_dir("--out", out)?;
    }
    let mut summaries: Vec<Summary> = Vec::new();
    for dir in &args.runs {
        let (mut summary, records) = summarize_dir(dir, Bootstrap::default())?;
        if records.is_empty() {
            bail!("{}: the run has no finished cases yet", dir.display());
        }
        // Two runs of one method must not both be called "rome": name each by its folder.
        summary.label = Some(format!("{} ({})", summary.method, dir.display()));
        summaries.push(summary);
    }
    let refs: Vec<&Summary> = summaries.iter().collect();
    let table = markdown_table(&refs, true);
    if let Some(out) = &args.out {
        let title = if refs.iter().all(|s| s.has_zsre()) {
            "zsRE: methods compared"
        } else {
            "CounterFact: methods compared"
        };
        let mut details = super::common::invocation_details();
        for (i, (dir, summary)) in args.runs.iter().zip(&refs).enumerate() {
            details.push((
                format!("run {}", i + 1),
                format!(
                    "{}: {} on {}, {} cases",
                    dir.display(),
                    summary.method,
                    summary.model,
                    summary.n
                ),
            ));
        }
        write_outputs(
            out,
            &Outputs {
                stem: "compare",
                page: "compare.html",
                title,
                details: &details,
                summaries: &refs,
                extra: &[],
                records: &[],
                worst: 0,
                cases: &[],
                extra_markdown: "",
            },
        )?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summaries)?);
    } else {
        print!("{table}");
    }
    Ok(())
}
