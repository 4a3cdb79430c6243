"""Feedback: a user's 👍 or 👎 on an answer, kept in a local JSONL file the reader can learn from.

Each verdict is one line, appended with a single write to a file opened for
appending, so concurrent writers never interleave lines. Users are kept only
as a salted hash (the salt is a random key in a `.salt` file beside the
feedback file, readable by its owner only): never a raw id, never a token.

`cablebot train --feedback FILE` turns the lines into training questions: a
confirmed answer teaches that its sentence answers the question; a rejected
one is learned as a question the documents did not answer, so the reader
learns to be less sure of its like.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from pathlib import Path

from cablebot.answering import Answer
from cablebot.errors import CablebotError
from cablebot.evaluation import Case, at_line, read_jsonl

VERDICTS = ("good", "bad")


def _salt(path: Path) -> bytes:
    """The key user ids are hashed with, created on first use."""
    salt_path = path.with_name(path.name + ".salt")
    try:
        fd = os.open(salt_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return bytes.fromhex(salt_path.read_text(encoding="ascii").strip())
    salt = secrets.token_bytes(32)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(salt.hex())
    return salt


def user_hash(user: str | int, salt: bytes) -> str:
    return hashlib.blake2b(str(user).encode(), key=salt, digest_size=16).hexdigest()


def record(path: Path, answer: Answer, verdict: str, user: str | int, via: str) -> None:
    """Append one verdict on `answer` to the feedback file at `path`."""
    if verdict not in VERDICTS:
        raise CablebotError(f"a verdict is one of {', '.join(VERDICTS)}, not {verdict!r}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        citation = answer.citations[0] if answer.citations else None
        row = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "question": answer.question,
            "answer": answer.text,
            "abstained": answer.abstained,
            "citation": {"source": citation.source, "location": citation.location, "quote": citation.quote}
            if citation
            else None,
            "verdict": verdict,
            "user": user_hash(user, _salt(path)),
            "via": via,
        }
        line = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError as e:
        raise CablebotError(f"cannot record feedback in {path}: {e.strerror}") from e


def load_feedback(path: Path) -> list[list[Case]]:
    """Training questions from a feedback file: each user's last verdict on each answer counts once."""
    latest: dict[tuple[str, str, str], tuple[int, dict]] = {}
    for n, row in read_jsonl(path, "feedback file"):
        with at_line(path, n):
            latest[(row["user"], row["question"], row["answer"])] = (n, row)
    questions = []
    for i, (n, row) in enumerate(latest.values(), 1):
        with at_line(path, n):
            citation = row.get("citation")
            if row["abstained"] or not citation:
                continue  # an abstention has no sentence to confirm or reject
            if row["verdict"] == "good":
                quote = max(citation["quote"].split("…"), key=len).strip()
                questions.append(Case(f"F-{i}", row["question"], (quote,), quote, citation["source"], "feedback"))
            else:
                questions.append(Case(f"F-{i}", row["question"], (), "", "", "unanswerable"))
    return [[q] for q in questions]
