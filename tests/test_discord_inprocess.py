"""Message flows in-process with dpytest, and the Discord rendering limits."""

from __future__ import annotations

import asyncio
import dataclasses

import discord
import discord.ext.test as dpytest
import pytest

from cablebot.answering import Answer, Citation
from cablebot.chunking import Chunk
from cablebot.discord_bot import CablebotClient, Gate
from cablebot.rendering import answer_embed, clip, sources_embed
from cablebot.retrieval import Hit


@pytest.fixture
async def client(seed_bot):
    intents = discord.Intents.default()
    intents.members = True  # dpytest resolves mentions through the member cache
    settings = dataclasses.replace(seed_bot.settings, discord_threads=False, discord_cooldown=0.0)
    bot = CablebotClient(seed_bot, settings, intents=intents)
    await bot._async_setup_hook()
    dpytest.configure(bot)
    dpytest.backend.get_state().loop = asyncio.get_running_loop()  # dpytest leaves it unset; typing() needs it
    yield bot
    await dpytest.empty_queue()


async def test_mention_gets_a_cited_embed_reply(client) -> None:
    await dpytest.message(f"<@{client.user.id}> How many Mexican officials guard the southern border?")
    reply = dpytest.get_message()
    (embed,) = reply.embeds
    assert "**125** Mexican immigration officials" in embed.description
    assert embed.fields[0].name.startswith("[1] WikiLeaks XIX") and "¶9" in embed.fields[0].name
    assert embed.footer.text == "Quoted verbatim from the documents."


async def test_messages_without_a_mention_are_ignored(client) -> None:
    await dpytest.message("How many Mexican officials guard the southern border?")
    assert dpytest.verify().message().nothing()


async def test_allow_lists_keep_the_bot_quiet_elsewhere(client) -> None:
    client.settings = dataclasses.replace(client.settings, discord_allowed_channels=(1,))
    await dpytest.message(f"<@{client.user.id}> How many Mexican officials guard the southern border?")
    assert dpytest.verify().message().nothing()


def _answer(text: str, hits: int = 30) -> Answer:
    chunk = Chunk("doc", 3, 0, len(text), text)
    return Answer(
        question="q " * 200,
        text=text,
        abstained=False,
        citations=(Citation(1, "doc", "T" * 400, "¶3", text, "https://example.org/x"),),
        hits=tuple(Hit(chunk, 0.5, i) for i in range(1, hits + 1)),
        emphasis=(10, 20),
    )


def test_a_5000_character_passage_still_fits_discords_limits() -> None:
    passage = " ".join(f"Sentence {i} mentions @everyone and *stars* in the text." for i in range(100))[:5000]
    for embed in (answer_embed(_answer(passage)), sources_embed(_answer(passage))):
        assert len(embed) <= 6000 and len(embed.fields) <= 25
        assert len(embed.description or "") <= 4096 and len(embed.title or "") <= 256
        assert all(len(f.value) <= 1024 and len(f.name) <= 256 for f in embed.fields)
        assert all(f.value.endswith(("…", "https://example.org/x")) for f in embed.fields)
    assert "\\*stars\\*" in answer_embed(_answer(passage)).description  # markdown in quotes is escaped


def test_clip_cuts_at_sentence_then_word_boundaries() -> None:
    assert clip("short", 10) == "short"
    assert clip("One sentence here. Another sentence follows on.", 30) == "One sentence here.…"
    assert clip("words without any sentence end at all", 20) == "words without any…"
    assert len(clip("x" * 50, 20)) == 20


def test_gate_cooldown_and_concurrency() -> None:
    gate = Gate(cooldown=60, max_concurrent=1)
    assert gate.admit(1) is None  # user 1 holds the one slot
    assert "wait" in (gate.admit(1) or "")
    assert "other questions" in (gate.admit(2) or "")
    gate.release()
    assert gate.admit(2) is None and gate.active == 1
