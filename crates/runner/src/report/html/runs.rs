//! Each run's resolved config and provenance behind a disclosure element, and the runs the
//! table leaves out: unfinished, not started, unreadable.

use std::path::Path;

use serde_json::Value;

use super::collect::Study;
use super::figures::relative;
use super::markup::escape;
use crate::report::groups::ModelGroup;
use crate::report::records::RunRecord;
use crate::run::summary::RunSummary;

/// Summary entries shown as provenance, in this order, with their labels. Missing ones that
/// matter for reproducing a number are shown as not recorded.
const PROVENANCE: [(&str, &str, bool); 14] = [
    ("experiment", "experiment", false),
    ("seed", "seed", true),
    ("data", "data", false),
    ("flow", "flow", false),
    ("objective", "objective", false),
    ("parameters", "parameters", false),
    ("epochs", "epochs", false),
    ("best_epoch", "best epoch", false),
    ("threads", "threads", true),
    ("train_seconds", "train time (s)", false),
    ("cpu_seconds", "CPU time (s)", true),
    ("eval_seconds", "evaluation time (s)", false),
    ("steps", "steps", false),
    ("wall_seconds", "wall time (s)", false),
];

/// Per model a disclosure element holding one per run.
pub(crate) fn runs_section(groups: &[ModelGroup], out_dir: &Path) -> String {
    let mut html = String::from(
        "<h2 id=\"runs\">Runs: configs and provenance</h2>\n<p class=\"meta\">Each run's \
         resolved <code>config.yaml</code> (every default filled in) and what its \
         <code>summary.json</code> records about the binary and the machine.</p>\n",
    );
    for group in groups {
        html.push_str(&format!(
            "<details><summary>{} ({} run{})</summary>\n",
            escape(&group.label),
            group.runs.len(),
            if group.runs.len() == 1 { "" } else { "s" }
        ));
        for run in &group.runs {
            html.push_str(&run_details(run, out_dir));
        }
        html.push_str("</details>\n");
    }
    html
}

fn run_details(run: &RunRecord, out_dir: &Path) -> String {
    let folder = relative(out_dir, &run.dir).display().to_string();
    let seed = run
        .summary
        .seed()
        .map_or(String::new(), |s| format!(" — seed {s}"));
    let mut html = format!(
        "<details><summary>{}{seed}</summary>\n<table>\n",
        escape(&folder)
    );
    let value = summary_value(&run.summary);
    let versions = value.get("versions");
    let version = |key: &str| versions.and_then(|v| v.get(key)).map(text);
    let mut rows: Vec<(&str, Option<String>, bool)> = PROVENANCE
        .iter()
        .filter(|(key, _, required)| *required || value.get(*key).is_some())
        .map(|(key, label, required)| (*label, value.get(*key).map(text), *required))
        .collect();
    rows.push(("git revision", version("git"), true));
    rows.push(("flowvae", version("flowvae"), true));
    let candle = version("candle-core").or_else(|| version("candle"));
    rows.push(("candle", candle, true));
    for (label, shown, _) in rows {
        let shown = shown.map_or_else(
            || "<span class=\"mark\">not recorded (older summary)</span>".to_string(),
            |s| escape(&s),
        );
        html.push_str(&format!(
            "<tr><th>{}</th><td>{shown}</td></tr>\n",
            escape(label)
        ));
    }
    html.push_str("</table>\n");
    match std::fs::read_to_string(run.dir.join("config.yaml")) {
        Ok(config) => html.push_str(&format!("<pre>{}</pre>\n", escape(&config))),
        Err(e) => html.push_str(&format!(
            "<p><span class=\"mark bad\">no config.yaml: {}</span></p>\n",
            escape(&e.to_string())
        )),
    }
    html.push_str("</details>\n");
    html
}

fn summary_value(summary: &RunSummary) -> Value {
    let value = match summary {
        RunSummary::Vae(s) => serde_json::to_value(s),
        RunSummary::Density(s) => serde_json::to_value(s),
        RunSummary::TwoD(s) => serde_json::to_value(s),
        RunSummary::Comparison(s) => serde_json::to_value(s),
    };
    value.unwrap_or(Value::Null)
}

/// A summary entry as text: strings bare, numbers rounded to what a reader needs.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => format!("{:.1}", n.as_f64().unwrap_or(f64::NAN)),
        Value::Null => "–".into(),
        other => other.to_string(),
    }
}

/// Runs still in progress, sweep points not started and run folders that could not be read;
/// nothing when there are none.
pub(crate) fn left_out_section(study: &Study, out_dir: &Path) -> String {
    let mut items = Vec::new();
    for u in &study.unfinished {
        items.push(format!(
            "<li><span class=\"mark\">unfinished</span> {}: {} epoch(s) in metrics.csv, no \
             summary.json yet</li>",
            escape(&relative(out_dir, &u.dir).display().to_string()),
            u.epochs
        ));
    }
    for (folder, label) in &study.pending {
        items.push(format!(
            "<li><span class=\"mark\">no run yet</span> sweep point {}: <code>{}</code></li>",
            escape(folder),
            escape(label)
        ));
    }
    for (dir, why) in &study.unreadable {
        items.push(format!(
            "<li><span class=\"mark bad\">unreadable</span> {}: {}</li>",
            escape(&relative(out_dir, dir).display().to_string()),
            escape(why)
        ));
    }
    if items.is_empty() {
        return String::new();
    }
    format!(
        "<h2 id=\"left-out\">Not in the table</h2>\n<ul>\n{}\n</ul>\n",
        items.join("\n")
    )
}
