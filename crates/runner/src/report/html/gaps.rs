//! Inference-gap reports (`flowvae gaps --out FILE.json`) found next to the runs: in each run
//! folder, in the folders given, and in their `gaps/` sub-folders.

use std::path::{Path, PathBuf};

use super::markup::{escape, number_cell};
use crate::run::inference_gap::GapReport;

/// A gap report and the file it was read from.
#[derive(Debug)]
pub(crate) struct FoundGaps {
    pub file: PathBuf,
    pub report: GapReport,
}

/// Every readable gap report in `folders` and their `gaps/` sub-folders, by file name. Other
/// JSON files (summaries, preprocessing) are not gap reports and are passed over.
pub(crate) fn find_gap_reports(folders: &[&Path]) -> Vec<FoundGaps> {
    let mut found: Vec<FoundGaps> = Vec::new();
    for folder in folders {
        for dir in [folder.to_path_buf(), folder.join("gaps")] {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            files.sort();
            for file in files {
                if found.iter().any(|f| f.file == file) {
                    continue;
                }
                let text = std::fs::read_to_string(&file).unwrap_or_default();
                if let Ok(report) = serde_json::from_str::<GapReport>(&text) {
                    found.push(FoundGaps { file, report });
                }
            }
        }
    }
    found
}

/// The section: one sortable row per report, the file named relative to `base`.
pub(crate) fn gaps_section(reports: &[FoundGaps], base: &Path) -> String {
    if reports.is_empty() {
        return String::new();
    }
    let mut html = String::from(
        "<h2 id=\"gaps\">Inference gaps</h2>\n<p class=\"meta\">From <code>flowvae gaps</code>: \
         log p(x) − ELBO split into the amortization gap (a better encoder could close it) \
         and the approximation gap (a richer posterior, such as a flow, could close it); \
         nats per image, means over the images.</p>\n<table class=\"sortable\">\n<thead><tr>\
         <th>report</th><th>split</th><th>images</th><th>log p(x)</th><th>ELBO, encoder's q</th>\
         <th>ELBO, optimised q</th><th>amortization gap</th><th>approximation gap</th></tr>\
         </thead>\n<tbody>\n",
    );
    for found in reports {
        let r = &found.report;
        let name = found.file.strip_prefix(base).unwrap_or(&found.file);
        let number = |v: f64| number_cell(Some(v), &format!("{v:.2}"));
        html.push_str(&format!(
            "<tr><td>{}</td><td>{}</td>{}{}{}{}{}{}</tr>\n",
            escape(&name.display().to_string()),
            escape(&r.split),
            number_cell(Some(r.images as f64), &r.images.to_string()),
            number(r.log_px),
            number(r.elbo_amortized),
            number(r.elbo_optimized),
            number(r.amortization_gap),
            number(r.approximation_gap),
        ));
    }
    html.push_str("</tbody>\n</table>\n");
    html
}
