"""The vector index at the scale of the full Cablegate release: 1.5 million 384-dimension vectors.

usage: python bench/scale.py [--n 1500000] [--queries 200] [--index DIR]

Vectors are the cable chunk vectors of an existing index tiled with noise
(or, with no --index, random unit vectors clustered around 20,000 centres, the
shape real embeddings have). Builds the approximate index cablebot uses above
its threshold (cablebot.index.vector_index), saves it, then, in a fresh
process that memory-maps it as `cablebot ask` does, measures resident memory
while serving, query latency, and recall@10 against exact search.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def vectors(n: int, dim: int, index_dir: str | None, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if index_dir:
        from cablebot.index import Index

        idx = Index.load(Path(index_dir))
        base = idx.vectors.reconstruct_n(0, idx.vectors.ntotal)
    else:
        base = rng.standard_normal((20_000, dim), dtype=np.float32)
        base /= np.linalg.norm(base, axis=1, keepdims=True)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        rows = base[rng.integers(0, len(base), stop - start)]
        out[start:stop] = rows + 0.35 * rng.standard_normal(rows.shape, dtype=np.float32) / np.sqrt(dim)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def serve(path: str, queries: str, exact: str) -> None:
    """In a new process: load as cablebot does, search, report latency, recall and memory."""
    import faiss

    rss0 = _status("VmRSS")
    index = faiss.read_index(path, faiss.IO_FLAG_MMAP)
    q = np.load(queries)
    truth = np.load(exact)
    params = faiss.SearchParametersIVF(nprobe=32)
    times, found = [], 0
    for i in range(len(q)):
        t = time.perf_counter()
        _, ids = index.search(q[i : i + 1], 10, params=params)
        times.append((time.perf_counter() - t) * 1000)
        found += len(set(ids[0]) & set(truth[i]))
    print(
        json.dumps(
            {
                "median_ms": float(np.median(times)),
                "p95_ms": float(np.percentile(times, 95)),
                "recall_at_10": found / (10 * len(q)),
                "peak_rss_mib": _status("VmHWM"),
                "rss_before_load_mib": rss0,
            }
        )
    )


def _status(field: str) -> float:
    """A memory figure of this process from /proc, in MiB (ru_maxrss would include the parent's, pre-exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_500_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--index", help="a cablebot index whose vectors to tile (default: synthetic)")
    ap.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        serve(*a.serve)
        return
    import faiss

    from cablebot.index import vector_index

    data = vectors(a.n, 384, a.index)
    q = vectors(a.queries, 384, a.index, seed=1)
    t = time.perf_counter()
    index, kind = vector_index(data, approximate_above=0)
    build = time.perf_counter() - t
    print(f"{a.n} vectors: built {kind} in {build:.0f} s")
    flat = faiss.IndexFlatIP(384)
    flat.add(data)
    _, truth = flat.search(q, 10)
    del flat, data
    with tempfile.TemporaryDirectory() as tmp:
        path, qp, tp = f"{tmp}/v.faiss", f"{tmp}/q.npy", f"{tmp}/t.npy"
        faiss.write_index(index, path)
        np.save(qp, q)
        np.save(tp, truth)
        size = Path(path).stat().st_size / 2**20
        out = subprocess.run(
            [sys.executable, __file__, "--serve", path, qp, tp], capture_output=True, text=True, check=True
        )
        r = json.loads(out.stdout)
        print(
            f"index file {size:.0f} MiB; serving process peak RSS {r['peak_rss_mib']:.0f} MiB "
            f"(python + faiss + numpy before loading: {r['rss_before_load_mib']:.0f} MiB)"
        )
        print(
            f"query latency median {r['median_ms']:.2f} ms, p95 {r['p95_ms']:.2f} ms; "
            f"recall@10 vs exact {r['recall_at_10']:.3f} ({a.queries} queries)"
        )


if __name__ == "__main__":
    main()
