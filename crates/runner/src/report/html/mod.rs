//! `flowvae report`: one self-contained HTML page for a run, a sweep or a study. The page
//! needs no network: plots are inline SVG, images are embedded as `data:` URIs, the style
//! sheet and the table-sorting script are inline. It is written to a temporary file in its
//! folder and renamed into place, so a crash never leaves half a page.

mod collect;
mod figures;
mod gaps;
mod markup;
mod runs;
mod table;

use std::path::{Path, PathBuf};

use flowvae_train::write_atomic;

use crate::error::{Result, RunnerError};
use crate::report::compare::data_set;
use crate::report::groups::group_runs;
use crate::run::summary::Versions;
use collect::Study;
use figures::ImageBudget;
use markup::escape;

/// Where the report goes and what it compares against.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// The HTML file to write.
    pub output: PathBuf,
    /// The model every other is compared with; `None`: a sweep's `baseline`, else a model
    /// named `vae`, else no differences are shown.
    pub baseline: Option<String>,
    /// Bytes of embedded images (base64) at most; images beyond are linked instead.
    pub image_budget: usize,
}

impl ReportOptions {
    /// The default image budget: about a megabyte, which keeps a 13-model study's page
    /// small enough to commit.
    pub const DEFAULT_IMAGE_BUDGET: usize = 1_200_000;

    /// `output` with no baseline asked for and the default image budget.
    pub fn new(output: PathBuf) -> Self {
        Self {
            output,
            baseline: None,
            image_budget: Self::DEFAULT_IMAGE_BUDGET,
        }
    }
}

/// What a report holds.
#[derive(Debug, Clone)]
pub struct ReportOutcome {
    /// The file written.
    pub path: PathBuf,
    /// Models (rows of the table).
    pub models: usize,
    /// Finished runs.
    pub runs: usize,
    /// Runs without a summary yet, and sweep points not started.
    pub unfinished: usize,
    /// Run folders that could not be read.
    pub unreadable: usize,
    /// Images embedded, and images linked because of the budget.
    pub images: (usize, usize),
    /// Size of the page in bytes.
    pub bytes: usize,
}

/// Writes the report of the runs under `paths` (run folders, sweep folders or folders of
/// runs) to `options.output`.
pub fn report(paths: &[PathBuf], options: &ReportOptions) -> Result<ReportOutcome> {
    if paths.is_empty() {
        return Err(RunnerError::Config {
            file: options.output.clone(),
            location: None,
            message: "no folder to report on".into(),
        });
    }
    let study = collect::collect(paths, options.baseline.as_deref())?;
    let out_dir = match options.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&out_dir)
        .map_err(|e| RunnerError::io(&out_dir, "cannot create the report's folder", e))?;
    let mut budget = ImageBudget {
        left: options.image_budget,
        embedded: 0,
        linked: 0,
    };
    let (page, models) = render(&study, &out_dir, &mut budget)?;
    write_atomic(&options.output, page.as_bytes())?;
    Ok(ReportOutcome {
        path: options.output.clone(),
        models,
        runs: study.records.len(),
        unfinished: study.unfinished.len() + study.pending.len(),
        unreadable: study.unreadable.len(),
        images: (budget.embedded, budget.linked),
        bytes: page.len(),
    })
}

/// The page and its number of models.
fn render(study: &Study, out_dir: &Path, budget: &mut ImageBudget) -> Result<(String, usize)> {
    let groups = group_runs(&study.records, study.baseline.as_deref());
    let layout = table::layout(&study.records);
    let has_baseline = study.baseline.is_some();
    let title = format!("flowvae report: {}", root_names(&study.roots));
    let mut body = format!("<h1>{}</h1>\n", escape(&title));
    body.push_str(&intro(study, groups.len(), &layout));
    body.push_str("<h2 id=\"table\">Comparison</h2>\n");
    body.push_str(&table::table(study, &groups, &layout, has_baseline));
    body.push_str(
        "<p class=\"meta\">Mean ± standard deviation over seeds; Δ is paired by seed where every \
         seed has a baseline run, ± its standard error. Click a header to sort.</p>\n",
    );
    body.push_str(&figures::delta_figure(&groups, &layout, has_baseline)?);
    body.push_str(&figures::curves_figure(&groups, &layout)?);
    body.push_str(&figures::grids_section(&groups, out_dir, budget));
    body.push_str(&gaps::gaps_section(&study.gaps, out_dir));
    body.push_str(&runs::left_out_section(study, out_dir));
    body.push_str(&runs::runs_section(&groups, out_dir));
    Ok((markup::page(&title, &body), groups.len()))
}

fn root_names(roots: &[PathBuf]) -> String {
    let names: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
    names.join(", ")
}

/// What was compared, on which data, with which binary, and what is missing.
fn intro(study: &Study, models: usize, layout: &table::Layout) -> String {
    let data = study
        .records
        .iter()
        .find_map(data_set)
        .unwrap_or_else(|| "not recorded".into());
    let better = if layout.higher_is_better {
        "higher"
    } else {
        "lower"
    };
    let baseline = match &study.baseline {
        Some(b) => format!("Baseline: <b>{}</b>.", escape(b)),
        None => "No baseline (give one with --baseline to see differences).".into(),
    };
    let versions = Versions::current();
    let mut html =
        format!(
        "<p class=\"meta\">{models} model(s), {} finished run(s). Data: {}. Score: {}, {better} \
         is better. {baseline} Written by flowvae {}{}.</p>\n",
        study.records.len(),
        escape(&data),
        escape(&layout.score),
        escape(&versions.flowvae),
        versions.git.map(|g| format!(" ({})", escape(&g))).unwrap_or_default()
    );
    let left_out = study.unfinished.len() + study.pending.len() + study.unreadable.len();
    if left_out > 0 {
        html.push_str(&format!(
            "<p><span class=\"mark\">incomplete</span> {left_out} run(s) are not in the table: \
             see <a href=\"#left-out\">Not in the table</a>.</p>\n"
        ));
    }
    html.push_str(
        "<p class=\"meta\"><a href=\"#table\">Comparison</a> · <a href=\"#delta\">Differences</a> · \
         <a href=\"#curves\">Learning curves</a> · <a href=\"#grids\">Samples</a> · \
         <a href=\"#runs\">Configs and provenance</a></p>\n",
    );
    html
}
