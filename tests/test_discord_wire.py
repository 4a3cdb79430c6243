"""The real bot, over the wire, against a loopback fake of Discord's API and gateway."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fake_discord import APP_ID, FakeDiscord, ask_interaction, button_interaction

from cablebot.config import Settings
from cablebot.discord_bot import CablebotClient, point_at

DESIGN_QUESTION = "How many Mexican officials guard the southern border?"
LIMITS = {"description": 4096, "field_value": 1024, "field_name": 256, "embed": 6000, "fields": 25}


@contextlib.asynccontextmanager
async def connected(core, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple]:
    """The real bot over `core`, connected to a fresh loopback fake of Discord."""
    import discord

    fake = FakeDiscord()
    await fake.start()
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    )
    point_at(fake.api_base, fake.gateway_url)
    client = CablebotClient(core, settings)
    task = asyncio.create_task(client.start("test-token-do-not-log"))
    try:
        await asyncio.wait_for(fake.ready.wait(), 20)
        await asyncio.wait_for(client.wait_until_ready(), 20)
        yield fake, client
    finally:
        await client.close()
        await task
        await fake.stop()


@pytest.fixture
async def wire(
    seed_bot, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[tuple[FakeDiscord, CablebotClient]]:
    settings = dataclasses.replace(
        seed_bot.settings,
        discord_cooldown=0.0,
        discord_max_concurrent=4,
        feedback_path=tmp_path / "feedback.jsonl",
    )
    async with connected(seed_bot, settings, monkeypatch) as running:
        yield running


async def _ask(fake: FakeDiscord, question: str, user_id: str = "1500000000000000001", **options: str) -> tuple:
    """Send /ask; return (callback request, follow-up request, time sent)."""
    payload = ask_interaction(question, user_id, **options)
    sent = time.monotonic()
    await fake.dispatch("INTERACTION_CREATE", payload)
    token = payload["token"]
    callback = await fake.wait_for_request(lambda r: r.path == f"/interactions/{payload['id']}/{token}/callback")
    if callback.body["type"] != 5:
        return callback, None, sent
    followup = await fake.wait_for_request(lambda r: r.path == f"/webhooks/{APP_ID}/{token}" and r.status == 200)
    return callback, followup, sent


def assert_within_limits(body: dict) -> None:
    assert len(body.get("content") or "") <= 2000
    for embed in body.get("embeds", []):
        assert len(embed.get("description", "")) <= LIMITS["description"]
        fields = embed.get("fields", [])
        assert len(fields) <= LIMITS["fields"]
        assert all(
            len(f["value"]) <= LIMITS["field_value"] and len(f["name"]) <= LIMITS["field_name"] for f in fields
        )
        total = (
            len(embed.get("title", ""))
            + len(embed.get("description", ""))
            + len(embed.get("footer", {}).get("text", ""))
            + sum(len(f["name"]) + len(f["value"]) for f in fields)
        )
        assert total <= LIMITS["embed"]


async def test_slash_ask_is_deferred_at_once_then_answered_with_a_cited_embed(wire) -> None:
    fake, _ = wire
    callback, followup, sent = await _ask(fake, DESIGN_QUESTION)
    assert callback.body == {"type": 5}  # deferred ("thinking")
    assert callback.at - sent < 1.0
    body = followup.body
    assert body["allowed_mentions"] == {"parse": []}
    (embed,) = body["embeds"]
    assert "**125** Mexican immigration officials" in embed["description"]
    assert embed["description"].endswith("[1]")
    (field,) = embed["fields"]
    assert field["name"].startswith("[1] WikiLeaks XIX") and "¶9" in field["name"]
    assert "125 Mexican immigration officials" in field["value"] and "https://ips-dc.org/" in field["value"]
    assert embed["footer"]["text"] == "Quoted verbatim from the documents."
    buttons = body["components"][0]["components"]
    assert [b.get("label") or b["emoji"]["name"] for b in buttons] == ["Sources", "👍", "👎"]
    assert_within_limits(body)


async def test_thumbs_record_a_private_verdict_with_a_hashed_user(wire) -> None:
    fake, client = wire
    user = "1500000000000000042"
    await _ask(fake, DESIGN_QUESTION, user_id=user)
    message = fake.sent[-1]
    for emoji in ("👍", "👎"):
        (button,) = [b for b in message["components"][0]["components"] if b.get("emoji", {}).get("name") == emoji]
        click = button_interaction(message, button["custom_id"], user)
        await fake.dispatch("INTERACTION_CREATE", click)
        reply = await fake.wait_for_request(lambda r, c=click: r.path.startswith(f"/interactions/{c['id']}/"))
        assert reply.body["type"] == 4 and reply.body["data"]["flags"] & 64  # only the clicker sees it
        assert "noted" in reply.body["data"]["content"]
    path = client.settings.feedback_path
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [r["verdict"] for r in rows] == ["good", "bad"]
    assert rows[0]["question"] == DESIGN_QUESTION and "125" in rows[0]["citation"]["quote"]
    assert rows[0]["user"] == rows[1]["user"] and user not in path.read_text(encoding="utf-8")
    assert "test-token" not in path.read_text(encoding="utf-8")


async def test_unanswerable_question_says_so_in_the_footer(wire) -> None:
    fake, _ = wire
    _, followup, _ = await _ask(fake, "What is the capital of Honduras?")
    (embed,) = followup.body["embeds"]
    assert "do not answer" in embed["description"]
    assert "closest, not an answer" in embed["footer"]["text"]
    assert all(f["name"].startswith("Closest, not an answer") for f in embed["fields"])


async def test_ask_options_filter_the_documents(wire) -> None:
    fake, _ = wire
    _, followup, _ = await _ask(fake, DESIGN_QUESTION, doc="no-such-document")
    (nothing,) = followup.body["embeds"]
    assert nothing["description"] == "No documents match --doc no-such-document."
    assert "footer" not in nothing and not nothing.get("fields")  # no passages: none said to be shown
    _, followup, _ = await _ask(fake, DESIGN_QUESTION, doc="wikileaks-xix-guatemalan-concerns")
    assert "**125**" in followup.body["embeds"][0]["description"]


async def test_a_429_is_retried(wire) -> None:
    fake, _ = wire
    fake.rate_limit_next[f"/webhooks/{APP_ID}/"] = 1
    _, followup, _ = await _ask(fake, DESIGN_QUESTION)
    statuses = [r.status for r in fake.requests if r.path.startswith(f"/webhooks/{APP_ID}/")]
    assert statuses == [429, 200]
    assert "125" in followup.body["embeds"][0]["description"]


async def test_opcode_7_leads_to_a_resume(wire) -> None:
    fake, _ = wire
    await fake.request_reconnect()
    await asyncio.wait_for(fake.resumed.wait(), 20)
    resume = [e for e in fake.gateway_events if e["op"] == 6]
    assert resume and resume[-1]["d"]["session_id"] == "fake-session"
    _, followup, _ = await _ask(fake, DESIGN_QUESTION)  # still serving
    assert "125" in followup.body["embeds"][0]["description"]


async def test_second_ask_inside_the_cooldown_gets_an_ephemeral_notice(wire) -> None:
    fake, client = wire
    client.gate.cooldown = 60.0
    await _ask(fake, DESIGN_QUESTION, user_id="1500000000000000009")
    callback, followup, _ = await _ask(fake, DESIGN_QUESTION, user_id="1500000000000000009")
    assert followup is None and callback.body["type"] == 4
    assert callback.body["data"]["flags"] & 64  # ephemeral
    assert "Please wait" in callback.body["data"]["content"]
    _, other, _ = await _ask(fake, DESIGN_QUESTION, user_id="1500000000000000010")  # other users are not held
    assert other is not None


async def test_a_failure_gets_an_apology_and_the_bot_keeps_serving(wire, monkeypatch, caplog) -> None:
    fake, client = wire
    real_ask = client.core.ask
    calls = []

    def failing_once(question, conversation=None, where=None):
        calls.append(question)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return real_ask(question, conversation, where)

    monkeypatch.setattr(client.core, "ask", failing_once)
    _, followup, _ = await _ask(fake, DESIGN_QUESTION)
    assert "Sorry" in followup.body["content"]  # public: it replaces the public "thinking…" message
    assert "boom" in caplog.text and "Traceback" in caplog.text
    _, followup, _ = await _ask(fake, DESIGN_QUESTION)
    assert "125" in followup.body["embeds"][0]["description"]


async def test_a_slow_answer_does_not_block_the_event_loop(wire, monkeypatch) -> None:
    fake, client = wire
    real_ask = client.core.ask

    def slow(question, conversation=None, where=None):
        time.sleep(1.0)
        return real_ask(question, conversation, where)

    monkeypatch.setattr(client.core, "ask", slow)
    ticks = 0

    async def heartbeat_like() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    ticker = asyncio.create_task(heartbeat_like())
    _, followup, sent = await _ask(fake, DESIGN_QUESTION)
    ticker.cancel()
    assert followup.at - sent >= 1.0
    assert ticks >= 15  # ~20 expected in 1 s: the loop kept running while ask() slept


async def test_quoted_mentions_ping_nobody(tmp_path: Path, seed_bot, monkeypatch) -> None:
    from cablebot.core import Cablebot

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "memo.txt").write_text(
        "The memo was sent to @everyone and <@&123> and <@42> by the 7 attachés.\n", encoding="utf-8"
    )
    settings = dataclasses.replace(
        seed_bot.settings, index_dir=tmp_path / "index", corpus_paths=(docs,), discord_cooldown=0.0
    )
    core = Cablebot(settings, warn=lambda m: None)
    async with connected(core, settings, monkeypatch) as (fake, _):
        _, followup, _ = await _ask(fake, "Who did the 7 attachés send the memo to?")
        assert followup.body["allowed_mentions"] == {"parse": []}
        text = followup.body["embeds"][0]["description"]
        assert "@everyone" in text and "<@&123>" in text


async def test_titles_and_urls_from_documents_cannot_become_links(tmp_path: Path, seed_bot, monkeypatch) -> None:
    from cablebot.core import Cablebot

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bait.md").write_text(
        '---\ntitle: "[Official source](http://evil.example/phish)"\nurl: "javascript:alert(1)"\n---\n'
        "The harbour of Port Elin handles 40 ships a week.\n",
        encoding="utf-8",
    )
    settings = dataclasses.replace(
        seed_bot.settings, index_dir=tmp_path / "index", corpus_paths=(docs,), discord_cooldown=0.0
    )
    core = Cablebot(settings, warn=lambda m: None)
    async with connected(core, settings, monkeypatch) as (fake, _):
        _, followup, _ = await _ask(fake, "How many ships a week does the harbour of Port Elin handle?")
        (embed,) = followup.body["embeds"]
        (field,) = embed["fields"]
        assert "\\[Official source]" in field["name"]  # escaped: shown as text, not a masked link
        texts = [embed["description"], *(f[k] for f in embed["fields"] for k in ("name", "value"))]
        assert not any(re.search(r"(?<!\\)\[[^\]]*\]\(", t) for t in texts)  # no masked link anywhere
        assert "javascript:" not in json.dumps(followup.body)
        assert "**40**" in embed["description"]


def _cli_env(fake: FakeDiscord, index: Path, token: str) -> dict[str, str]:
    return {
        **os.environ,
        "DISCORD_TOKEN": token,
        "CABLEBOT_DISCORD_API_BASE": fake.api_base,
        "CABLEBOT_DISCORD_GATEWAY_URL": fake.gateway_url,
        "CABLEBOT_INDEX_DIR": str(index),
    }


async def test_close_code_4004_ends_the_process_with_one_clear_line(seed_settings) -> None:
    fake = FakeDiscord(close_after_identify=4004)
    await fake.start()
    token = "secret-token-4004-xyz"
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cablebot.cli",
            "discord",
            env=_cli_env(fake, seed_settings.index_dir, token),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        await fake.stop()
    assert fake.identified.is_set()
    assert proc.returncode == 1
    stderr = err.decode()
    assert (
        stderr.strip()
        .splitlines()[-1]
        .startswith("cablebot: error: Discord rejected the token (gateway close 4004)")
    )
    assert "Traceback" not in stderr
    assert token not in stderr + out.decode()


def test_no_token_exits_non_zero_with_one_line() -> None:
    from conftest import run_cli

    out = run_cli("discord", env={"DISCORD_TOKEN": ""})
    assert out.returncode == 1
    assert (
        out.stderr.strip()
        == "cablebot: error: no Discord token: set DISCORD_TOKEN (or [discord] token_file in config.toml)"
    )


async def _bot_post(fake: FakeDiscord, channel_id: str, after: int) -> object:
    """The next message the bot posts in `channel_id` (request index > `after`)."""
    return await fake.wait_for_request(
        lambda r: (
            fake.requests.index(r) > after and r.method == "POST" and r.path == f"/channels/{channel_id}/messages"
        )
    )


async def test_mention_opens_a_thread_and_follow_ups_there_keep_context(wire) -> None:
    from fake_discord import BOT_USER, CHANNEL_ID, user_message

    fake, _ = wire
    start = len(fake.requests)
    await fake.dispatch("MESSAGE_CREATE", user_message(f"<@{BOT_USER['id']}> {DESIGN_QUESTION}", mention_bot=True))
    opened = await fake.wait_for_request(lambda r: r.path.endswith("/threads") and fake.requests.index(r) >= start)
    assert opened.path.startswith(f"/channels/{CHANNEL_ID}/messages/") and opened.body["name"] == DESIGN_QUESTION
    thread_id = next(r for r in fake.requests[start:] if r.path.endswith("/threads"))
    first = await fake.wait_for_request(
        lambda r: (
            r.method == "POST"
            and r.path.endswith("/messages")
            and r.path != f"/channels/{CHANNEL_ID}/messages"
            and fake.requests.index(r) > fake.requests.index(thread_id)
        )
    )
    assert "**125**" in first.body["embeds"][0]["description"]
    assert first.body["allowed_mentions"] == {"parse": []}
    thread = first.path.split("/")[2]
    mark = len(fake.requests)
    await fake.dispatch("MESSAGE_CREATE", user_message("And how long is that border?", channel_id=thread))
    follow = await _bot_post(fake, thread, mark)
    assert "**577**" in follow.body["embeds"][0]["description"]


async def test_reply_to_an_answer_is_a_follow_up_and_dms_are_answered(wire) -> None:
    from fake_discord import user_message

    fake, client = wire
    client.settings = dataclasses.replace(client.settings, discord_threads=False)
    dm = "1600000000000000001"
    start = len(fake.requests)
    await fake.dispatch("MESSAGE_CREATE", user_message(DESIGN_QUESTION, channel_id=dm, guild=False))
    first = await _bot_post(fake, dm, start)
    assert "**125**" in first.body["embeds"][0]["description"]
    for _ in range(100):  # the fake records the POST before the bot has its reply back
        if client.conversations:
            break
        await asyncio.sleep(0.02)
    answer_id = next(iter(client.conversations))
    mark = len(fake.requests)
    await fake.dispatch(
        "MESSAGE_CREATE",
        user_message("And how long is that border?", channel_id=dm, guild=False, reply_to=str(answer_id)),
    )
    follow = await _bot_post(fake, dm, mark)
    assert "**577**" in follow.body["embeds"][0]["description"]
    assert follow.body["message_reference"]["message_id"] is not None


@pytest.mark.parametrize("api_base", ["http://127.0.0.1:9/api/v10", "http://discord.invalid/api/v10"])
def test_no_network_at_start_up_is_one_line(seed_settings, api_base: str) -> None:
    from conftest import run_cli

    env = {
        "DISCORD_TOKEN": "x",
        "CABLEBOT_DISCORD_API_BASE": api_base,
        "CABLEBOT_INDEX_DIR": str(seed_settings.index_dir),
    }
    out = run_cli("discord", env=env)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("cablebot: error: cannot reach Discord at " + api_base) and "check the network" in last
    assert "AVX512" not in out.stderr


async def test_a_bad_question_is_answered_privately_without_deferring(wire) -> None:
    fake, _ = wire
    callback, followup, _ = await _ask(fake, "x" * 2001)
    assert followup is None and callback.body["type"] == 4
    assert callback.body["data"]["flags"] & 64 and "2000" in callback.body["data"]["content"]


async def test_a_bad_date_option_is_answered_privately_without_deferring(wire) -> None:
    fake, _ = wire
    callback, followup, _ = await _ask(fake, DESIGN_QUESTION, since="10/2009")
    assert followup is None and callback.body["type"] == 4 and callback.body["data"]["flags"] & 64
    assert callback.body["data"]["content"] == "since '10/2009' is not a date: use 2009, 2009-10 or 2009-10-23"


async def test_a_burst_of_100_asks_runs_at_most_max_concurrent_answers(seed_bot, monkeypatch) -> None:
    import threading

    settings = dataclasses.replace(seed_bot.settings, discord_cooldown=0.0, discord_max_concurrent=2)
    running = peak = 0
    lock = threading.Lock()
    real_ask = seed_bot.ask

    def counted(question, conversation=None, where=None):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            time.sleep(0.05)
            return real_ask(question, conversation, where)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(seed_bot, "ask", counted)
    async with connected(seed_bot, settings, monkeypatch) as (fake, _):
        payloads = [ask_interaction(DESIGN_QUESTION, str(1500000000000000100 + i)) for i in range(100)]
        await asyncio.gather(*(fake.dispatch("INTERACTION_CREATE", p) for p in payloads))
        callbacks = [
            await fake.wait_for_request(lambda r, p=p: r.path == f"/interactions/{p['id']}/{p['token']}/callback")
            for p in payloads
        ]
        deferred = [c for c in callbacks if c.body["type"] == 5]
        busy = [c for c in callbacks if c.body["type"] == 4]
        assert len(deferred) + len(busy) == 100 and len(deferred) >= 2
        assert all(c.body["data"]["flags"] & 64 and "other questions" in c.body["data"]["content"] for c in busy)
        for p in payloads:  # every deferred question gets its answer
            if any(c.path.startswith(f"/interactions/{p['id']}/") and c.body["type"] == 5 for c in deferred):
                await fake.wait_for_request(lambda r, p=p: r.path == f"/webhooks/{APP_ID}/{p['token']}")
    assert 1 <= peak <= 2


async def test_a_rate_limited_follow_up_is_given_up_after_the_cap(wire, caplog) -> None:
    fake, client = wire
    client.RATE_LIMIT_WAIT = 1.0  # 30 s in use
    fake.retry_after = 20.0  # Discord asks for more than the cap
    fake.rate_limit_next[f"/webhooks/{APP_ID}/"] = 1000
    payload = ask_interaction(DESIGN_QUESTION, "1500000000000000077")
    started = time.monotonic()
    await fake.dispatch("INTERACTION_CREATE", payload)
    await fake.wait_for_request(lambda r: r.path.startswith(f"/webhooks/{APP_ID}/") and r.status == 429)
    while "gave up a follow-up" not in caplog.text and time.monotonic() - started < 10:
        await asyncio.sleep(0.1)
    assert "gave up a follow-up" in caplog.text and time.monotonic() - started < 5
    fake.rate_limit_next.clear()
    fake.retry_after = 0.2
    _, followup, _ = await _ask(fake, DESIGN_QUESTION)  # the bot keeps serving, its slot given back
    assert "125" in followup.body["embeds"][0]["description"]


async def test_a_too_long_mention_gets_a_reply_and_no_thread(wire) -> None:
    from fake_discord import BOT_USER, CHANNEL_ID, user_message

    fake, _ = wire
    start = len(fake.requests)
    await fake.dispatch("MESSAGE_CREATE", user_message(f"<@{BOT_USER['id']}> {'x' * 2001}", mention_bot=True))
    reply = await fake.wait_for_request(
        lambda r: (
            r.method == "POST" and r.path == f"/channels/{CHANNEL_ID}/messages" and fake.requests.index(r) >= start
        )
    )
    assert "2000" in reply.body["content"]
    await asyncio.sleep(0.3)
    assert not any(r.path.endswith("/threads") for r in fake.requests[start:])
