"""Rendering an Answer for people (terminal text) and programs (JSON)."""

from __future__ import annotations

import textwrap
from typing import Any

from cablebot.answering import Answer


def to_json(answer: Answer) -> dict[str, Any]:
    """The `cablebot ask --json` object (schema in the README)."""
    return {
        "question": answer.question,
        "answer": answer.text,
        "answer_markdown": answer.markdown,
        "abstained": answer.abstained,
        "confidence": round(answer.confidence, 4),
        "citations": [
            {
                "n": c.n,
                "source": c.source,
                "title": c.title,
                "location": c.location,
                "quote": c.quote,
                "url": c.url,
            }
            for c in answer.citations
        ],
        "passages": [
            {
                "rank": h.rank,
                "source": h.chunk.doc_id,
                "location": f"¶{h.chunk.paragraph}",
                "score": round(h.score, 4),
                "text": h.chunk.text,
            }
            for h in answer.hits
        ],
    }


def to_text(answer: Answer, color: bool = False, closest: int = 3) -> str:
    """A short answer, then its numbered sources; an abstention shows the closest passages."""
    bold, plain = ("\033[1m", "\033[0m") if color else ("**", "**")
    width = 88
    lines: list[str] = []
    if answer.abstained:
        lines.append(answer.text)
        if answer.hits:
            lines += ["", "Closest passages (not an answer):"]
            for h in answer.hits[:closest]:
                lines.append(
                    textwrap.fill(
                        f"- {h.chunk.doc_id} ¶{h.chunk.paragraph}: {h.chunk.text}",
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
    lines.append(textwrap.fill(f"“{text}” [{answer.citations[0].n}]", width))
    lines += ["", "Sources:"]
    for c in answer.citations:
        lines.append(f"[{c.n}] {c.title}, {c.location}")
        if c.url:
            lines.append(f"    {c.url}")
    return "\n".join(lines)
