#!/usr/bin/env python3
"""Reads a flowvae checkpoint with the `safetensors` package, checks its names and shapes,
and writes it back with Python (`--rewrite OUT`), so that flowvae can read Python's file.

    pip install safetensors numpy
    python3 scripts/check_safetensors.py results/quickstart/<run>/vae/checkpoints/best.safetensors
"""
import argparse
import sys

from safetensors.numpy import load_file, save_file


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkpoint")
    parser.add_argument("--rewrite", help="write the tensors back to this file with Python")
    args = parser.parse_args()
    tensors = load_file(args.checkpoint)
    for name in sorted(tensors):
        t = tensors[name]
        print(f"{name:40s} {str(t.dtype):8s} {tuple(t.shape)}")
    required = ["encoder.fc0.weight", "encoder.mu.weight", "encoder.log_var.weight", "decoder.out.weight"]
    missing = [n for n in required if n not in tensors]
    if missing:
        print(f"missing tensors: {missing}", file=sys.stderr)
        return 1
    w = tensors["encoder.fc0.weight"]
    # PyTorch's nn.Linear layout: (out_features, in_features).
    if w.ndim != 2 or w.shape[1] != tensors["decoder.out.weight"].shape[0]:
        print(f"unexpected layout of encoder.fc0.weight {w.shape}", file=sys.stderr)
        return 1
    if args.rewrite:
        save_file(tensors, args.rewrite)
        print(f"rewritten to {args.rewrite}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
