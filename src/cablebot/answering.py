"""Answering: quote the sentence the reader picks, cite it, or abstain.

No text is generated. The answer is a sentence copied from a retrieved chunk
(cut at a clause boundary, marked with "…", when too long), with the span the
question asks for (a number, name, place or date) marked for emphasis. When
the reader's confidence is below its learned threshold the answer abstains.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from cablebot.cables import REFERENCE_ID, reference_ids
from cablebot.chunking import sentence_spans
from cablebot.documents import Document
from cablebot.lexical import terms
from cablebot.reading import (
    Candidate,
    Question,
    Reader,
    analyse,
    candidates,
    focus,
    plain_question,
    spelled_out,
)
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
    confidence: float = 0.0  # the probability that the answer is right (calibrated on held-out questions)
    unsure: bool = False  # answered, but with a confidence low enough to say so
    filter_matched: int | None = None  # documents the question's filters allowed (None: no filter)
    metadata: dict[str, str] | None = None  # an answer from a cable's metadata: the field and its value

    @property
    def markdown(self) -> str:
        """The answer with its key span in bold."""
        if not self.emphasis:
            return self.text
        a, b = self.emphasis
        return f"{self.text[:a]}**{self.text[a:b]}**{self.text[b:]}"


# --- Questions about a document rather than its text -----------------------------------

_DOCUMENT_NOUNS = r"cable|telegram|message|report|article|piece|story|post|document"
_REFERENCE_ID = REFERENCE_ID.pattern  # a cable's, "09MEXICO3061"
_DOCUMENT_WORDS = rf"\b({_DOCUMENT_NOUNS}|author|writer|it|this|{_REFERENCE_ID})\b"
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
    # An article's byline (front matter or page metadata); "who wrote it" asks a cable for its origin.
    "author": re.compile(
        r"\bwho (wrote|authored)\b|\b(?:who|what)(?: is|'s|’s) (the |its )?(author|writer)\b"
        r"|\bname of the (author|writer)\b",
        re.IGNORECASE,
    ),
    # What a document is about: a cable's subject line, an article's title. "What is this cable about?",
    # "the subject of 09MEXICO3061"; not "the subject of the talks", nor "subject to".
    "subject": re.compile(
        r"\bwhat(?:'s|’s| is| was)\s+(?:\S+\s+){0,3}about\W*$"
        r"|\b(?:subject|title|topic|headline)\b(?!\s+to\b)"
        rf"(?!\s+of\s+(?!(?:the|this|that|its?)\s+(?:{_DOCUMENT_NOUNS})\b|{_REFERENCE_ID}))",
        re.IGNORECASE,
    ),
    # What a document says as a whole: its own summary, or else what it is about. "Summarize 09MEXICO3061",
    # "(tell me) about this cable", "what does it say?" (not "what does it say about Mexico?", nor "tell me about
    # the crossings in this article").
    "summary": re.compile(
        r"\bsummar(?:y|ize|ise)\b|\bgist\b|\boverview\b|\bwhat does\b.*\bsay\W*$"
        rf"|^\W*(?:tell me )?about\s+(?:(?:the|this|that)\s+)?(?:{_DOCUMENT_NOUNS}|{_REFERENCE_ID}|it)\W*$",
        re.IGNORECASE,
    ),
}
# A paragraph's number and classification marking: "1. (C) ", "(S/NF) ".
_MARKING = r"[^\w(]*(?:\d+\s*\.\s*)?(?:\([A-Z/ ]+\)\s*)?(?:\d+\s*\.\s*)?"
_MARKED = re.compile(_MARKING)
# The opening of a cable's own summary: "1. (C) SUMMARY:", "(S/NF) Summary.", "Introduction and summary:", or a
# heading "------- SUMMARY -------".
_SUMMARY = re.compile(
    rf"{_MARKING}(?:introduction and )?summary(?: and (?:comment|introduction|action requests?))?\s*[:.-]+\s*",
    re.IGNORECASE,
)
_METADATA_LABELS = {
    "classification": "Classification",
    "origin": "Origin",
    "created": "Created",
    "released": "Released",
    "author": "Author",
    "subject": "Subject",
    "title": "Title",
}


def metadata_fields(question: str) -> list[str]:
    """The metadata fields a question asks for ("How was it classified?", "Who wrote this?"), likeliest
    first: the first one the document has answers. "summary" asks for the document as a whole."""
    if re.fullmatch(rf"\W*(?:what is\s+)?{_REFERENCE_ID}\W*", question, re.I):  # a cable named, nothing asked
        return ["summary"]
    # "The title" or "the headline" alone is the document's ("what's the title?"), not a person's ("his title").
    about_document = re.search(_DOCUMENT_WORDS, question, re.I) or re.search(
        r"\bthe (title|headline)\W*$", question, re.I
    )
    if not about_document or re.search(r"\bdeclassif", question, re.I):
        return []
    return [name for name, pattern in _METADATA.items() if pattern.search(question)]


# The words of a question about a document that do not tell which document: what is left describes it ("the
# cable about twelve-step programs").
_DOCUMENT_QUESTION_WORDS = frozenset(
    terms(
        f"{_DOCUMENT_NOUNS.replace('|', ' ')} text author writer wrote write written authored sent send drafted "
        "originated originate issued produced come classification classified marking dated created date day "
        "released published leaked subject title topic headline line embassy consulate mission office name us "
        "american summary summarize summarise gist overview tell say"
    )
)
WHICH_DOCUMENT_TEXT = (
    "Which document do you mean? Name it (a cable by its reference ID), or ask right after an answer from it."
)


def _field(doc: Document, field: str) -> tuple[str, str]:
    """A metadata field of `doc`, as (name, value); what a document is about is a cable's SUBJECT line, or the
    title of a document that is no cable."""
    if field == "subject" and not doc.metadata.get("subject") and not doc.is_cable:
        return "title", doc.title
    return field, doc.metadata.get(field, "")


def _first(hit: Hit, hits: list[Hit]) -> tuple[Hit, ...]:
    """`hits` with the passage an answer was read from first, ranked anew (as `_rerank` puts the chosen one)."""
    ordered = [hit, *(h for h in hits if h is not hit)]
    return tuple(dataclasses.replace(h, rank=rank) for rank, h in enumerate(ordered, 1))


def _meant_document(
    question: str, q: Question, hits: list[Hit], previous: Answer | None, alone: bool
) -> str | None:
    """The document a question about a document means: the one a follow-up refers to (the earlier answer's, or
    after an abstention the closest passage it showed first), the only one (`alone`: an index of one, a filter
    or a reference ID down to one), or the one retrieval finds first for a question that describes it ("the
    cable about twelve-step programs"). None for a question that means no document in particular ("who wrote
    this cable?" over a collection, nothing asked before)."""
    described = bool(set(q.weights) - _DOCUMENT_QUESTION_WORDS)
    refers_back = re.search(r"\b(it|its|this|that)\b", question, re.IGNORECASE) or not described
    if previous and refers_back and (previous.citations or previous.hits):
        return previous.citations[0].source if previous.citations else previous.hits[0].chunk.doc_id
    return hits[0].chunk.doc_id if alone or described else None


def _summary(doc_id: str, hits: list[Hit]) -> tuple[Hit, int, int] | None:
    """The first sentence of the summary a cable opens with ("1. (C) SUMMARY: ..."; after a heading "SUMMARY", the
    next passage's), if its opening passages are among `hits` (a search within one document holds them), as
    (passage, start, end). A sentence of fewer than three words ("- - -", "xxxxx.") is none."""
    opening = sorted((h for h in hits if h.chunk.doc_id == doc_id), key=lambda h: h.chunk.start)[:4]
    heading = False
    for hit in opening:
        text = hit.chunk.text
        if m := _SUMMARY.match(text) or (_MARKED.match(text) if heading else None):
            heading = True
            begin = _MARKED.match(text, m.end()).end()  # "Summary ------- (C) President Karzai has ..."
            for a, b in sentence_spans(text):
                if b > begin and len(re.findall(r"[A-Za-z]{2,}", text[max(a, begin) : b])) >= 3:
                    return hit, max(a, begin), b
    return None


def _about_document(
    question: str,
    q: Question,
    fields: list[str],
    hits: list[Hit],
    documents: dict[str, Document],
    previous: Answer | None,
    alone: bool,
    max_chars: int,
) -> Answer | None:
    """Answer a question about a document (`fields`, as `metadata_fields` gives them) from its metadata, or
    from its own summary; ask which document a question means that means none (`_meant_document`), and say
    so of a reference ID the index does not hold."""
    named = reference_ids(question)
    if named and not any(n in documents for n in named):  # a cable that is not there has no metadata to give
        return Answer(question, f"The index holds no document {named[0]}.", True, (), ())
    doc_id = _meant_document(question, q, hits, previous, alone)
    if doc_id is None:
        return Answer(question, WHICH_DOCUMENT_TEXT, True, (), ())
    doc = documents.get(doc_id)
    if doc is None:
        return None
    if fields[0] == "summary":
        if summary := _summary(doc_id, hits):
            hit, a, b = summary
            text, _ = excerpt(hit.chunk.text[a:b], None, max_chars)
            citation = cite(1, doc_id, documents, hit.chunk.location, text)
            return Answer(question, text, False, (citation,), _first(hit, hits), confidence=1.0)
        fields = ["subject"]  # no summary of its own: what it is about
    found = [(name, value) for name, value in (_field(doc, f) for f in fields) if value]
    if not found:
        return None
    field, value = found[0]
    label = f"{_METADATA_LABELS[field]}: "
    text = label + value
    citation = cite(1, doc_id, documents, "metadata", text)
    # The answer cites the document's metadata, which is no retrieved passage: the passages stay as retrieved.
    return Answer(
        question, text, False, (citation,), tuple(hits), (len(label), len(text)), 1.0, metadata={field: value}
    )


def understand(question: str, retriever: Retriever, context: str = "", previous: Answer | None = None) -> Question:
    """The question as it is searched and read, worked out once per question: its typos respelt as the
    words of the collection ("whcih presiednt" -> "which president"; after "didnt" is spelled out), then
    analysed (`analyse`). `context` is the earlier question of a conversation, `previous` its answer."""
    earlier = (previous.citations[0].source, previous.text) if previous and previous.citations else ("", "")

    def respelt(text: str) -> str:
        return retriever.respelt(spelled_out(text))

    return analyse(respelt(question), retriever.term_weight, retriever.max_weight, respelt(context), earlier)


def choose_answer(
    question: str,
    q: Question,
    hits: list[Hit],
    documents: dict[str, Document],
    reader: Reader,
    match: Callable[[str], float],
    k: int,
    max_chars: int,
    previous: Answer | None = None,
    alone: bool = False,
) -> Answer:
    """The sentence of `hits` the reader finds likeliest to answer `question` (`q`, as `understand` reads
    it), or an abstention.

    `match` gives a sentence's `weakest_match` with the question, which the confidence weighs with the
    reader's score; `previous` is the answer the earlier question of a conversation got; `alone` says
    the question is answered from one document.
    """
    # Read as respelt, and as typed: a word the collection lacks ("gist") is respelt as one it holds ("gift").
    fields = metadata_fields(q.text) or metadata_fields(plain_question(question))
    if fields and hits:
        answer = _about_document(question, q, fields, hits, documents, previous, alone, max_chars)
        if answer is not None:
            return answer
    found = candidates(q, hits, k)
    features = [c.features for c in found]
    logits = reader.logits(features)
    scored = list(zip(logits, found, strict=True))
    if not scored:
        return Answer(question, ABSTAIN_TEXT, True, (), tuple(hits))
    best_logit, best = scored[reader.choose(features, logits)]
    hits = _rerank(hits, scored, best)
    confidence, answers = reader.judge(best_logit, match(best.text), alone)
    if not answers:
        return Answer(question, ABSTAIN_TEXT, True, (), tuple(hits), confidence=confidence)
    quote = best.text
    anchor = previous.emphasis if previous and previous.text == quote else None
    span, _ = focus(q.kind, quote, q.text, set(q.weights), anchor, mark=True)
    text, emphasis = excerpt(quote, span, max_chars)
    if not re.search(r"\w", text):  # an answer quotes at least one word of the source, or it is none
        return Answer(question, ABSTAIN_TEXT, True, (), tuple(hits), confidence=confidence)
    citation = cite(1, best.hit.chunk.doc_id, documents, best.hit.chunk.location, text)
    return Answer(
        question, text, False, (citation,), tuple(hits), emphasis, confidence, confidence < reader.unsure_below
    )


def _rerank(hits: list[Hit], scored: list[tuple[float, Candidate]], chosen: Candidate) -> list[Hit]:
    """Hits ordered by their best sentence's score less the log of their retrieval rank (the sentence's odds
    weighed by 1 / rank), the passage holding the chosen one first. Held out, the weighing puts a passage
    holding the answer among the first five more often than the sentence alone (docs/answer-quality.md)."""
    best: dict[int, float] = {}
    for logit, c in scored:
        best[c.hit.rank] = max(best.get(c.hit.rank, -1e9), logit)
    best[chosen.hit.rank] = math.inf
    ordered = sorted(hits, key=lambda h: (h.rank not in best, math.log(h.rank) - best.get(h.rank, 0.0), h.rank))
    return [dataclasses.replace(h, rank=rank) for rank, h in enumerate(ordered, 1)]


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
