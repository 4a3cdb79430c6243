"""Time from INTERACTION_CREATE to the deferred callback and to the follow-up, over loopback.

usage: python bench/discord_latency.py [--n 20] [--index DIR]

Runs the real bot (real model and index of the bundled article) against the
loopback fake of Discord in tests/fake_discord.py, warms it with two
questions, then sends N /ask interactions one after another and prints the
median and maximum of both delays.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fake_discord import APP_ID, FakeDiscord, ask_interaction

from cablebot.config import load_settings
from cablebot.core import Cablebot
from cablebot.discord_bot import CablebotClient, point_at

QUESTIONS = [
    "How many Mexican officials guard the southern border?",
    "How long is the border between Mexico and Guatemala?",
    "Where did the second security conference take place?",
    "What percentage of GDP is Guatemala's tax revenue?",
]


async def main(n: int, index: str | None) -> None:
    fake = FakeDiscord()
    await fake.start()
    point_at(fake.api_base, fake.gateway_url)
    settings = dataclasses.replace(load_settings(index_dir=index), discord_cooldown=0.0)
    client = CablebotClient(Cablebot(settings), settings)
    task = asyncio.create_task(client.start("bench-token"))
    await fake.ready.wait()
    await client.wait_until_ready()
    defer, follow = [], []
    for i in range(n + 2):
        client.core.embedder.embed_query.cache_clear()  # time the embedding, not a cache hit
        payload = ask_interaction(QUESTIONS[i % len(QUESTIONS)])
        sent = time.monotonic()
        await fake.dispatch("INTERACTION_CREATE", payload)
        cb = await fake.wait_for_request(lambda r, p=payload: r.path.endswith(f"{p['id']}/{p['token']}/callback"))
        fu = await fake.wait_for_request(lambda r, p=payload: r.path == f"/webhooks/{APP_ID}/{p['token']}")
        if i >= 2:  # the first two warm up caches and connections
            defer.append((cb.at - sent) * 1000)
            follow.append((fu.at - sent) * 1000)
    print(
        f"INTERACTION_CREATE -> deferred callback: median {statistics.median(defer):.1f} ms, "
        f"max {max(defer):.1f} ms (n={n})"
    )
    print(
        f"INTERACTION_CREATE -> follow-up answer:  median {statistics.median(follow):.1f} ms, "
        f"max {max(follow):.1f} ms (n={n})"
    )
    await client.close()
    await task
    await fake.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--index", help="index directory (default: from config.toml)")
    args = ap.parse_args()
    asyncio.run(main(args.n, args.index))
