#!/usr/bin/env python3
"""flowvae against nflows (PyTorch) on the same density model, data split and budget.

For each round r (seed r): `flowvae run experiments/density_mnist10k_<model>.yaml` for E
epochs, then nflows with the same architecture for E epochs on the rows that run read
(`flowvae rows`), alternating, one process at a time and the same number of threads. Reports
each side's test log-likelihood (nats per image in logit space, as flowvae's summary and the
MAF paper) over the seeds, and the training speed as the ratio of median epoch times (an
epoch: the training steps and the validation pass; flowvae's from its metrics.csv, nflows'
timed here the same way).

    /work/torchenv/bin/python scripts/bench_density_vs_pytorch.py --model maf --epochs 3 \
        --rounds 3 --threads 2 --flowvae target/release/flowvae

Architectures (the flowvae YAMLs, rebuilt in nflows):
  maf: BatchNorm on the data side, then 5 MADEs of one 1024-unit ReLU layer with the order
       reversed between them (nflows' MaskedAffineAutoregressiveTransform, num_blocks=0:
       input, one hidden layer, output); nflows maps the scale by softplus, flowvae
       soft-clamps the log-scale: the same model class, not the same parametrisation.
  nsf: BatchNorm, then 5 rational-quadratic coupling layers (8 bins on [-3, 3], linear
       tails, one 1024-unit hidden layer, masks alternating even/odd coordinates).
Data: dequantized uniformly (v + u) / 256 and mapped by logit(lambda + (1 - 2 lambda) x) with
lambda = 1e-6; the log-likelihood is that of the logit-space point. Adam 1e-4, batch 100.
Results go to --out as JSON lines, one per measurement, and a summary at the end.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from nflows import distributions, flows, transforms
from nflows.nn import nets

LAMBDA = 1e-6
LEVELS = 256


def read_rows(path):
    """The CSV of `flowvae rows`: pixel columns (and a label column, dropped)."""
    with open(path) as f:
        header = f.readline().strip().split(",")
    data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float32, ndmin=2)
    if header[-1] == "label":
        data = data[:, :-1]
    return torch.from_numpy(data)


def to_logit(x, generator):
    """Grey levels in [0, 1] -> dequantized logit-space points (the flowvae protocol)."""
    grey = torch.round(x * (LEVELS - 1))
    u = (grey + torch.rand(x.shape, generator=generator)) / LEVELS
    return torch.logit(LAMBDA + (1 - 2 * LAMBDA) * u)


def maf(dim):
    layers = [transforms.BatchNorm(dim)]
    for j in range(5):
        if j > 0:
            layers.append(transforms.ReversePermutation(dim))
        layers.append(
            transforms.MaskedAffineAutoregressiveTransform(
                dim, hidden_features=1024, num_blocks=0, use_residual_blocks=False
            )
        )
    return layers


class ConditionerNet(torch.nn.Module):
    """One 1024-unit ReLU layer; nflows' couplings call the net with (inputs, context)."""

    def __init__(self, inputs, outputs):
        super().__init__()
        self.mlp = nets.MLP((inputs,), (outputs,), hidden_sizes=[1024])

    def forward(self, x, context=None):
        return self.mlp(x)


def nsf(dim):
    def net(inputs, outputs):
        return ConditionerNet(inputs, outputs)

    layers = [transforms.BatchNorm(dim)]
    for j in range(5):
        mask = torch.tensor([(i + j) % 2 for i in range(dim)])
        layers.append(
            transforms.PiecewiseRationalQuadraticCouplingTransform(
                mask, net, num_bins=8, tails="linear", tail_bound=3.0
            )
        )
    return layers


def mean_log_likelihood(flow, rows, generator, batch=1000):
    flow.eval()
    with torch.no_grad():
        total = 0.0
        for start in range(0, rows.shape[0], batch):
            y = to_logit(rows[start : start + batch], generator)
            total += flow.log_prob(y).double().sum().item()
    flow.train()
    return total / rows.shape[0]


def train_nflows(model, splits, epochs, seed):
    """E epochs of nflows; returns the test log-likelihood and each epoch's seconds."""
    torch.manual_seed(seed)
    train, val, test = splits
    dim = train.shape[1]
    layers = maf(dim) if model == "maf" else nsf(dim)
    # nflows maps data to noise: the list runs from the data side.
    flow = flows.Flow(transforms.CompositeTransform(layers), distributions.StandardNormal([dim]))
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(seed)
    epoch_seconds = []
    for _ in range(epochs):
        started = time.perf_counter()
        order = torch.randperm(train.shape[0], generator=generator)
        for start in range(0, train.shape[0], 100):
            y = to_logit(train[order[start : start + 100]], generator)
            loss = -flow.log_prob(y).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        mean_log_likelihood(flow, val, generator)
        epoch_seconds.append(time.perf_counter() - started)
    return mean_log_likelihood(flow, test, generator), epoch_seconds


def run_flowvae(args, seed, root):
    """E epochs of flowvae; returns the run folder, test log-likelihood and epoch seconds."""
    env = dict(os.environ, FLOWVAE_THREADS=str(args.threads), RUST_LOG="warn")
    experiment = f"experiments/density_mnist10k_{args.model}.yaml"
    run_id = f"seed{seed}"
    subprocess.run(
        [args.flowvae, "run", experiment, "--results", root, "--run-id", run_id,
         "--set", f"seed={seed}", "--set", f"train.epochs={args.epochs}"],
        check=True, env=env, stdout=subprocess.DEVNULL,
    )
    run = os.path.join(root, f"density_mnist10k_{args.model}", run_id)
    with open(os.path.join(run, "summary.json")) as f:
        ll = json.load(f)["test"]["log_likelihood"]
    with open(os.path.join(run, "metrics.csv")) as f:
        times = [float(line.split(",")[-1]) for line in f.read().splitlines()[1:]]
    return run, ll, [b - a for a, b in zip([0.0] + times, times)]


def export_splits(flowvae, run, folder):
    splits = []
    for split in ("train", "val", "test"):
        path = os.path.join(folder, f"{split}.csv")
        subprocess.run([flowvae, "rows", run, "--split", split, "--output", path, "--force"],
                       check=True, stdout=subprocess.DEVNULL)
        splits.append(read_rows(path))
    return splits


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=["maf", "nsf"], default="maf")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3, help="seeds 0..rounds-1, alternating")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--flowvae", default="target/release/flowvae")
    ap.add_argument("--out", default="bench_density.jsonl")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = {"flowvae": ([], []), "nflows": ([], [])}
    with tempfile.TemporaryDirectory() as root, open(args.out, "a") as out:
        def record(**entry):
            entry.update(model=args.model, epochs=args.epochs, threads=args.threads)
            out.write(json.dumps(entry) + "\n")
            out.flush()
            print(json.dumps(entry), file=sys.stderr)

        for seed in range(args.rounds):
            run, ll, seconds = run_flowvae(args, seed, root)
            results["flowvae"][0].append(ll)
            results["flowvae"][1].extend(seconds)
            record(library="flowvae", seed=seed, test_log_likelihood=ll, epoch_seconds=seconds)
            splits = export_splits(args.flowvae, run, root)
            ll, seconds = train_nflows(args.model, splits, args.epochs, seed)
            results["nflows"][0].append(ll)
            results["nflows"][1].extend(seconds)
            record(library="nflows", seed=seed, test_log_likelihood=ll, epoch_seconds=seconds)
        summary = {"summary": True, "torch": torch.__version__}
        for name, (lls, seconds) in results.items():
            spread = statistics.stdev(lls) if len(lls) > 1 else math.nan
            summary[name] = {"test_log_likelihood_mean": statistics.mean(lls),
                             "test_log_likelihood_std": spread,
                             "median_epoch_seconds": statistics.median(seconds)}
        ratio = summary["nflows"]["median_epoch_seconds"] / summary["flowvae"]["median_epoch_seconds"]
        summary["speedup_flowvae_over_nflows"] = ratio
        record(**summary)


if __name__ == "__main__":
    main()
