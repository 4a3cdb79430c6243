"""Cold and warm answering time on the bundled article (or any index).

usage: python bench/latency.py [--index DIR] [--questions FILE.jsonl] [--repeat N]

Prints: the wall time of one `cablebot ask` in a new process (cold, index
already built), the time of a bare `python -c pass` on this machine as the
baseline, and the per-question time of a warm `Cablebot.ask()` (median, p95).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

QUESTIONS = [
    "How many Mexican officials guard the southern border?",
    "How long is the border between Mexico and Guatemala?",
    "Where did the second security conference take place?",
    "What percentage of GDP is Guatemala's tax revenue?",
    "Who argued that Guatemala's condition challenges region-wide efforts against organized crime?",
    "What is the capital of Honduras?",
]


def load_questions(*paths: Path) -> list[str]:
    """The questions of JSONL question sets, in order."""
    return [json.loads(line)["question"] for p in paths for line in p.read_text().splitlines() if line.strip()]


def ask_times(bot, questions: list[str], repeat: int = 1) -> list[float]:
    """Milliseconds per warm `bot.ask`, embedding included, after one warm-up pass over `questions`."""
    for q in questions:
        bot.ask(q)  # warm up
    times = []
    for _ in range(repeat):
        for q in questions:
            bot.embedder.embed_query.cache_clear()  # time the embedding too, not a cache hit
            t = time.perf_counter()
            bot.ask(q)
            times.append((time.perf_counter() - t) * 1000)
    return times


def wall(cmd: list[str]) -> float:
    """Seconds a command takes, with Python's bytecode cache on, as on any install: with
    PYTHONDONTWRITEBYTECODE set, every cold ask would compile cablebot's modules again (about 0.07 s)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", help="index directory (default: from config.toml)")
    ap.add_argument("--questions", type=Path, help="JSONL question set (default: six seed questions)")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    questions = load_questions(a.questions) if a.questions else QUESTIONS
    index_args = ["--index", a.index] if a.index else []
    ask = [sys.executable, "-m", "cablebot.cli", "ask", *index_args, questions[0]]
    wall(ask)  # make sure the index exists, files are in the page cache and modules compiled
    baseline = statistics.median(wall([sys.executable, "-c", "pass"]) for _ in range(3))
    cold = [wall(ask) for _ in range(3)]
    print(
        f"cold ask (new process): median {statistics.median(cold):.2f} s over 3 runs "
        f"(bare python start {baseline:.3f} s, ratio {statistics.median(cold) / baseline:.0f}x)"
    )

    from cablebot.config import load_settings
    from cablebot.core import Cablebot

    bot = Cablebot(load_settings(index_dir=a.index))
    times = sorted(ask_times(bot, questions, a.repeat))
    p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
    print(
        f"warm ask: median {statistics.median(times):.1f} ms, p95 {p95:.1f} ms per question "
        f"({len(times)} questions, {len(bot.index.chunks)} chunks)"
    )


if __name__ == "__main__":
    main()
