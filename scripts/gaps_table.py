#!/usr/bin/env python3
"""Markdown table of `flowvae gaps --out` reports: mean ± std over seeds per model and split.

    scripts/gaps_table.py results/mnist10k_flows/gaps/*.json

File names are <seed>_<model>_<split>.json (as the study writes them)."""
import json
import statistics
import sys
from collections import defaultdict

rows = defaultdict(list)
for path in sys.argv[1:]:
    name = path.rsplit("/", 1)[-1].removesuffix(".json")
    seed, rest = name.split("_", 1)
    model, split = rest.rsplit("_", 1)
    rows[(split, model)].append(json.load(open(path)))

def cell(values):
    if len(values) < 2:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"

keys = ["log_px", "elbo_amortized", "elbo_optimized", "amortization_gap", "approximation_gap"]
print("| split | model | seeds | log p(x) | ELBO, encoder | ELBO, optimised q | amortization gap | approximation gap |")
print("|---|---|---|---|---|---|---|---|")
for (split, model), reports in sorted(rows.items(), key=lambda kv: (kv[0][0] != "test", kv[0][1])):
    cells = [cell([r[k] for r in reports]) for k in keys]
    print(f"| {split} | {model} | {len(reports)} | " + " | ".join(cells) + " |")
