//! `factscope compare`: several evaluation runs side by side (table, bars with intervals,
//! HTML report).

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use counterfact::report::{report_html, Figure as ReportFigure};
use counterfact::{markdown_table, read_run, summarise_run, Bootstrap, Summary};
use viz::Figure;

use super::common::check_out_dir;
use super::evaluate::bars;

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
        let (settings, records) = read_run(dir)?;
        if records.is_empty() {
            bail!("{}: the run has no finished cases yet", dir.display());
        }
        summaries.push(summarise_run(&settings, &records, Bootstrap::default()));
    }
    let refs: Vec<&Summary> = summaries.iter().collect();
    let table = markdown_table(&refs, true);
    if let Some(out) = &args.out {
        let plot = bars(&refs, true);
        plot.save(&out.join("compare.svg"))?;
        plot.save(&out.join("compare.png"))?;
        factscope_common::write_atomic(&out.join("compare.md"), table.as_bytes())?;
        let html = report_html(
            "CounterFact: methods compared",
            &refs,
            &[ReportFigure {
                title: "Rates with 95% bootstrap intervals".into(),
                svg: plot.to_svg()?,
            }],
            &[],
            0,
        );
        factscope_common::write_atomic(&out.join("compare.html"), html.as_bytes())?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summaries)?);
    } else {
        print!("{table}");
    }
    Ok(())
}
