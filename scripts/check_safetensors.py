#!/usr/bin/env python3
"""Reads a flowvae checkpoint with the `safetensors` package, checks its names and shapes,
and writes it back with Python (`--rewrite OUT`), so that flowvae can read Python's file.

flowvae refuses files without its checksum (metadata `checksum = crc32:<hex>`, over the other
metadata entries and every tensor; crates/flows/src/checked_file.rs has the definition).
`--rewrite` adds it, so this is also how to adopt a file written by another tool or by an
older flowvae (a `flowvae-checkpoint-1` file becomes `flowvae-checkpoint-2`, its loop state
kept). Only rewrite a file you trust: the checksum then vouches for whatever it holds.

    pip install safetensors numpy
    python3 scripts/check_safetensors.py results/quickstart/<run>/vae/checkpoints/best.safetensors
"""
import argparse
import json
import struct
import sys
import zlib

import numpy as np
from safetensors.numpy import load_file, save_file

DTYPES = {np.dtype("float32"): "F32", np.dtype("float64"): "F64", np.dtype("float16"): "F16",
          np.dtype("int64"): "I64", np.dtype("int32"): "I32", np.dtype("uint8"): "U8"}


def read_metadata(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return header.get("__metadata__", {}) or {}


def checksum(metadata, tensors):
    """The CRC-32 flowvae writes and verifies (crates/flows/src/checked_file.rs)."""
    crc = 0
    for key in sorted(metadata):
        if key == "checksum":
            continue
        for part in (key.encode(), b"\0", metadata[key].encode(), b"\0"):
            crc = zlib.crc32(part, crc)
    for name in sorted(tensors):
        t = np.ascontiguousarray(tensors[name])
        shape = ",".join(str(d) for d in t.shape)
        for part in (name.encode(), b"\0", DTYPES[t.dtype].encode(), b"\0", shape.encode(), b"\0"):
            crc = zlib.crc32(part, crc)
        crc = zlib.crc32(t.astype(t.dtype.newbyteorder("<"), copy=False).tobytes(), crc)
    return f"crc32:{crc:08x}"


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
    metadata = read_metadata(args.checkpoint)
    if "checksum" in metadata:
        ok = metadata["checksum"] == checksum(metadata, tensors)
        print(f"checksum {metadata['checksum']}: {'ok' if ok else 'MISMATCH'}")
    if args.rewrite:
        metadata = {k: v for k, v in metadata.items() if k != "checksum"}
        if metadata.get("format") == "flowvae-checkpoint-1":
            metadata["format"] = "flowvae-checkpoint-2"
        metadata.setdefault("format", "flowvae-params-1")
        metadata["checksum"] = checksum(metadata, tensors)
        save_file(tensors, args.rewrite, metadata=metadata)
        print(f"rewritten to {args.rewrite} ({metadata['checksum']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
