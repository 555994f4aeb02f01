//! The comparison table: one row per model, mean ± std over its seeds, the difference to the
//! baseline with its standard error, sortable by any column. Rows are marked where a summary
//! is older (fields missing), runs of the model are unfinished, or the Δ is unpaired.

use super::collect::Study;
use super::markup::{escape, number_cell};
use crate::report::groups::{score, ModelGroup};
use crate::report::records::RunRecord;
use crate::report::stats::mean_std;
use crate::run::summary::RunSummary;

/// A numeric column after the score and the Δ.
struct Column {
    head: &'static str,
    value: fn(&RunRecord) -> Option<f64>,
    digits: usize,
}

/// What the table shows for the study's kind of run.
pub(crate) struct Layout {
    /// The score's header, e.g. `test NLL (nats, S = 5000)`.
    pub score: String,
    /// Whether a higher score is better.
    pub higher_is_better: bool,
    columns: Vec<Column>,
}

/// The layout for the runs' kind (the first run's: the collector refuses mixed kinds).
pub(crate) fn layout(runs: &[RunRecord]) -> Layout {
    let column = |head, value, digits| Column {
        head,
        value,
        digits,
    };
    match runs.first().map(|r| &r.summary) {
        Some(RunSummary::Vae(s)) => Layout {
            score: format!("test NLL (nats, S = {})", s.test.nll_samples),
            higher_is_better: false,
            columns: vec![
                column("test −ELBO", |r| r.summary.vae()?.test.neg_elbo, 2),
                column("KL", |r| r.summary.vae()?.test.kl, 2),
                column("epochs", |r| r.summary.vae()?.epochs.map(|e| e as f64), 0),
                column("CPU time (s)", |r| r.summary.vae()?.cpu_seconds, 0),
            ],
        },
        Some(RunSummary::Density(_)) => Layout {
            score: "test log-likelihood (nats)".into(),
            higher_is_better: true,
            columns: vec![
                column("bits/dim", |r| density(r)?.test.bits_per_dim, 3),
                column("epochs", |r| Some(density(r)?.epochs as f64), 0),
                column("train time (s)", |r| Some(density(r)?.train_seconds), 0),
                column("CPU time (s)", |r| density(r)?.cpu_seconds, 0),
            ],
        },
        _ => Layout {
            score: "final test NLL or KL(q‖p) (nats)".into(),
            higher_is_better: false,
            columns: vec![column("train time (s)", train_seconds_2d, 0)],
        },
    }
}

fn density(r: &RunRecord) -> Option<&crate::run::density::DensitySummary> {
    match &r.summary {
        RunSummary::Density(s) => Some(s),
        _ => None,
    }
}

fn train_seconds_2d(r: &RunRecord) -> Option<f64> {
    match &r.summary {
        RunSummary::TwoD(s) => Some(s.train_seconds),
        _ => None,
    }
}

/// The flow of a run, in words.
pub(crate) fn flow_text(r: &RunRecord) -> &str {
    match &r.summary {
        RunSummary::Vae(s) => &s.flow,
        RunSummary::Density(s) => &s.flow,
        RunSummary::TwoD(s) => &s.flow,
        RunSummary::Comparison(_) => "",
    }
}

/// The table, with `groups[0]` as the baseline when `has_baseline`.
pub(crate) fn table(
    study: &Study,
    groups: &[ModelGroup],
    layout: &Layout,
    has_baseline: bool,
) -> String {
    let base = groups.first().filter(|_| has_baseline);
    let mut html = String::from(
        "<div class=\"wide\"><table class=\"sortable\" id=\"comparison\">\n<thead><tr>",
    );
    let mut heads = vec![
        "model".to_string(),
        "flow".into(),
        "seeds".into(),
        layout.score.clone(),
    ];
    if let Some(base) = base {
        heads.push(format!("Δ vs {} ± SE", base.label));
        heads.push("beyond 2 SE".into());
    }
    heads.extend(layout.columns.iter().map(|c| c.head.to_string()));
    heads.push("notes".into());
    for head in &heads {
        html.push_str(&format!("<th>{}</th>", escape(head)));
    }
    html.push_str("</tr></thead>\n<tbody>\n");
    for group in groups {
        html.push_str(&row(study, group, base, layout));
    }
    for (label, epochs, runs) in only_unfinished(study, groups) {
        html.push_str(&format!(
            "<tr class=\"unfinished\"><td>{}</td><td colspan=\"{}\">in progress: {runs} run(s), \
             {epochs} epoch(s) so far at most <span class=\"mark\">unfinished</span></td></tr>\n",
            escape(&label),
            heads.len() - 1
        ));
    }
    html.push_str("</tbody>\n</table></div>\n");
    html
}

fn row(study: &Study, group: &ModelGroup, base: Option<&ModelGroup>, layout: &Layout) -> String {
    let is_base = base.is_some_and(|b| std::ptr::eq(b, group));
    let mut html = format!(
        "<tr{}><td>{}</td><td class=\"flow\">{}</td>{}",
        if is_base { " class=\"baseline\"" } else { "" },
        escape(&group.label),
        escape(flow_text(group.runs[0])),
        number_cell(Some(group.runs.len() as f64), &group.runs.len().to_string())
    );
    let scores: Vec<f64> = group.runs.iter().filter_map(|r| score(r)).collect();
    html.push_str(&stat_cell(&scores, 2));
    let mut notes = Vec::new();
    if let Some(base) = base {
        match group.delta(base).filter(|_| !is_base) {
            Some(d) => {
                let text = match d.se {
                    Some(se) => format!("{:+.2} ± {se:.2}", d.mean),
                    None => format!("{:+.2}", d.mean),
                };
                html.push_str(&number_cell(Some(d.mean), &text));
                let clear = d.se.map(|se| d.mean.abs() > 2.0 * se);
                let word = clear.map_or("–", |c| if c { "yes" } else { "no" });
                html.push_str(&format!("<td>{word}</td>"));
                if !d.paired {
                    notes.push(mark("unpaired", "not every seed has a baseline run"));
                }
            }
            None => html.push_str(if is_base {
                "<td>baseline</td><td></td>"
            } else {
                "<td>–</td><td></td>"
            }),
        }
    }
    for column in &layout.columns {
        let values: Vec<f64> = group
            .runs
            .iter()
            .filter_map(|r| (column.value)(r))
            .collect();
        html.push_str(&stat_cell(&values, column.digits));
    }
    notes.extend(row_notes(study, group));
    html.push_str(&format!("<td>{}</td></tr>\n", notes.join(" ")));
    html
}

/// `mean ± std` as a cell sorting by the mean.
fn stat_cell(values: &[f64], digits: usize) -> String {
    if values.is_empty() {
        return number_cell(None, "–");
    }
    let (mean, std) = mean_std(values);
    let text = match std {
        Some(s) => format!("{mean:.digits$} ± {s:.digits$}"),
        None => format!("{mean:.digits$}"),
    };
    number_cell(Some(mean), &text)
}

fn mark(text: &str, why: &str) -> String {
    format!(
        "<span class=\"mark\" title=\"{}\">{}</span>",
        escape(why),
        escape(text)
    )
}

/// Marks for runs of the model still in progress and for older summaries.
fn row_notes(study: &Study, group: &ModelGroup) -> Vec<String> {
    let mut notes = Vec::new();
    let running = study
        .unfinished
        .iter()
        .filter(|u| u.label == group.label)
        .count();
    if running > 0 {
        notes.push(mark(
            &format!("+{running} unfinished"),
            "runs of this model without a summary yet",
        ));
    }
    let missing = missing_fields(group);
    if !missing.is_empty() {
        let why = format!("written by an older flowvae: no {}", missing.join(", "));
        notes.push(mark("older summary", &why));
    }
    notes
}

/// Summary fields some run of the group lacks (older versions did not write them).
pub(crate) fn missing_fields(group: &ModelGroup) -> Vec<&'static str> {
    let mut missing = Vec::new();
    let mut note = |absent: bool, name: &'static str| {
        if absent && !missing.contains(&name) {
            missing.push(name);
        }
    };
    for run in &group.runs {
        match &run.summary {
            RunSummary::Vae(s) => {
                note(s.epochs.is_none(), "epochs");
                note(s.cpu_seconds.is_none(), "cpu_seconds");
                note(s.versions.is_none(), "versions");
                note(s.data.is_empty(), "data");
            }
            RunSummary::Density(s) => note(s.versions.is_none(), "versions"),
            RunSummary::TwoD(s) => note(s.versions.is_none(), "versions"),
            RunSummary::Comparison(_) => {}
        }
    }
    missing
}

/// Models with unfinished runs and no finished one: (label, most epochs so far, runs).
fn only_unfinished(study: &Study, groups: &[ModelGroup]) -> Vec<(String, usize, usize)> {
    let mut rows: Vec<(String, usize, usize)> = Vec::new();
    for u in &study.unfinished {
        if groups.iter().any(|g| g.label == u.label) {
            continue;
        }
        match rows.iter_mut().find(|r| r.0 == u.label) {
            Some(r) => (r.1, r.2) = (r.1.max(u.epochs), r.2 + 1),
            None => rows.push((u.label.clone(), u.epochs, 1)),
        }
    }
    rows
}
