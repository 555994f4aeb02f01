//! Numbers of a comparison: mean ± std over seeds, and the difference to a baseline, paired
//! by seed where every run has a partner (seed effects common to both models then cancel).

use std::collections::BTreeMap;

/// Mean and, from two values on, the sample standard deviation.
pub(crate) fn mean_std(values: &[f64]) -> (f64, Option<f64>) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, None);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, Some(var.sqrt()))
}

/// `mean ± std` with `digits` decimals, the mean alone for one value, `–` for none.
pub(crate) fn cell(values: &[f64], digits: usize) -> String {
    if values.is_empty() {
        return "–".into();
    }
    match mean_std(values) {
        (m, Some(s)) => format!("{m:.digits$} ± {s:.digits$}"),
        (m, None) => format!("{m:.digits$}"),
    }
}

/// A model's difference to the baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Delta {
    /// Mean of the per-seed differences (paired), or the difference of the means.
    pub mean: f64,
    /// Standard deviation of the per-seed differences (paired, two seeds on).
    pub std: Option<f64>,
    /// Standard error of `mean`: of the paired differences, or of a difference of two
    /// independent means when unpaired.
    pub se: Option<f64>,
    /// Whether every run had a baseline run of its seed.
    pub paired: bool,
}

impl Delta {
    /// The Markdown table's cell: `-0.77 ± 0.25 (paired)`, the ± being the std.
    pub(crate) fn markdown(&self) -> String {
        match (self.paired, self.std) {
            (true, Some(s)) => format!("{:+.2} ± {s:.2} (paired)", self.mean),
            (true, None) => format!("{:+.2} (paired)", self.mean),
            (false, _) => format!("{:+.2}", self.mean),
        }
    }
}

/// The difference `mine − base` of per-seed values; `None` when either side has none.
pub(crate) fn delta(mine: &BTreeMap<u64, f64>, base: &BTreeMap<u64, f64>) -> Option<Delta> {
    if mine.is_empty() || base.is_empty() {
        return None;
    }
    let paired: Vec<f64> = mine
        .iter()
        .filter_map(|(seed, v)| base.get(seed).map(|b| v - b))
        .collect();
    if paired.len() == mine.len() {
        let (mean, std) = mean_std(&paired);
        let se = std.map(|s| s / (paired.len() as f64).sqrt());
        return Some(Delta {
            mean,
            std,
            se,
            paired: true,
        });
    }
    let values = |m: &BTreeMap<u64, f64>| m.values().copied().collect::<Vec<_>>();
    let ((a, sa), (b, sb)) = (mean_std(&values(mine)), mean_std(&values(base)));
    let se = match (sa, sb) {
        (Some(sa), Some(sb)) => {
            Some((sa * sa / mine.len() as f64 + sb * sb / base.len() as f64).sqrt())
        }
        _ => None,
    };
    Some(Delta {
        mean: a - b,
        std: None,
        se,
        paired: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paired_when_every_seed_has_a_partner_else_a_difference_of_means() {
        let base = BTreeMap::from([(0, 100.0), (1, 102.0), (2, 101.0)]);
        let mine = BTreeMap::from([(0, 99.0), (1, 101.5), (2, 100.2)]);
        let d = delta(&mine, &base).unwrap();
        assert!(d.paired);
        assert!((d.mean + 0.766_666).abs() < 1e-5, "{d:?}");
        // Differences −1.0, −0.5, −0.8: std 0.2517, SE 0.2517 / √3.
        assert!(
            (d.se.unwrap() - 0.251_661 / 3f64.sqrt()).abs() < 1e-5,
            "{d:?}"
        );
        assert_eq!(d.markdown(), "-0.77 ± 0.25 (paired)");
        let other = BTreeMap::from([(7, 100.0), (8, 101.0)]);
        let d = delta(&other, &base).unwrap();
        assert!(!d.paired && (d.mean + 0.5).abs() < 1e-12);
        assert!(d.se.is_some() && d.std.is_none());
        assert_eq!(delta(&BTreeMap::new(), &base), None);
    }
}
