"""cablebot against the tutorial pipeline (bench/tutorial.py), in one run on this machine.

usage: python bench/compare.py --cables DIR_OR_TARBALL --cables-index DIR [--sample 150]

1. cold start: one `ask` in a new process, index already built (seed article); wall time and peak memory
2. warm latency per question over the 1,295-cable index (batch, in process): median and p95
3. indexing throughput on the same sample of cables: corpus tokens per second
4. peak memory of the Discord bot serving the cable index (over the loopback fake)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUESTION = "How many Mexican officials guard the southern border?"


def measure(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) and stdout of one command in a new process."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return time.perf_counter() - t, usage.ru_maxrss / 1024, out


def cold(tmp: Path) -> None:
    seed_index = tmp / "seed-index"
    subprocess.run(
        [sys.executable, "-m", "cablebot.cli", "index", "--index", str(seed_index)],
        check=True,
        capture_output=True,
    )
    tutorial_index = tmp / "tutorial-seed"
    from cablebot.config import BUNDLED_CORPUS

    subprocess.run(
        [sys.executable, str(HERE / "tutorial.py"), "index", str(BUNDLED_CORPUS), str(tutorial_index)],
        check=True,
        capture_output=True,
    )
    ours = [measure(["cablebot", "ask", "--index", str(seed_index), QUESTION]) for _ in range(3)]
    theirs = [
        measure([sys.executable, str(HERE / "tutorial.py"), "ask", str(tutorial_index), QUESTION])
        for _ in range(3)
    ]
    ow, om = statistics.median(o[0] for o in ours), max(o[1] for o in ours)
    tw, tm = statistics.median(t[0] for t in theirs), max(t[1] for t in theirs)
    print(
        f"1. cold ask: cablebot {ow:.2f} s, {om:.0f} MiB peak; tutorial {tw:.2f} s, {tm:.0f} MiB "
        f"(ratio {ow / tw:.2f} time, {om / tm:.2f} memory)"
    )
    print(f"   cablebot answer: {ours[0][2].splitlines()[0][:100]}")


def warm(cables_index: Path, questions: list[str]) -> None:
    import numpy as np

    from cablebot.config import load_settings
    from cablebot.core import Cablebot

    bot = Cablebot(load_settings(index_dir=cables_index), warn=lambda m: None)
    times = []
    for q in questions * 3:
        bot.embedder.embed_query.cache_clear()
        t = time.perf_counter()
        bot.ask(q)
        times.append((time.perf_counter() - t) * 1000)
    sys.path.insert(0, str(HERE))
    from tutorial import _model

    model = _model()
    ttimes = []
    for q in questions * 3:
        t = time.perf_counter()
        v = model.encode([q], normalize_embeddings=True)
        top = bot.index.search(v[0], 5)  # the tutorial's retrieval: the nearest chunks, exact
        sentences = bot.index.chunks[top[0][0]].text.split(". ")
        sv = model.encode(sentences, normalize_embeddings=True)
        int(np.argmax(sv @ v[0]))
        ttimes.append((time.perf_counter() - t) * 1000)

    def p95(xs: list[float]) -> float:
        return sorted(xs)[int(0.95 * (len(xs) - 1))]

    print(
        f"2. warm ask over {len(bot.index.chunks)} cable chunks: "
        f"cablebot median {statistics.median(times):.1f} ms, "
        f"p95 {p95(times):.1f} ms; tutorial median {statistics.median(ttimes):.1f} ms, p95 {p95(ttimes):.1f} ms "
        f"(ratio {statistics.median(times) / statistics.median(ttimes):.2f})"
    )


def indexing(cables: Path, tmp: Path, sample: int) -> None:
    from cablebot.chunking import count_tokens
    from cablebot.documents import load_documents

    files = sorted(cables.rglob("*.html"))[:sample]
    subset = tmp / "sample"
    subset.mkdir()
    for f in files:
        shutil.copy(f, subset / f.name)
    tokens = sum(count_tokens(d.text) for d in load_documents([subset], lambda m: None).documents)
    ours, _, _ = measure(["cablebot", "index", "--index", str(tmp / "sample-index"), str(subset)])
    _, _, out = measure([sys.executable, str(HERE / "tutorial.py"), "index", str(subset), str(tmp / "tut-index")])
    theirs = json.loads(out)["embed_seconds"]
    print(
        f"3. indexing {len(files)} cables ({tokens} tokens): cablebot {ours:.0f} s ({tokens / ours:.0f} tokens/s, "
        f"whole run); tutorial {theirs:.0f} s ({tokens / theirs:.0f} tokens/s, embedding alone): "
        f"{theirs / ours:.2f}x the tutorial's throughput per token"
    )


def discord_memory(cables_index: Path) -> None:
    _, rss, out = measure([sys.executable, str(HERE / "discord_latency.py"), "--index", str(cables_index)])
    print(f"4. Discord bot serving the cable index: peak {rss:.0f} MiB; {out.strip().splitlines()[-1]}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cables", type=Path, required=True, help="cable pages directory or the Cablegate tarball")
    ap.add_argument("--cables-index", type=Path, required=True)
    ap.add_argument("--questions", type=Path, help="JSONL questions for the warm test")
    ap.add_argument("--sample", type=int, default=150)
    a = ap.parse_args()
    questions = [QUESTION]
    if a.questions:
        questions = [json.loads(x)["question"] for x in a.questions.read_text().splitlines() if x.strip()]
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        cables = a.cables
        if cables.is_file():
            with tarfile.open(cables) as tar:
                tar.extractall(tmp / "cables", filter="data")
            cables = tmp / "cables"
        cold(tmp)
        warm(a.cables_index, questions)
        indexing(cables, tmp, a.sample)
        discord_memory(a.cables_index)


if __name__ == "__main__":
    main()
