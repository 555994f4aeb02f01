#!/usr/bin/env python3
"""Draws the CSVs of experiments/density_csv.yaml from a known non-Gaussian density on R^8,
so that a learned density can be checked against the truth (numpy only, seeded).

The density: y ~ a mixture of three Gaussians with diagonal covariances (weights 0.5, 0.3,
0.2), x = A sinh(y) with a fixed well-conditioned mixing matrix A. Its log-density is exact:
  log p(x) = log p_y(y) - sum_i log cosh(y_i) - log|det A|,   y = asinh(A^-1 x).

Writes experiments/data/known8d.csv (8000 rows, header x0..x7: the training file) and
experiments/data/known8d_holdout.csv (2000 fresh rows) with known8d_holdout_logpdf.csv (their
true log-densities), and prints the true mean log-likelihood of the holdout rows.
  python3 scripts/known_density.py
"""

import math
import os

import numpy as np

D = 8
WEIGHTS = np.array([0.5, 0.3, 0.2])


def parameters():
    rng = np.random.default_rng(20261202)
    means = rng.normal(0.0, 1.0, size=(3, D))
    scales = rng.uniform(0.3, 0.9, size=(3, D))
    q, _ = np.linalg.qr(rng.normal(size=(D, D)))
    mixing = q @ np.diag(np.linspace(0.5, 1.5, D))
    return means, scales, mixing


def sample(n, rng):
    means, scales, mixing = parameters()
    component = rng.choice(3, size=n, p=WEIGHTS)
    y = means[component] + scales[component] * rng.normal(size=(n, D))
    return np.sinh(y) @ mixing.T


def log_density(x):
    means, scales, mixing = parameters()
    y = np.arcsinh(x @ np.linalg.inv(mixing).T)
    per_component = []
    for k in range(3):
        z = (y - means[k]) / scales[k]
        log_n = -0.5 * (z * z).sum(1) - np.log(scales[k]).sum() - 0.5 * D * math.log(2 * math.pi)
        per_component.append(math.log(WEIGHTS[k]) + log_n)
    stacked = np.stack(per_component)
    top = stacked.max(0)
    log_py = top + np.log(np.exp(stacked - top).sum(0))
    _, log_det = np.linalg.slogdet(mixing)
    return log_py - np.log(np.cosh(y)).sum(1) - log_det


def write(path, rows, names):
    with open(path, "w") as f:
        f.write(",".join(names) + "\n")
        for row in rows:
            f.write(",".join(f"{v:.6g}" for v in row) + "\n")


def main():
    here = os.path.join(os.path.dirname(__file__), "..", "experiments", "data")
    os.makedirs(here, exist_ok=True)
    rng = np.random.default_rng(0)
    names = [f"x{i}" for i in range(D)]
    train = sample(8000, rng)
    holdout = sample(2000, rng)
    write(os.path.join(here, "known8d.csv"), train, names)
    write(os.path.join(here, "known8d_holdout.csv"), holdout, names)
    # The truth at the rows as written (rounded to 6 significant digits).
    rounded = np.loadtxt(os.path.join(here, "known8d_holdout.csv"), delimiter=",", skiprows=1)
    truth = log_density(rounded)
    write(os.path.join(here, "known8d_holdout_logpdf.csv"), truth[:, None], ["log_likelihood"])
    se = truth.std(ddof=1) / math.sqrt(len(truth))
    print(f"true mean log-likelihood of the holdout rows: {truth.mean():.4f} ± {se:.4f} nats")


if __name__ == "__main__":
    main()
