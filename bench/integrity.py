"""What the integrity check costs when an index loads.

usage: python bench/integrity.py --index DIR [--index DIR ...]

For each index directory: its data files' total size, what `Index.load`
hashes (files up to CHECK_AT_LOAD; larger ones are checked by size, and the
chunk and document stores record by record as they are read), the time that
hashing takes, the time of the whole load, and the time to hash everything
(what a load would cost if every file were hashed), all from the page cache.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from cablebot.index import CHECK_AT_LOAD, Index, digest


def timed(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", action="append", required=True, help="index directories to measure")
    a = ap.parse_args()
    for directory in map(Path, a.index):
        checksums = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))["checksums"]
        paths = [directory / n for n in checksums]
        hashed = [p for p in paths if p.stat().st_size <= CHECK_AT_LOAD]
        total = sum(p.stat().st_size for p in paths)
        small = sum(p.stat().st_size for p in hashed)
        on_load = timed(lambda hashed=hashed: [digest(p) for p in hashed])
        load = timed(lambda directory=directory: Index.load(directory))
        everything = timed(lambda paths=paths: [digest(p) for p in paths], repeat=1)
        print(
            f"{directory}: {total / 1e6:,.0f} MB in {len(paths)} files; load hashes {small / 1e6:,.0f} MB in "
            f"{on_load * 1000:.1f} ms; whole load {load * 1000:.0f} ms; hashing every file would take "
            f"{everything * 1000:,.0f} ms"
        )


if __name__ == "__main__":
    main()
