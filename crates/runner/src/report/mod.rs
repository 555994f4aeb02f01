//! Reports over finished runs: comparison tables and plots, the self-contained HTML report,
//! and the labels that name flows in them.

pub(crate) mod compare;
pub(crate) mod density_compare;
pub(crate) mod groups;
pub(crate) mod html;
pub(crate) mod labels;
pub(crate) mod records;
pub(crate) mod stats;

use std::path::Path;

use crate::error::Result;
use records::RunRecord;

/// The comparison of `runs` written into the folder `dir` that holds them (a comparison run or
/// a sweep): `comparison.md`, `comparison.csv`, the plots, and `report.html` over `dir`.
/// Returns the Markdown table.
pub(crate) fn compare_into(
    runs: &[RunRecord],
    dir: &Path,
    baseline: Option<&str>,
) -> Result<String> {
    let table = compare::compare(runs, dir, baseline)?;
    let mut options = html::ReportOptions::new(dir.join("report.html"));
    options.baseline = baseline.map(str::to_string);
    html::report(&[dir.to_path_buf()], &options)?;
    Ok(table)
}
