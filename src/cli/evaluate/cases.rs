//! The selection step of `factscope evaluate`: the cases of this run (loaded, limited,
//! sharded) and the output names it claims in `--out`.

use anyhow::bail;
use counterfact::{load_cases, EditCase};

use super::{EvaluateArgs, Shard};

/// The cases this run scores, with what its settings record of the cases file.
pub(super) struct Selected {
    /// This shard's cases (after --limit), in file order.
    pub(super) cases: Vec<EditCase>,
    /// The fingerprint of the cases file's bytes.
    pub(super) fingerprint: String,
    /// The shard (0/1 without --shard).
    pub(super) shard: Shard,
}

/// Loads `--cases` (saying on stderr which records were skipped with --skip-bad), keeps the
/// first `--limit` and takes this shard's; an empty selection is an error before anything
/// is written, so a mistaken --limit or --shard never leaves a folder behind that blocks the
/// next run.
pub(super) fn select_cases(args: &EvaluateArgs) -> anyhow::Result<Selected> {
    let loaded_cases = load_cases(&args.cases, args.skip_bad)?;
    for e in &loaded_cases.skipped {
        eprintln!("skipped: {e}");
    }
    if !loaded_cases.skipped.is_empty() {
        eprintln!(
            "skipped {} malformed record(s) of {}",
            loaded_cases.skipped.len(),
            loaded_cases.skipped.len() + loaded_cases.cases.len()
        );
    }
    let loaded_cases_count = loaded_cases.cases.len();
    let mut cases = loaded_cases.cases;
    if let Some(limit) = args.limit {
        cases.truncate(limit);
    }
    let shard = args.shard.unwrap_or(Shard { k: 0, n: 1 });
    let cases = counterfact::dataset::shard(&cases, shard.k, shard.n)?;
    if cases.is_empty() {
        bail!(
            "no cases selected: {} usable case(s) in {}, --limit {}, --shard {}/{}",
            loaded_cases_count,
            args.cases.display(),
            args.limit.map_or("none".to_string(), |l| l.to_string()),
            shard.k,
            shard.n
        );
    }
    Ok(Selected {
        cases,
        fingerprint: loaded_cases.fingerprint,
        shard,
    })
}

/// The one output-folder rule: a new or empty folder, or one holding only factscope's
/// outputs; files factscope did not write are kept and never replaced (--force or
/// --resume accept a folder that has some).
pub(super) fn claim_out(args: &EvaluateArgs, shard: Shard) -> anyhow::Result<()> {
    crate::cli::common::claim_outputs(
        &args.out,
        args.force || args.resume,
        &[
            counterfact::record::SETTINGS.to_string(),
            format!("records-{}-of-{}.jsonl", shard.k, shard.n),
            "summary.json".into(),
            "summary.md".into(),
            "summary.svg".into(),
            "summary.png".into(),
            "report.html".into(),
            "trace_examples".into(),
            counterfact::sequential::SEQUENTIAL_DIR.into(),
        ],
    )
}
