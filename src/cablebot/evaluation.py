"""`cablebot eval`: score answers on a question set, with the metrics the product is judged by.

A question set is JSONL, one object a line:
    {"id": "...", "question": "...", "answers": ["125"], "support": "...",
     "doc": "seed" | "<document id>", "type": "number|...|unanswerable"}
or a conversation, whose later turns are follow-ups of the earlier ones:
    {"id": "...", "turns": [{"id": ..., "question": ..., ...}, ...]}

hit@k      a passage among the first k holds a gold answer, at least half the
           support's words, and comes from the right document
answer     the answer holds a gold answer and is at most 400 characters
cited      ...and a citation names the right document with a quote holding it
abstain    unanswerable questions answered with an abstention
false_abstain  answerable questions wrongly abstained on
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cablebot.answering import Answer
from cablebot.core import Conversation
from cablebot.errors import CablebotError
from cablebot.lexical import unaccented

MAX_ANSWER = 400


def fold(text: str) -> str:
    """Compare text after folding case, accents, quotes, dashes, whitespace and thousands separators."""
    text = unaccented(text or "")
    for a, b in (("’", "'"), ("“", '"'), ("”", '"'), ("—", " "), ("–", "-")):
        text = text.replace(a, b)
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)
    text = re.sub(r"[*`]+", "", text)
    return re.sub(r"\s+", " ", text).strip().casefold()


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", fold(text)))


def holds_answer(text: str, answers: Iterable[str]) -> bool:
    folded = fold(text)
    return any(fold(a) in folded for a in answers)


def right_document(source: str, doc: str) -> bool:
    return not doc or doc == "seed" or doc.casefold() in source.casefold()


@dataclass(frozen=True)
class Case:
    """One question of a question set (JSONL, as in ../shared/eval), with what answers it: a check or a
    training case. Not `reading.Question`, which is a question as the reader analyses it."""

    id: str
    question: str
    answers: tuple[str, ...]
    support: str
    doc: str
    type: str

    @property
    def answerable(self) -> bool:
        return self.type != "unanswerable"


def read_jsonl(path: Path, what: str) -> Iterator[tuple[int, dict]]:
    """(line number, object) of each non-blank line of a JSONL file; a line that is not a JSON object, or a
    file that cannot be read, is a one-line error naming `what` it is and where."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CablebotError(f"cannot read {what} {path}: {getattr(e, 'strerror', None) or e}") from e
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            with at_line(path, n):
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("not a JSON object")
            yield n, row


@contextmanager
def at_line(path: Path, n: int) -> Iterator[None]:
    """A missing or mistyped field of line `n` of `path`, as one line that says which and where."""
    try:
        yield
    except json.JSONDecodeError as e:
        raise CablebotError(f"{path}, line {n}: not JSON ({e.msg} at column {e.colno})") from e
    except KeyError as e:
        raise CablebotError(f"{path}, line {n}: no {json.dumps(e.args[0])} field") from e
    except (ValueError, TypeError, AttributeError) as e:
        raise CablebotError(f"{path}, line {n}: {e}") from e


def load_conversations(path: Path) -> list[list[Case]]:
    """A question set as conversations: a plain question line is a conversation of one turn,
    an `{"id": ..., "turns": [question, ...]}` line one of several (follow-ups)."""
    conversations = []
    for n, row in read_jsonl(path, "question set"):
        with at_line(path, n):
            turns = row.get("turns", [row])
            if not isinstance(turns, list) or not turns:
                raise ValueError('"turns" is not a list of questions')
            conversations.append([_case(t) for t in turns])
    return conversations


def _case(r: object) -> Case:
    if not isinstance(r, dict):
        raise ValueError("a question is not a JSON object")
    answers = r.get("answers", [])
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise ValueError('"answers" is not a list of strings')
    if not isinstance(r["question"], str):
        raise ValueError('"question" is not a string')
    return Case(
        str(r["id"]), r["question"], tuple(answers), str(r.get("support") or ""), str(r.get("doc") or ""),
        str(r.get("type") or "other"),
    )  # fmt: skip


def passage_hit(text: str, source: str, q: Case) -> bool:
    if not holds_answer(text, q.answers):
        return False
    support = _words(q.support)
    if support and len(support & _words(text)) / len(support) < 0.5:
        return False
    return right_document(source, q.doc)


@dataclass
class Scores:
    answerable: int = 0
    unanswerable: int = 0
    hit1: int = 0
    hit5: int = 0
    answered: int = 0
    cited: int = 0
    abstained: int = 0
    false_abstained: int = 0
    misses: list[str] = field(default_factory=list)

    def add(self, q: Case, a: Answer) -> None:
        if not q.answerable:
            self.unanswerable += 1
            self.abstained += a.abstained
            if not a.abstained:
                self.misses.append(f"{q.id} answered an unanswerable question: {a.text[:120]}")
            return
        self.answerable += 1
        hits = [passage_hit(h.chunk.text, h.chunk.doc_id, q) for h in a.hits[:5]]
        self.hit1 += bool(hits) and hits[0]
        self.hit5 += any(hits)
        ok = not a.abstained and holds_answer(a.text, q.answers) and len(a.text) <= MAX_ANSWER
        self.answered += ok
        self.false_abstained += a.abstained
        self.cited += ok and any(
            right_document(c.source, q.doc) and holds_answer(c.quote, q.answers) for c in a.citations
        )
        if not ok:
            why = "abstained" if a.abstained else f"answered {a.text[:120]!r}"
            self.misses.append(
                f"{q.id} {why} (hit@1={hits[0] if hits else False}, hit@5={any(hits)}); "
                f"expected {q.answers[0]!r}: {q.question}"
            )

    def summary(self) -> str:
        def ratio(x: int, n: int) -> str:
            return f"{x / n:.3f}" if n else "n/a"

        n, u = self.answerable, self.unanswerable
        return (
            f"n={n}+{u} hit@1={ratio(self.hit1, n)} hit@5={ratio(self.hit5, n)} "
            f"answer={ratio(self.answered, n)} cited={ratio(self.cited, n)} "
            f"abstain={ratio(self.abstained, u)} false_abstain={ratio(self.false_abstained, n)}"
        )


def evaluate(conversations: list[list[Case]], ask: Callable[[str, Conversation], Answer]) -> Scores:
    """Scores of `ask` on every turn; the turns of a conversation share one `Conversation`."""
    scores = Scores()
    for turns in conversations:
        conversation = Conversation()
        for q in turns:
            scores.add(q, ask(q.question, conversation))
    return scores
