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

from cablebot.chunking import Chunk, sentence_spans
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
    detail: str = ""  # for a cable: origin, date, classification

    @property
    def reference(self) -> str:
        """How the citation reads: `09MEXICO3061 ¶5 — Embassy Mexico, 2009-10-23, SECRET` or `Title, ¶9`."""
        return (
            f"{self.source} {self.location} — {self.detail}" if self.detail else f"{self.title}, {self.location}"
        )


def cite(n: int, doc_id: str, documents: dict[str, Document], location: str, quote: str) -> Citation:
    doc = documents.get(doc_id)
    if doc is None:
        return Citation(n, doc_id, doc_id, location, quote)
    detail = ", ".join(v for v in (doc.metadata.get("origin"), doc.date, doc.metadata.get("classification")) if v)
    return Citation(n, doc_id, doc.title, location, quote, doc.url, detail if doc.is_cable else "")


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
    r"(?:(?:US\$|USD|\$|DM|€|£|EUR|Rs\.?)\s?)?(?<![\w-])\d[\d,]*(?:\.\d+)?(?:\s?-\s?\d[\d,]*(?:\.\d+)?)?(?![\w-])"
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


_HOW = r"\bhow (many|much|long|far|big|large|fine|old|high|often)\b"  # asks for a number or a measure
_WH_PHRASE = re.compile(
    _HOW + r"|\b(what|which) (percentage|percent|share|"
    r"proportion|number|amount|date|day|year|kind|type|sort)\b",
    re.IGNORECASE,
)


def question_terms(question: str) -> list[str]:
    """Content terms of a question, without its question words ("how long" asks, it does not match)."""
    return terms(_WH_PHRASE.sub(" ", question))


_HEAD_STOP = frozenset(
    "did do does was were is are had has have will would could can should of in on for to that from by at with "
    "about".split()
)
# Nouns that name the kind of answer rather than something the text mentions.
_GENERIC_HEADS = frozenset(
    "date day time percentage percent share city country place amount number kind type company firm organization "
    "organisation publication publisher group party agency".split()
)


def head_noun(question: str) -> str | None:
    """The thing a question asks about ("how many IT *specialists*", "who was the *captain*"), stemmed.

    The answer's passage should mention it: its absence is the sign of a
    question the documents come close to but do not answer.
    """
    m = re.search(r"\b(how many|how much|what|which|whose|who (?:was|is|were|are) the)\s+(.*)", question, re.I)
    if not m:
        return None
    span = []
    for word in re.findall(r"[\w'’-]+", m.group(2))[:5]:
        if word.lower() in _HEAD_STOP:
            break
        span.append(word)
    if not span or len(span) == 5:
        return None
    found = terms(span[-1])
    return found[0] if found and found[0] not in _GENERIC_HEADS else None


def _bigrams(words: list[str]) -> set[tuple[str, str]]:
    return set(pairwise(words))


def question_kind(question: str) -> str:
    """number | person | place | date | reason | other: what an answer should contain."""
    q = question.lower()
    if re.search(
        _HOW + r"|\bwhat (percentage|percent|share|proportion|number|amount|price|sum)\b"
        r"|\bhow [a-z]+ (a|an) (stake|share|sum)\b",
        q,
    ):
        return "number"
    if re.search(r"\b(when|what date|which date|on what day|what year|which year)\b", q):
        return "date"
    if re.search(r"\b(who|whom|whose)\b|\bwhich \w+ (minister|official|ambassador|president|leader|spokes)", q):
        return "person"
    if re.search(r"\b(where|which (city|country|town|province|region|state|place|border crossing))\b", q):
        return "place"
    if re.search(r"^(why|what (caused|led to|prompted|made)|for what reason)\b|\bwhy\b", q):
        return "reason"
    return "other"


_CAUSE = re.compile(
    r"\b(because|since|due to|owing to|as a result|reason|so that|in order to|danger|risk|fear|concern|worr|"
    r"caus|contention|led to|prompt|motivat|result|therefore|thus|given that|would)",
    re.IGNORECASE,
)


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
            before = sentence[max(0, start - 25) : start]
            if kind == "place" and not _PLACE_CUE.search(before):
                continue  # a place is "in Cuernavaca", "near Magd", "to France"
            if kind == "person" and " " not in m.group(0).strip() and not _TITLE_CUE.search(before):
                continue  # a person has a full name ("Crispus Kiyonga") or a title ("Minister Kiyonga")
            spans.append(m.span())
    else:
        return []
    asked = set(terms(question))
    return [(a, b) for a, b in spans if not set(terms(sentence[a:b])) <= asked]


_PLACE_CUE = re.compile(r"\b(in|at|near|outside|from|to|into|like|city of|town of)\s+((the|a|an)\s+)?$", re.I)
_TITLE_CUE = re.compile(
    r"\b(Mr|Mrs|Ms|Dr|President|Minister|Ambassador|General|Gen|Governor|Prince|King|Queen|Sheikh|Senator|"
    r"Director|Chairman|Secretary|Judge|Colonel|Col|Captain|Commissioner|Mayor|spokesman|MP|PM)\.?\s+$"
)
_COMMON_STARTS = frozenset(
    "the a an this that these those it he she they we but while although "
    "here there in at on as when if and".split()
)


def _clause(sentence: str, pos: int) -> tuple[int, int]:
    """The clause around `pos`: between commas, semicolons, colons, dashes or list markers."""
    cuts = [0] + [m.end() for m in re.finditer(r"[,;:—–()]\s*|\s-{1,2}\s", sentence)] + [len(sentence)]
    return max(c for c in cuts if c <= pos), min((c for c in cuts if c > pos), default=len(sentence))


def _focus(
    kind: str, sentence: str, question: str, qterms: set[str], anchor: tuple[int, int] | None = None
) -> tuple[tuple[int, int] | None, float]:
    """The candidate span whose neighbourhood shares most words with the question.

    `anchor` is the previous answer's key span in this same sentence: a
    follow-up ("and how long is that border?") asks about its own clause.
    """
    best, best_score = None, -1.0
    anchor_clause = _clause(sentence, anchor[0]) if anchor else None
    for a, b in _candidates(kind, sentence, question):
        if anchor and (a, b) == anchor:
            continue
        # Question words right after the span ("125 Mexican immigration officials") count most.
        start, end = _clause(sentence, a)
        after = terms(sentence[b : max(b, end)])[:6]
        before = terms(sentence[start:a])[-4:]
        score = sum(2 / (1 + i) for i, t in enumerate(after) if t in qterms)
        score += sum(1 / (1 + i) for i, t in enumerate(reversed(before)) if t in qterms) - 0.001 * a
        if anchor_clause and _clause(sentence, a) == anchor_clause:
            score += 3
        if score > best_score:
            best, best_score = (a, b), score
    return best, max(best_score, 0.0)


# --- Choosing the sentence -------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    hit: Hit
    start: int  # span of the sentence in hit.chunk.text
    end: int
    score: float
    coverage: float
    fits: bool = True  # holds a span of the kind asked for


def _coverage(qweights: dict[str, float], sentence_terms: set[str]) -> float:
    total = sum(qweights.values())
    return sum(w for t, w in qweights.items() if t in sentence_terms) / total if total else 0.0


# --- Questions about a cable rather than its text --------------------------------------

_CABLE_WORDS = r"\b(cable|telegram|message|report|it|\d{2}[A-Z][A-Z-]*\d+)\b"
_METADATA = {
    "classification": re.compile(r"\b(classification|classified|marking)\b", re.IGNORECASE),
    "origin": re.compile(
        r"\b(which|what) (us |u\.s\. |american )?(embassy|consulate|post|mission|office)\b.*\b(sent|send|wrote|"
        r"write|drafted|originated|issued|produced)\b|\bwho (sent|wrote)\b|\bwhere did .* (come from|originate)",
        re.IGNORECASE,
    ),
    "created": re.compile(
        r"\b(when|what date|which date|what day)\b.*\b(written|sent|dated|created|drafted|issued)\b", re.IGNORECASE
    ),
    "released": re.compile(r"\bwhen\b.*\b(released|published|leaked)\b", re.IGNORECASE),
}
_METADATA_LABELS = {
    "classification": "Classification",
    "origin": "Origin",
    "created": "Created",
    "released": "Released",
}


def metadata_field(question: str) -> str | None:
    """The cable metadata field a question asks for ("How was it classified?"), if any."""
    if not re.search(_CABLE_WORDS, question, re.IGNORECASE):
        return None
    for name, pattern in _METADATA.items():
        if pattern.search(question) and not re.search(r"\bdeclassif", question, re.IGNORECASE):
            return name
    return None


def _metadata_answer(
    question: str, field: str, hits: list[Hit], documents: dict[str, Document], previous: Answer | None
) -> Answer | None:
    """Answer from the metadata of the cable a follow-up refers to, or else the first retrieved one
    (the one a question names by reference ID: `Cablebot.ask` searches only that cable then)."""
    if previous and previous.citations and re.search(r"\b(it|its|this|that)\b", question, re.IGNORECASE):
        doc_id = previous.citations[0].source
    else:
        doc_id = hits[0].chunk.doc_id
    doc = documents.get(doc_id)
    value = doc.metadata.get(field) if doc else None
    if not value:
        return None
    label = f"{_METADATA_LABELS[field]}: "
    text = label + value
    citation = cite(1, doc_id, documents, "metadata", text)
    # The cable's metadata table row is the passage this answer comes from; it leads the passages.
    row = " | ".join(
        doc.metadata[k]
        for k in ("reference_id", "created", "released", "classification", "origin")
        if doc.metadata.get(k)
    )
    table = Hit(Chunk(doc_id, 0, 0, 0, row, "metadata"), hits[0].score, 1)
    ranked = [table] + [Hit(h.chunk, h.score, rank) for rank, h in enumerate(hits, 2)]
    return Answer(question, text, False, (citation,), tuple(ranked), (len(label), len(text)), 1.0)


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
    field = metadata_field(question)
    if field and hits:
        answer = _metadata_answer(question, field, hits, documents, previous)
        if answer is not None:
            return answer
    qterms = question_terms(question)
    qweights = {t: retriever.term_weight(t) for t in qterms}
    for t in terms(context):
        qweights.setdefault(t, 0.5 * retriever.term_weight(t))
    qpairs = _bigrams(qterms)
    kind = question_kind(question)
    main_doc = _dominant_document(hits)
    head = head_noun(question)
    qset = set(qweights)
    speech = bool(_SPEECH.search(question))
    candidates: list[_Candidate] = []
    for hit in hits:
        text = hit.chunk.text
        spans = sentence_spans(text)
        words = [terms(text[a:b]) for a, b in spans]
        mentions_head = head is None or head in text.lower()
        # Answers are one to three consecutive sentences: a sentence that restates the question is
        # often followed by the one that answers it ("...cancelled the conference. The bone of
        # contention? Perceived differences in the quality of the villas...").
        for i in range(len(spans)):
            for j in range(i + 1, min(i + 4, len(spans) + 1)):
                a, b = spans[i][0], spans[j - 1][1]
                if j > i + 1 and b - a > max_chars:
                    break
                if text[b - 1] == "?":
                    continue  # "The bone of contention?" announces the answer; the next sentence gives it
                window, window_words = text[a:b], [w for ws in words[i:j] for w in ws]
                cov = _coverage(qweights, set(window_words))
                pairs = len(qpairs & _bigrams(window_words)) / len(qpairs) if qpairs else 0.0
                if kind in ("other", "reason"):
                    fits, focus = kind == "other" or bool(_CAUSE.search(window)), 0.0
                else:
                    span, focus = _focus(kind, window, question, qset)
                    fits = span is not None
                score = (
                    hit.score
                    + 0.6 * cov
                    + 0.3 * pairs
                    + (0.5 if fits else 0.0)
                    + 0.25 * min(focus, 3.0)
                    + (0.1 if speech and _SPEECH_VERBS.search(window) else 0.0)
                    + (0.15 if hit.chunk.doc_id == main_doc else 0.0)
                    + (0.2 if mentions_head else 0.0)
                    - 0.01 * min(hit.rank, 10)
                    - 0.12 * (j - i - 1)  # concise: a second sentence must earn its place
                )
                candidates.append(_Candidate(hit, a, b, score, cov, fits))
    if not candidates:
        return Answer(question, ABSTAIN_TEXT, True, (), tuple(hits))
    best = max(candidates, key=lambda c: c.score)
    hits = _rerank(hits, candidates)
    confidence = best.hit.score + best.coverage - (0.0 if best.fits else 0.3)
    if head and head not in best.hit.chunk.text.lower():
        confidence -= 0.5  # the passage never mentions what the question asks about
    if confidence < min_score:
        return Answer(question, ABSTAIN_TEXT, True, (), tuple(hits), confidence=confidence)

    chunk = best.hit.chunk
    quote = chunk.text[best.start : best.end]
    anchor = previous.emphasis if previous and previous.text == quote else None
    focus, _ = _focus(kind, quote, question, qset, anchor)
    text, emphasis = excerpt(quote, focus, max_chars)
    citation = cite(1, chunk.doc_id, documents, chunk.location, text)
    return Answer(question, text, False, (citation,), tuple(hits), emphasis, confidence)


def _dominant_document(hits: list[Hit]) -> str | None:
    """The document the top passages point at most (each weighted by 1/rank)."""
    weight: dict[str, float] = {}
    for h in hits[:8]:
        weight[h.chunk.doc_id] = weight.get(h.chunk.doc_id, 0.0) + 1.0 / h.rank
    return max(weight, key=weight.__getitem__) if weight else None


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
