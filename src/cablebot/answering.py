"""Answering: pick the retrieved sentence that answers the question, quote it, cite it.

No text is generated. The answer is one or two sentences copied from a
retrieved chunk (cut at a clause boundary, marked with "…", when too long),
with the span the question asks for (a number, name, place or date) marked for
emphasis. When the evidence is weak the answer abstains instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise

from cablebot.chunking import sentence_spans
from cablebot.documents import Document
from cablebot.lexical import terms
from cablebot.retrieval import Hit, Retriever

ABSTAIN_TEXT = "The documents do not answer this question."


@dataclass(frozen=True)
class Citation:
    """Where a quote comes from, precisely enough for a reader to check it."""

    n: int
    source: str  # the document's stable id
    title: str
    location: str  # e.g. "¶9"
    quote: str  # verbatim from the document
    url: str | None = None


@dataclass(frozen=True)
class Answer:
    """What `ask()` returns: a verbatim answer with its citations, or an abstention."""

    question: str
    text: str  # verbatim from the first citation's quote (or ABSTAIN_TEXT)
    abstained: bool
    citations: tuple[Citation, ...]
    hits: tuple[Hit, ...]  # retrieved passages, best first ("closest, not an answer" when abstaining)
    emphasis: tuple[int, int] | None = None  # span of `text` the question asks for
    confidence: float = 0.0

    @property
    def markdown(self) -> str:
        """The answer with its key span in bold."""
        if not self.emphasis:
            return self.text
        a, b = self.emphasis
        return f"{self.text[:a]}**{self.text[a:b]}**{self.text[b:]}"


# --- What the question asks for ---------------------------------------------------------

_NUMBER_WORDS = (
    r"two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty"
    r"|hundred|thousand|dozen|dozens|hundreds|thousands"
)
_NUMBER = re.compile(
    r"(?:(?:US\$|USD|\$|DM|€|£|EUR|Rs\.?)\s?)?\d[\d,]*(?:\.\d+)?(?:\s?-\s?\d[\d,]*(?:\.\d+)?)?"
    r"(?:\s?(?:%|percent|per cent|million|billion|trillion|thousand))?"
    rf"|\b(?:{_NUMBER_WORDS})\b",
    re.IGNORECASE,
)
_MONTHS = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_DATE = re.compile(
    rf"\b{_MONTHS}\.? \d{{1,2}}(?:, \d{{4}})?\b|\b\d{{1,2}} {_MONTHS}\.?(?: \d{{4}})?\b|\b{_MONTHS} \d{{4}}\b"
    r"|\b\d{4}-\d{2}-\d{2}\b|\b(?:19|20)\d{2}\b|\b(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)\b"
)
_NAME = re.compile(r"\b[A-Z][\w'’.-]*(?:\s+(?:(?:de|del|la|van|von|bin|al|el|of|the)\s+)?[A-Z][\w'’.-]*)*")


_WH_PHRASE = re.compile(
    r"\bhow (many|much|long|far|big|large|fine|old|high|often)\b|\b(what|which) (percentage|percent|share|"
    r"proportion|number|amount|date|day|year|kind|type|sort)\b",
    re.IGNORECASE,
)


def question_terms(question: str) -> list[str]:
    """Content terms of a question, without its question words ("how long" asks, it does not match)."""
    return terms(_WH_PHRASE.sub(" ", question))


def _bigrams(words: list[str]) -> set[tuple[str, str]]:
    return set(pairwise(words))


def question_kind(question: str) -> str:
    """number | person | place | date | other: the kind of span an answer should contain."""
    q = question.lower()
    if re.search(
        r"\bhow (many|much|long|far|big|large|fine|old|high|often)\b|\bwhat (percentage|percent|share|"
        r"proportion|number|amount|price|sum)\b|\bhow [a-z]+ (a|an) (stake|share|sum)\b",
        q,
    ):
        return "number"
    if re.search(r"\b(when|what date|which date|on what day|what year|which year)\b", q):
        return "date"
    if re.search(r"\b(who|whom|whose)\b|\bwhich \w+ (minister|official|ambassador|president|leader|spokes)", q):
        return "person"
    if re.search(r"\b(where|which (city|country|town|province|region|state|place|border crossing))\b", q):
        return "place"
    return "other"


_UNIT = re.compile(
    r"\s?-?(mile|kilomet|km|meter|metre|feet|foot|yard|inch|day|week|month|year|hour|minute)", re.IGNORECASE
)
_SPEECH = re.compile(r"\b(say|said|says|tell|told)\b", re.IGNORECASE)
_SPEECH_VERBS = re.compile(
    r"\b(said|says|told|confirmed|stated|noted|argued|claimed|complained|warned|reported|explained"
    r"|acknowledged|admitted|insisted|asserted|stressed|emphasized|added|replied)\b",
    re.IGNORECASE,
)


def _candidates(kind: str, sentence: str, question: str) -> list[tuple[int, int]]:
    """Spans of `sentence` that could be the answer of this kind and are not already in the question."""
    if kind == "number":
        spans = [m.span() for m in _NUMBER.finditer(sentence)]
        if re.search(r"\bhow (long|far|high|old)\b", question, re.IGNORECASE):  # a measure: needs its unit
            spans = [(a, b) for a, b in spans if _UNIT.match(sentence, b)]
    elif kind == "date":
        spans = [m.span() for m in _DATE.finditer(sentence)]
    elif kind in ("person", "place"):
        spans = []
        for m in _NAME.finditer(sentence):
            start = m.start()
            # A capital at sentence start is not evidence of a name on its own.
            if start == 0 and " " not in m.group(0) and m.group(0).lower() in _COMMON_STARTS:
                continue
            spans.append(m.span())
    else:
        return []
    asked = set(terms(question))
    return [(a, b) for a, b in spans if not set(terms(sentence[a:b])) <= asked]


_COMMON_STARTS = {
    "the",
    "a",
    "an",
    "this",
    "that",
    "these",
    "those",
    "it",
    "he",
    "she",
    "they",
    "we",
    "but",
    "while",
    "although",
    "here",
    "there",
    "in",
    "at",
    "on",
    "as",
    "when",
    "if",
    "and",
}


def _clause(sentence: str, pos: int) -> tuple[int, int]:
    cuts = [0] + [m.end() for m in re.finditer(r"[,;:—–]\s*", sentence)] + [len(sentence)]
    return max(c for c in cuts if c <= pos), min(c for c in cuts if c > pos)


def _focus(
    kind: str, sentence: str, question: str, qterms: set[str], anchor: tuple[int, int] | None = None
) -> tuple[int, int] | None:
    """The candidate span whose neighbourhood shares most words with the question.

    `anchor` is the previous answer's key span in this same sentence: a
    follow-up ("and how long is that border?") asks about its own clause.
    """
    best, best_score = None, -1.0
    anchor_clause = _clause(sentence, anchor[0]) if anchor else None
    for a, b in _candidates(kind, sentence, question):
        if anchor and (a, b) == anchor:
            continue
        after = set(terms(sentence[b : b + 60]))
        before = set(terms(sentence[max(0, a - 40) : a]))
        score = 2 * len(after & qterms) + len(before & qterms) - 0.001 * a
        if anchor_clause and _clause(sentence, a) == anchor_clause:
            score += 3
        if score > best_score:
            best, best_score = (a, b), score
    return best


# --- Choosing the sentence -------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    hit: Hit
    start: int  # span of the sentence in hit.chunk.text
    end: int
    score: float
    coverage: float


def _coverage(qweights: dict[str, float], sentence_terms: set[str]) -> float:
    total = sum(qweights.values())
    return sum(w for t, w in qweights.items() if t in sentence_terms) / total if total else 0.0


def choose_answer(
    question: str,
    hits: list[Hit],
    retriever: Retriever,
    documents: dict[str, Document],
    min_score: float,
    max_chars: int,
    context: str = "",
    previous: Answer | None = None,
) -> Answer:
    """The best-supported sentence among `hits`, or an abstention.

    `context` (the earlier question of a conversation) adds terms to match, at
    a lower weight than the question's own; `previous` is the answer it got.
    """
    qterms = question_terms(question)
    qweights = {t: retriever.term_weight(t) for t in qterms}
    for t in terms(context):
        qweights.setdefault(t, 0.5 * retriever.term_weight(t))
    qpairs = _bigrams(qterms)
    kind = question_kind(question)
    candidates: list[_Candidate] = []
    for hit in hits[:8]:
        text = hit.chunk.text
        for a, b in sentence_spans(text):
            sentence = text[a:b]
            words = terms(sentence)
            cov = _coverage(qweights, set(words))
            pairs = len(qpairs & _bigrams(words)) / len(qpairs) if qpairs else 0.0
            fits = kind == "other" or bool(_candidates(kind, sentence, question))
            reported = bool(_SPEECH.search(question) and _SPEECH_VERBS.search(sentence))
            score = (
                hit.score
                + 0.6 * cov
                + 0.3 * pairs
                + (0.5 if fits else 0.0)
                + (0.1 if reported else 0.0)
                - 0.01 * hit.rank
            )
            candidates.append(_Candidate(hit, a, b, score, cov))
    if not candidates:
        return Answer(question, ABSTAIN_TEXT, True, (), tuple(hits))
    best = max(candidates, key=lambda c: c.score)
    hits = _rerank(hits, candidates)
    confidence = best.hit.score + best.coverage
    if confidence < min_score:
        return Answer(question, ABSTAIN_TEXT, True, (), tuple(hits), confidence=confidence)

    chunk = best.hit.chunk
    quote = chunk.text[best.start : best.end]
    anchor = previous.emphasis if previous and previous.text == quote else None
    focus = _focus(kind, quote, question, set(qweights), anchor)
    text, emphasis = excerpt(quote, focus, max_chars)
    doc = documents.get(chunk.doc_id)
    citation = Citation(
        n=1,
        source=chunk.doc_id,
        title=doc.title if doc else chunk.doc_id,
        location=f"¶{chunk.paragraph}",
        quote=text,
        url=doc.url if doc else None,
    )
    return Answer(question, text, False, (citation,), tuple(hits), emphasis, confidence)


def _rerank(hits: list[Hit], candidates: list[_Candidate]) -> list[Hit]:
    """Hits ordered by their best sentence, so the passage holding the answer comes first."""
    best: dict[int, float] = {}
    for c in candidates:
        best[c.hit.rank] = max(best.get(c.hit.rank, -1e9), c.score)
    ordered = sorted(hits, key=lambda h: (h.rank not in best, -best.get(h.rank, 0.0), h.rank))
    return [Hit(h.chunk, h.score, rank) for rank, h in enumerate(ordered, 1)]


def excerpt(sentence: str, focus: tuple[int, int] | None, max_chars: int) -> tuple[str, tuple[int, int] | None]:
    """`sentence` cut to `max_chars` around `focus` at clause boundaries, elisions marked "…"."""
    if len(sentence) <= max_chars:
        return sentence, focus
    a, b = focus or (0, 0)
    cuts = [0] + [m.end() for m in re.finditer(r"[,;:—–]\s+|\s+-{1,2}\s+", sentence)] + [len(sentence)]
    start = max((c for c in cuts if c <= a), default=0)
    end = min((c for c in cuts if c >= b), default=len(sentence))
    # Grow by whole clauses while the result fits; fall back to word boundaries.
    while True:
        grown = False
        for nxt in (
            min((c for c in cuts if c > end), default=None),
            max((c for c in cuts if c < start), default=None),
        ):
            if nxt is None:
                continue
            s, e = min(start, nxt), max(end, nxt)
            if e - s + 2 <= max_chars:
                start, end, grown = s, e, True
                break
        if not grown:
            break
    if end - start + 2 > max_chars:
        start = max(0, min(a, sentence.rfind(" ", 0, max(a, 1))))
        end = start + max_chars - 2
        end = sentence.rfind(" ", start, end) if " " in sentence[start:end] else end
    text = sentence[start:end].strip(" ,;:—–-")
    lead = sentence.index(text, start)
    prefix = "…" if start > 0 else ""
    suffix = "…" if lead + len(text) < len(sentence) else ""
    out = prefix + text + suffix
    if focus and lead <= a and b <= lead + len(text):
        shift = len(prefix) - lead
        return out, (a + shift, b + shift)
    return out, None
