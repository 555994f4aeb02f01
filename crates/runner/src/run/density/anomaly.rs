//! The anomaly score of a density run trained without some classes: how well the test
//! log-likelihood separates the left-out classes from the rest, as an AUROC.

/// The area under the ROC curve of the score `−log p(x)` for telling `anomalous` rows from the
/// others: the probability that a random anomalous row scores higher than a random normal one,
/// ties counting one half (the Mann–Whitney statistic, from average ranks). `None` when
/// either group is empty.
pub fn auroc(log_likelihoods: &[f64], anomalous: &[bool]) -> Option<f64> {
    let positives = anomalous.iter().filter(|&&a| a).count();
    let negatives = anomalous.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..log_likelihoods.len()).collect();
    // Ascending score −log p: descending log-likelihood; NaN sorts as the most anomalous.
    order.sort_by(|&a, &b| log_likelihoods[b].total_cmp(&log_likelihoods[a]));
    let mut rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let tied = order[start..]
            .iter()
            .take_while(|&&i| log_likelihoods[i] == log_likelihoods[order[start]])
            .count()
            .max(1);
        // Ranks start + 1 ..= start + tied share their average.
        let average_rank = start as f64 + (tied as f64 + 1.0) / 2.0;
        let in_group = order[start..start + tied]
            .iter()
            .filter(|&&i| anomalous[i])
            .count();
        rank_sum += average_rank * in_group as f64;
        start += tied;
    }
    let (p, n) = (positives as f64, negatives as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

#[cfg(test)]
mod tests {
    use super::auroc;

    /// Against the definition: the share of (anomalous, normal) pairs ordered correctly.
    #[test]
    fn auroc_is_the_share_of_correctly_ordered_pairs() {
        let ll = [-1.0, -5.0, -2.0, -2.0, -9.0, -0.5, -2.0];
        let anomalous = [false, true, false, true, true, false, false];
        let mut correct = 0.0;
        let mut pairs = 0.0;
        let rows = |wanted: bool| ll.iter().zip(anomalous).filter(move |(_, a)| *a == wanted);
        for (la, _) in rows(true) {
            for (ln, _) in rows(false) {
                pairs += 1.0;
                correct += match la.partial_cmp(ln) {
                    Some(std::cmp::Ordering::Less) => 1.0,
                    Some(std::cmp::Ordering::Equal) => 0.5,
                    _ => 0.0,
                };
            }
        }
        let got = auroc(&ll, &anomalous).unwrap();
        assert!(
            (got - correct / pairs).abs() < 1e-12,
            "{got} vs {}",
            correct / pairs
        );
    }

    #[test]
    fn perfect_and_reversed_scores_give_one_and_zero() {
        let ll = [-1.0, -2.0, -10.0, -20.0];
        assert_eq!(auroc(&ll, &[false, false, true, true]), Some(1.0));
        assert_eq!(auroc(&ll, &[true, true, false, false]), Some(0.0));
        assert_eq!(auroc(&ll, &[false; 4]), None);
    }
}
