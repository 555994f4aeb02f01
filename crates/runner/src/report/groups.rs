//! Runs grouped into models (runs whose resolved configs differ only in the seed), each
//! model's score by seed, its curves aggregated over seeds, and the differences to a baseline
//! that the tables and plots show.

use std::collections::BTreeMap;

use flowvae_plot::{Band, BandPoint, DeltaPoint};

use super::records::RunRecord;
use super::stats::{delta, Delta};
use crate::run::summary::RunSummary;

/// One model: its runs, one per seed.
#[derive(Debug)]
pub(crate) struct ModelGroup<'a> {
    /// The model's name.
    pub label: String,
    /// Its runs, in the order they were found.
    pub runs: Vec<&'a RunRecord>,
}

/// Groups `runs` into models: the baseline's first, the others in the order their first run
/// was found.
pub(crate) fn group_runs<'a>(runs: &'a [RunRecord], baseline: Option<&str>) -> Vec<ModelGroup<'a>> {
    let is_baseline = |r: &&RunRecord| baseline.is_some_and(|b| r.label == b);
    let ordered = runs
        .iter()
        .filter(is_baseline)
        .chain(runs.iter().filter(|r| !is_baseline(r)));
    let mut keys: Vec<(&str, &str)> = Vec::new();
    let mut groups: Vec<ModelGroup> = Vec::new();
    for run in ordered {
        let key = (run.group_key.as_str(), run.label.as_str());
        match keys.iter().position(|k| *k == key) {
            Some(i) => groups[i].runs.push(run),
            None => {
                keys.push(key);
                groups.push(ModelGroup {
                    label: run.label.clone(),
                    runs: vec![run],
                });
            }
        }
    }
    groups
}

/// The number a run is ranked by: the test NLL of a Flow-VAE (lower is better), the test
/// log-likelihood of a density run (higher is better), the final test NLL (or else the
/// reverse KL) of a 2-D run.
pub(crate) fn score(run: &RunRecord) -> Option<f64> {
    match &run.summary {
        RunSummary::Vae(s) => Some(s.test.nll),
        RunSummary::Density(s) => Some(s.test.log_likelihood),
        RunSummary::TwoD(s) => ["test_nll", "kl_q_p"]
            .iter()
            .find_map(|k| s.final_metrics.get(*k).and_then(|v| v.as_f64())),
        RunSummary::Comparison(_) => None,
    }
}

impl ModelGroup<'_> {
    /// Each run's score by its seed.
    pub(crate) fn scores(&self) -> BTreeMap<u64, f64> {
        self.runs
            .iter()
            .filter_map(|r| Some((r.summary.seed()?, score(r)?)))
            .collect()
    }

    /// The difference of this model's scores to `base`'s, paired by seed where possible.
    pub(crate) fn delta(&self, base: &ModelGroup) -> Option<Delta> {
        delta(&self.scores(), &base.scores())
    }

    /// The validation curves aggregated over the seeds: at each epoch the mean, lowest and
    /// highest of the runs that reached it.
    pub(crate) fn band(&self) -> Band {
        let mut by_x: BTreeMap<u64, (f64, Vec<f64>)> = BTreeMap::new();
        for run in &self.runs {
            for &(x, y) in run.val_curve.iter().filter(|p| p.1.is_finite()) {
                by_x.entry(x.to_bits()).or_insert((x, Vec::new())).1.push(y);
            }
        }
        let mut points: Vec<BandPoint> = by_x
            .into_values()
            .map(|(x, ys)| BandPoint {
                x,
                mean: ys.iter().sum::<f64>() / ys.len() as f64,
                lo: ys.iter().copied().fold(f64::INFINITY, f64::min),
                hi: ys.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            })
            .collect();
        points.sort_by(|a, b| a.x.total_cmp(&b.x));
        Band {
            name: self.label.clone(),
            points,
        }
    }
}

/// Each model's difference to the first group (the baseline) as plot points whose bars are
/// ± 2 standard errors: a bar clear of zero is a difference beyond two standard errors.
pub(crate) fn delta_points(groups: &[ModelGroup]) -> Vec<DeltaPoint> {
    let Some((base, others)) = groups.split_first() else {
        return Vec::new();
    };
    others
        .iter()
        .filter_map(|g| {
            let d = g.delta(base)?;
            Some(DeltaPoint {
                label: g.label.clone(),
                delta: d.mean,
                error: d.se.map(|se| 2.0 * se),
            })
        })
        .collect()
}
