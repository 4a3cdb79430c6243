"""Rendering an Answer for people (terminal text) and programs (JSON)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

from cablebot.answering import Answer
from cablebot.documents import safe_url
from cablebot.retrieval import Hit


def to_json(answer: Answer) -> dict[str, Any]:
    """The `cablebot ask --json` object (schema in the README)."""
    return {
        "question": answer.question,
        "answer": answer.text,
        "answer_markdown": answer.markdown,
        "abstained": answer.abstained,
        "confidence": round(answer.confidence, 4),
        "unsure": answer.unsure,
        **({"filter_matched": answer.filter_matched} if answer.filter_matched is not None else {}),
        **({"metadata": answer.metadata} if answer.metadata else {}),
        "citations": [
            {
                "n": c.n,
                "source": c.source,
                "title": c.title,
                "location": c.location,
                "quote": c.quote,
                "url": c.url,
                "reference": c.reference,
            }
            for c in answer.citations
        ],
        "passages": [
            {
                "rank": h.rank,
                "source": h.chunk.doc_id,
                "location": h.chunk.location,
                "score": round(h.score, 4),
                "text": h.chunk.text,
            }
            for h in answer.hits
        ],
    }


def distinct_passages(hits: Sequence[Hit], n: int) -> list[tuple[Hit, str]]:
    """The first `n` passages of `hits` for people to read, each with its text. Chunks repeat the sentences
    at their edges: a chunk overlapping one already listed adds only what follows it there (nothing, when it
    begins before it), so that no sentence shows twice and each passage starts where its best-ranked chunk
    does. `--json` keeps every retrieved chunk as it is."""
    shown: list[tuple[Hit, int, str]] = []  # the first hit, where the text shown ends in its document, the text
    for h in hits:
        c = h.chunk
        for i, (first, end, text) in enumerate(shown):
            if first.chunk.doc_id == c.doc_id and first.chunk.start < c.end and c.start < end:
                shown[i] = (first, max(end, c.end), text + c.text[max(0, end - c.start) :])
                break
        else:
            if len(shown) == n:
                break
            shown.append((h, c.end, c.text))
    return [(first, text) for first, _, text in shown]


def to_text(answer: Answer, color: bool = False, closest: int = 3) -> str:
    """A short answer, then its numbered sources; an abstention shows the closest passages.

    The key span is bold on a terminal (`color`); plain text has no markup (`answer_markdown` has it).
    """
    bold, plain = ("\033[1m", "\033[0m") if color else ("", "")
    width = 88
    lines: list[str] = []
    if answer.abstained:
        lines.append(answer.text)
        if answer.hits:
            lines += ["", "Closest passages (not an answer):"]
            for h, text in distinct_passages(answer.hits, closest):
                lines.append(
                    textwrap.fill(
                        f"- {h.chunk.doc_id} {h.chunk.location}: {text}",
                        width,
                        subsequent_indent="  ",
                        max_lines=3,
                        placeholder=" …",
                    )
                )
        return "\n".join(lines)
    text = answer.text
    if answer.emphasis:
        a, b = answer.emphasis
        text = f"{text[:a]}{bold}{text[a:b]}{plain}{text[b:]}"
    unsure = f"{UNSURE} " if answer.unsure else ""
    lines.append(textwrap.fill(f"{unsure}“{text}” [{answer.citations[0].n}]", width))
    lines += ["", "Sources:"]
    for c in answer.citations:
        lines.append(f"[{c.n}] {c.reference}")
        if c.detail:
            lines.append(f"    {c.title}")
        if c.url:
            lines.append(f"    {c.url}")
    return "\n".join(lines)


# --- Discord -------------------------------------------------------------------------
# Discord's limits: https://discord.com/developers/docs/resources/message#embed-object-embed-limits
MESSAGE_LIMIT = 2000
DESCRIPTION_LIMIT = 4096
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
EMBED_LIMIT = 6000
FIELDS_LIMIT = 25
FOOTER_ANSWERED = "Quoted verbatim from the documents."
UNSURE = "Not sure:"  # before an answer whose confidence is low (Answer.unsure)
FOOTER_ABSTAINED = "The documents do not answer this question; the passages shown are the closest, not an answer."


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters at a sentence, else word, boundary, with an ellipsis."""
    if len(text) <= limit:
        return text
    room = text[: limit - 1]
    cut = max(room.rfind(". "), room.rfind("? "), room.rfind("! "))
    if cut >= limit // 2:
        return room[: cut + 1] + "…"
    space = room.rfind(" ")
    return (room[:space] if space >= limit // 2 else room).rstrip() + "…"


def _escape(text: str) -> str:
    import discord

    return discord.utils.escape_markdown(text)


def answer_embed(answer: Answer):  # -> discord.Embed (imported lazily)
    """The reply to a question: the answer with its key span in bold, numbered citations, a footer."""
    import discord

    embed = discord.Embed(title=clip(answer.question, FIELD_NAME_LIMIT), colour=0x2B6CB0)
    if answer.abstained:
        embed.description = answer.text
        for h, text in distinct_passages(answer.hits, 3):
            name = clip(
                f"Closest, not an answer: {_escape(h.chunk.doc_id)} {_escape(h.chunk.location)}", FIELD_NAME_LIMIT
            )
            embed.add_field(name=name, value=clip(_escape(text), FIELD_VALUE_LIMIT), inline=False)
        if embed.fields:  # no footer on passages for "No documents match ..." or "Which document do you mean?"
            embed.set_footer(text=FOOTER_ABSTAINED)
    else:
        a, b = answer.emphasis or (0, 0)
        text = answer.text
        body = f"{_escape(text[:a])}**{_escape(text[a:b])}**{_escape(text[b:])}" if b > a else _escape(text)
        refs = "".join(f" [{c.n}]" for c in answer.citations)
        unsure = f"*{UNSURE}* " if answer.unsure else ""
        embed.description = unsure + clip(body, DESCRIPTION_LIMIT - len(refs) - len(unsure)) + refs
        for c in answer.citations[:FIELDS_LIMIT]:
            url = safe_url(c.url)
            link = f"\n{url}" if url else ""
            value = clip(f"> {_escape(c.quote)}", FIELD_VALUE_LIMIT - len(link)) + link
            embed.add_field(
                name=clip(f"[{c.n}] {_escape(c.reference)}", FIELD_NAME_LIMIT), value=value, inline=False
            )
        embed.set_footer(text=FOOTER_ANSWERED)
    return _fit(embed)


def sources_embed(answer: Answer):  # -> discord.Embed
    """The retrieved passages in full (as far as Discord allows), for the "Sources" button."""
    import discord

    embed = discord.Embed(title="Sources", colour=0x718096)
    for n, (h, text) in enumerate(distinct_passages(answer.hits, FIELDS_LIMIT), 1):
        where = f"{_escape(h.chunk.doc_id)} {_escape(h.chunk.location)}"
        name = clip(f"{n}. {where} (similarity {h.score:.2f})", FIELD_NAME_LIMIT)
        embed.add_field(name=name, value=clip(_escape(text), FIELD_VALUE_LIMIT), inline=False)
    return _fit(embed)


def _fit(embed):
    """Drop trailing fields until the embed is within Discord's total size limit."""
    while len(embed) > EMBED_LIMIT and embed.fields:
        embed.remove_field(len(embed.fields) - 1)
    return embed
