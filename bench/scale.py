"""The whole system at the size of the full Cablegate release: about 7 million chunks.

usage: python bench/scale.py --index BASE [--chunks 7000000] [--out DIR]
       python bench/scale.py --index BASE --again DIR   (only the asks, over an index built before)

BASE is an index of the 1,295 cables and the article (`cablebot index --index
BASE CABLES src/cablebot/data/seed`). Its cables are tiled until the index
holds `--chunks` chunks: each copy gets new document ids ("09MEXICO3061~7"),
the same text, and its sentence vectors with noise added (embedding millions
of repeated sentences would measure nothing new). The copies go through the
index's own storage path (`cablebot.index.write_generation`: vector index,
chunk and document stores, BM25, manifest); only embedding is skipped.

Then, each in a fresh process as a user would run them:
- cold `cablebot ask` of the design question, three times: wall time, peak
  RSS, and whether it still answers 125 from the article (the first reads
  from disk what the page cache lost while the index was built); as root,
  twice more with the page cache dropped first (then a small ask reads the
  libraries and the model back, so that only the index comes from disk);
- warm questions (the development questions, through `Cablebot.ask`):
  median and p95;
- recall@10 of the approximate vector search against exact search, with
  real questions' vectors (development and training questions) as queries.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from latency import ask_times, load_questions, wall  # bench/latency.py: the same timing

from cablebot.chunking import Chunk
from cablebot.index import Index, write_generation
from cablebot.vectors import FaissVectors

EVAL = Path(__file__).resolve().parents[1].parent / "shared" / "eval"
TRAIN = Path(__file__).resolve().parents[1] / "eval" / "train.jsonl"
QUESTION = "How many Mexican officials guard the southern border?"
NOISE = 0.35  # noise on a copy's sentence vectors: the cosine to the original is about 0.94
TRAINING = 1_000_000  # vectors to train the inverted file on (it takes up to 64 a cell)
DROP_CACHES = "/proc/sys/vm/drop_caches"  # Linux, root only


class Tiled(Sequence[Chunk]):
    """The base index's chunks, then its cables' chunks again for each copy, under the copies' ids."""

    def __init__(self, base: list[Chunk], cable_rows: np.ndarray, copies: int) -> None:
        self.base, self.rows, self.copies = base, cable_rows, copies

    def __len__(self) -> int:
        return len(self.base) + self.copies * len(self.rows)

    def __getitem__(self, i):  # type: ignore[override]
        if not 0 <= i < len(self):
            raise IndexError(i)
        if i < len(self.base):
            return self.base[i]
        copy, j = divmod(i - len(self.base), len(self.rows))
        chunk = self.base[int(self.rows[j])]
        return dataclasses.replace(chunk, doc_id=f"{chunk.doc_id}~{copy + 1}")


class TopK:
    """Exact top 10 inner products per query, kept while vectors stream past."""

    def __init__(self, n: int) -> None:
        self.scores = np.full((n, 10), -np.inf, dtype=np.float32)
        self.ids = np.full((n, 10), -1, dtype=np.int64)

    def update(self, sims: np.ndarray, first_id: int) -> None:
        top = np.argpartition(-sims, 10, axis=1)[:, :10]
        scores = np.concatenate([self.scores, np.take_along_axis(sims, top, axis=1)], axis=1)
        ids = np.concatenate([self.ids, top + first_id], axis=1)
        best = np.argsort(-scores, axis=1)[:, :10]
        self.scores, self.ids = np.take_along_axis(scores, best, axis=1), np.take_along_axis(ids, best, axis=1)


def build(base_dir: Path, out: Path, target: int) -> dict[str, Any]:
    """Tile `base_dir` into a new index in `out` of about `target` chunks; returns what it measured."""
    from cablebot.config import load_settings
    from cablebot.embedding import load_embedder

    base = Index.load(base_dir)
    store = base.documents
    documents = list(store.records)
    chunks = list(base.chunks)
    cables = [r for r, d in enumerate(documents) if d.is_cable]
    cable_rows = np.concatenate([np.arange(store.chunk_start[r], store.chunk_start[r + 1]) for r in cables])
    copies = max(0, math.ceil((target - len(chunks)) / len(cable_rows)))
    print(
        f"base: {len(documents)} documents, {len(chunks)} chunks, {base.vectors.ntotal} sentence vectors; "
        f"{copies} copies of its {len(cables)} cables ({len(cable_rows)} chunks a copy)",
        flush=True,
    )
    matrix = base.vectors.reconstruct(np.arange(base.vectors.ntotal))
    entries, offsets = np.asarray(base.sentences), np.asarray(base.offsets)
    cable_entries = np.concatenate([entries[offsets[r] : offsets[r + 1]] for r in cable_rows])
    unique, inverse = np.unique(cable_entries, return_inverse=True)  # a copy's distinct sentences
    total = len(matrix) + copies * len(unique)
    sentences = np.concatenate([entries, *(len(matrix) + c * len(unique) + inverse for c in range(copies))])
    lengths = np.tile(np.diff(offsets)[cable_rows], copies)
    all_offsets = np.concatenate([offsets, offsets[-1] + np.cumsum(lengths)])
    docs = documents + [
        dataclasses.replace(documents[r], id=f"{documents[r].id}~{c + 1}") for c in range(copies) for r in cables
    ]
    settings = load_settings(None, base_dir)
    embedder = load_embedder(settings.embedding_model, settings.embedding_backend, settings.embedding_quantize)
    queries = load_questions(EVAL / "dev-seed.jsonl", EVAL / "dev-cables.jsonl", TRAIN)
    q = np.stack([embedder.embed_query(x) for x in queries]).astype(np.float32)
    rng = np.random.default_rng(0)

    def copy_vectors() -> np.ndarray:
        v = matrix[unique] + NOISE * rng.standard_normal((len(unique), matrix.shape[1]), dtype=np.float32) / 20
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    t0 = time.perf_counter()
    training_copies = max(0, math.ceil((TRAINING - len(matrix)) / len(unique)))
    vectors = FaissVectors.new(total, np.concatenate([matrix, *(copy_vectors() for _ in range(training_copies))]))
    print(f"{vectors.kind}: trained in {time.perf_counter() - t0:.0f} s", flush=True)
    truth = TopK(len(q))
    vectors.add(matrix)
    truth.update(q @ matrix.T, 0)
    for c in range(copies):
        v = copy_vectors()
        vectors.add(v)
        truth.update(q @ v.T, len(matrix) + c * len(unique))
        if c % 20 == 0:
            print(
                f"  copy {c + 1}/{copies}: {vectors.ntotal} vectors, {time.perf_counter() - t0:.0f} s", flush=True
            )
    settings_out = {
        key: base.manifest[key] for key in ("uid", "model", "dimension", "chunker", "sources", "excluded")
    }
    t1 = time.perf_counter()
    out.mkdir(parents=True)
    write_generation(
        out, 1, set(), [], docs, Tiled(chunks, cable_rows, copies), sentences.astype(np.int32), all_offsets,
        vectors, settings_out,
    )  # fmt: skip
    stored = time.perf_counter() - t1
    print(f"stored in {stored:.0f} s", flush=True)
    recall = _recall(vectors, q, truth.ids)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {
        "documents": len(docs),
        "chunks": len(chunks) + copies * len(cable_rows),
        "sentences": total,
        "build_s": time.perf_counter() - t0,
        "store_s": stored,
        "disk_gib": size / 2**30,
        "queries": len(q),
        "recall_at_10": recall,
    }


def _recall(vectors: FaissVectors, q: np.ndarray, truth: np.ndarray) -> dict[int, tuple[float, float]]:
    """Recall@10 and median milliseconds of the vector search alone, by cells searched (the configured
    number last, as the index stays)."""
    configured, out = vectors.nprobe, {}
    for nprobe in [configured // 4, configured // 2, configured * 2, configured]:
        vectors.nprobe = nprobe
        found, times = [], []
        for x in q:
            t = time.perf_counter()
            found.append(vectors.search(x, 10)[0])
            times.append((time.perf_counter() - t) * 1000)
        recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)])
        out[nprobe] = (float(recall), float(np.median(times)))
    return out


PEAK = (  # prints the process's peak resident memory (kB) on exit
    "import atexit,sys;atexit.register(lambda:print('peak',"
    "open('/proc/self/status').read().split('VmHWM:')[1].split()[0],file=sys.stderr));"
)


def cold_ask(index: Path) -> dict[str, object]:
    """`cablebot ask` in a new process: wall time, peak RSS, the answer."""
    code = PEAK + f"sys.argv=['cablebot','ask','--json','--index',{str(index)!r},{QUESTION!r}];"
    code += "from cablebot.cli import main;main()"
    t = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    peak = int(run.stderr.split("peak")[-1].split()[0]) / 1024
    answer = json.loads(run.stdout)
    cited = answer["citations"][0] if answer.get("citations") else {}
    return {
        "wall_s": wall,
        "peak_mib": peak,
        "answers_125": "125" in answer["answer"],
        "cited": f"{cited.get('source')} {cited.get('location')}",
    }


def warm(index: Path) -> dict[str, float]:
    """Every development question asked once after a warm-up pass, embedding included, in one process."""
    from cablebot.config import load_settings
    from cablebot.core import Cablebot

    bot = Cablebot(load_settings(None, index), build_missing=False)
    times = ask_times(bot, load_questions(EVAL / "dev-seed.jsonl", EVAL / "dev-cables.jsonl"))
    return {"p50_ms": float(np.median(times)), "p95_ms": float(np.percentile(times, 95)), "questions": len(times)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", required=True, help="index of the 1,295 cables and the article")
    ap.add_argument("--chunks", type=int, default=7_000_000)
    ap.add_argument("--out", default="/tmp/cablebot-scale", help="where the tiled index goes (must not exist)")
    ap.add_argument("--again", help="measure the asks over a tiled index built before, without building")
    ap.add_argument("--warm", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.warm:
        print(json.dumps(warm(Path(a.warm))))
        return
    if a.again:
        asks(Path(a.index), Path(a.again))
        return
    out = Path(a.out)
    if out.exists():
        sys.exit(f"{out} exists; remove it or choose another --out")
    built = build(Path(a.index), out, a.chunks)
    print(
        f"{built['chunks']:,} chunks of {built['documents']:,} documents, {built['sentences']:,} sentence "
        f"vectors: built in {built['build_s']:.0f} s ({built['store_s']:.0f} s storing), "
        f"{built['disk_gib']:.1f} GiB on disk"
    )
    for nprobe, (recall, ms) in built["recall_at_10"].items():
        print(
            f"{nprobe} cells searched: recall@10 against exact search {recall:.3f}, {ms:.1f} ms median "
            f"({built['queries']} real questions' vectors)"
        )
    asks(Path(a.index), out)


def asks(base: Path, out: Path) -> None:
    """Print cold asks (each a new process) and warm asks (in another process, as the build's memory is gone)."""
    baseline = sorted(wall([sys.executable, "-c", "pass"]) for _ in range(3))[1]
    print(f"bare python start (the machine's baseline): {baseline:.3f} s")
    for n in range(3):
        cold = cold_ask(out)
        print(
            f"cold `cablebot ask` {n + 1}: {cold['wall_s']:.2f} s, peak RSS {cold['peak_mib']:.0f} MiB; "
            f"answers 125: {cold['answers_125']} (cites {cold['cited']})"
        )
    if os.access(DROP_CACHES, os.W_OK):  # root: also from an empty page cache, as after a reboot
        for n in range(2):
            subprocess.run(["sync"], check=True)
            Path(DROP_CACHES).write_text("1")
            cold_ask(base)  # reads the libraries and the model back, not the big index
            cold = cold_ask(out)
            print(f"cold `cablebot ask`, the index's pages dropped first {n + 1}: {cold['wall_s']:.2f} s")
    run = subprocess.run(
        [sys.executable, __file__, "--index", str(base), "--warm", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    w = json.loads(run.stdout)
    print(f"warm ask: p50 {w['p50_ms']:.1f} ms, p95 {w['p95_ms']:.1f} ms ({w['questions']} development questions)")


if __name__ == "__main__":
    main()
