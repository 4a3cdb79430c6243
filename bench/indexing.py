"""Indexing time: a corpus from scratch, then again unchanged (only changed files are re-embedded).

usage: python bench/indexing.py CORPUS [--index DIR]

CORPUS is a directory, or the Cablegate tarball (extracted to a temporary
directory first). Prints documents, chunks, corpus tokens, wall times and
throughput for both runs.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path


def run(args: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "cablebot.cli", *args], capture_output=True, text=True, check=True)
    return time.perf_counter() - t, out.stderr.strip().splitlines()[-1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--index", type=Path, help="index directory (default: a temporary one, removed after)")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cablebot-bench-"))
    corpus = a.corpus
    if corpus.is_file():
        with tarfile.open(corpus) as tar:
            tar.extractall(tmp / "corpus", filter="data")
        corpus = tmp / "corpus"
    index = a.index or tmp / "index"
    shutil.rmtree(index, ignore_errors=True)
    try:
        scratch, report = run(["index", "--index", str(index), str(corpus)])
        print(f"from scratch: {scratch:.1f} s — {report}")
        from cablebot.chunking import count_tokens
        from cablebot.documents import load_documents
        from cablebot.index import Index

        loaded = Index.load(index)
        corpus_tokens = sum(count_tokens(d.text) for d in load_documents([corpus], lambda m: None).documents)
        print(
            f"  {len(loaded.chunks)} chunks, {corpus_tokens} corpus tokens: {len(loaded.chunks) / scratch:.1f} "
            f"chunks/s, {corpus_tokens / scratch:.0f} corpus tokens/s"
        )
        again, report = run(["index", "--index", str(index), str(corpus)])
        print(f"unchanged re-index: {again:.1f} s — {report}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
