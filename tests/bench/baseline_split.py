#!/usr/bin/env python3
"""Naive baseline splitter: what a quick script would do, for the benchmark to compare against.

  python3 tests/bench/baseline_split.py INPUT OUTDIR [--max-bytes 500000]

json.load()s the whole JSON array, re-serialises each record compactly, greedily packs records
into JSON arrays of at most --max-bytes UTF-8 bytes and writes OUTDIR/chunk-N.json (N from 1).
No validation, no streaming: memory grows with the input on purpose. A record larger than
--max-bytes on its own still gets a chunk of its own (counted as "oversized").
"""
import argparse
import json
import os
import sys


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input")
    ap.add_argument("outdir")
    ap.add_argument("--max-bytes", type=int, default=500000)
    a = ap.parse_args(argv)

    with open(a.input, encoding="utf-8") as f:
        users = json.load(f)
    os.makedirs(a.outdir, exist_ok=True)

    chunks = 0
    oversized = 0
    parts = []
    size = 2  # "[" + "]"

    def flush():
        nonlocal chunks, parts, size
        chunks += 1
        with open(os.path.join(a.outdir, "chunk-%d.json" % chunks), "wb") as out:
            out.write(b"[" + b",".join(parts) + b"]")
        parts = []
        size = 2

    for rec in users:
        b = json.dumps(rec, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        extra = len(b) + (1 if parts else 0)
        if parts and size + extra > a.max_bytes:
            flush()
            extra = len(b)
        if 2 + len(b) > a.max_bytes:
            oversized += 1
        parts.append(b)
        size += extra
    if parts:
        flush()

    print("users=%d chunks=%d oversized=%d" % (len(users), chunks, oversized))
    return 0


if __name__ == "__main__":
    sys.exit(main())
