"""What the integrity check costs when an index loads: hashing every data file the manifest lists.

usage: python bench/integrity.py [--index DIR ...] [--vectors N]

For each index directory: its data files' total size and the time to hash
them (what `Index.load` adds to a cold `cablebot ask`), beside the time of the
load itself. Then the same for a file the size of N fp16 sentence vectors
(default 1.5 million: the vector file of an index of the whole Cablegate
release, about 1.1 GB), written to a temporary directory and hashed from the
page cache, as a second ask would find it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from cablebot.index import Index, digest


def timed(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", action="append", default=[], help="index directories to measure")
    ap.add_argument("--vectors", type=int, default=1_500_000)
    a = ap.parse_args()
    for directory in map(Path, a.index):
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
        names = list(manifest.get("checksums") or {})
        if not names:
            files = manifest["files"]
            names = [v for k, v in files.items() if k != "lexical"]
            names += [f"{files['lexical']}.npz", f"{files['lexical']}.vocab.json"]
        size = sum((directory / n).stat().st_size for n in names)
        hashing = timed(lambda names=names, directory=directory: [digest(directory / n) for n in names])
        load = timed(lambda directory=directory: Index.load(directory))
        print(
            f"{directory}: {size / 1e6:.0f} MB in {len(names)} files; hashing {hashing * 1000:.1f} ms, "
            f"whole load (hashing included when recorded) {load * 1000:.0f} ms"
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vectors.faiss"
        block = os.urandom(1 << 24)
        with open(path, "wb") as f:
            for _ in range(max(1, a.vectors * 384 * 2 // len(block))):
                f.write(block)
        size = path.stat().st_size
        hashing = timed(lambda: digest(path))
        print(f"{a.vectors:,} fp16 vectors ({size / 1e9:.2f} GB): hashing {hashing:.2f} s from the page cache")


if __name__ == "__main__":
    main()
