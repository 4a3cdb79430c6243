"""Retrieval: the chunks nearest a question, as ranked hits."""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cablebot.cables import reference_ids
from cablebot.chunking import Chunk
from cablebot.errors import CablebotError
from cablebot.lexical import terms

if TYPE_CHECKING:
    import numpy as np

    from cablebot.embedding import Embedder
    from cablebot.index import Index
    from cablebot.store import DocumentStore


@dataclass(frozen=True)
class Filter:
    """Which documents a question may be answered from; unset fields do not filter."""

    origin: str | None = None  # part of the origin, any case: "Mexico" matches "Embassy Mexico"
    since: str | None = None  # ISO date, inclusive: "2009", "2009-10", "2009-10-23"
    until: str | None = None  # ISO date, inclusive
    classification: str | None = None  # "SECRET" matches "SECRET" and "SECRET//NOFORN"
    doc: str | None = None  # a document id (a cable's reference ID)

    def __post_init__(self) -> None:
        # Dates are compared as text: "10/2009" would let every document through without a word.
        for name, value in (("since", self.since), ("until", self.until)):
            if value and not _is_date(value):
                raise CablebotError(f"{name} {value!r} is not a date: use 2009, 2009-10 or 2009-10-23")

    def __bool__(self) -> bool:
        return any((self.origin, self.since, self.until, self.classification, self.doc))

    def __str__(self) -> str:
        """As the options that set it: `--origin Narnia --since 2009`."""
        fields = (("origin", self.origin), ("since", self.since), ("until", self.until))
        fields += (("classification", self.classification), ("doc", self.doc))
        return " ".join(f"--{name} {value}" for name, value in fields if value)

    def allowed(self, documents: DocumentStore) -> np.ndarray:
        """Which documents (by record row) the filter allows: array operations on the document table."""
        import numpy as np

        table = documents.table
        ok = np.ones(len(documents), dtype=bool)
        if self.doc:
            row = documents.row(self.doc)
            if row is None:  # reference IDs are upper case; people type them any way
                folded = np.char.upper(documents.ids) == self.doc.upper().encode()
                rows = documents.order[folded]
            else:
                rows = [row]
            ok[:] = False
            ok[rows] = True
        if self.origin:
            origin = self.origin.casefold()
            ok &= _passing(table, "origin", lambda value: origin in value.casefold())
        if self.classification:
            level = self.classification.upper()
            ok &= _passing(table, "classification", lambda value: level in (value, value.split("//")[0]))
        dates = table["date"]
        if self.since:
            ok &= (dates != b"") & (dates >= self.since.encode())
        if self.until:
            ok &= (dates != b"") & (dates.astype(f"S{len(self.until)}") <= self.until.encode())
        return ok


def _is_date(value: str) -> bool:
    """Whether `value` is a year, a month or a day of the calendar, written the ISO way."""
    m = re.fullmatch(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?", value)
    if not m:
        return False
    try:
        datetime.date(int(m[1]), int(m[2] or 1), int(m[3] or 1))
    except ValueError:  # month 13, February 30
        return False
    return True


def _passing(table: dict[str, np.ndarray], column: str, test: Callable[[str], bool]) -> np.ndarray:
    """Per document, whether its value in a coded column passes `test`: the test runs once per distinct value."""
    import numpy as np

    return np.array([test(v) for v in table[f"{column}s"].tolist()], dtype=bool)[table[column]]


# A word written with a capital after the first word of a sentence is a name ("met Foreign Minister Jeremic in
# Belgrade"), or part of a heading in capitals.
_MID_SENTENCE = re.compile(r"(?<=[\w,;:)] )[\w'’.-]+")


def without_names(question: str, passages: Sequence[str]) -> str:
    """`question` without the words `passages` write as names: what it asks of them ("who does syria let
    transit?" -> "who does let transit ?"). Near the whole question, a sentence sharing its names scores high
    whatever it says of them; near this, the sentence that says what is asked does. The question itself when
    it names nothing, or fewer than two words would be left."""
    capitalised = (w for p in passages for w in _MID_SENTENCE.findall(p) if w[0].isupper())
    names = set(terms(" ".join(capitalised)))
    words = re.findall(r"[\w'’-]+|[^\w\s]", question)
    kept = [w for w in words if not names.intersection(terms(w))]
    if len(kept) == len(words) or sum(any(c.isalpha() for c in w) for w in kept) < 2:
        return question
    return " ".join(kept)


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk, its rank (1 = best) and its similarity to the question.

    `score` is the cosine similarity of the chunk's closest sentence;
    `sentence_scores` that of each of its sentences, in reading order;
    `relation_scores` each sentence's similarity to the question without its
    names (`without_names`): `sentence_scores` again when it names nothing.
    """

    chunk: Chunk
    score: float
    rank: int
    sentence_scores: tuple[float, ...] = ()
    dense_rank: int = 0  # rank in the dense (vector) ranking alone; 0 = not among its candidates
    lexical_rank: int = 0  # rank in the BM25 ranking alone; 0 = not among its candidates
    relation_scores: tuple[float, ...] = ()


class Retriever:
    """Hybrid search: dense (FAISS) and lexical (BM25) rankings fused by reciprocal rank."""

    RRF_K = 5  # chosen by cross-validation on the training questions (docs/answer-quality.md)

    def __init__(self, index: Index, embedder: Embedder) -> None:
        index.read_by_row()
        self.index = index
        self.embedder = embedder
        self.max_weight = math.log(1 + 2 * max(1, len(index.chunks)))
        self._filtered: dict[Filter, tuple[int, np.ndarray, np.ndarray]] = {}
        # BM25 runs on another core while the question is embedded and FAISS searches: tantivy, ONNX Runtime
        # and FAISS all release the GIL, and over the whole release BM25 and FAISS take tens of ms each. Then
        # the question without its names is embedded there (`_lexical_search`).
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="cablebot-search")

    def term_weight(self, term: str) -> float:
        """Inverse chunk frequency of a term; terms the corpus never uses weigh most of all."""
        df = self.index.lexical.doc_freq(term)
        return math.log(1 + len(self.index.chunks) / df) if df else self.max_weight

    def respelt(self, text: str) -> str:
        """`text` with its typos respelt as the collection's words (see `Lexical.respelt`); a word the
        encoder's vocabulary holds is English, not a typo."""
        return self.index.lexical.respelt(text, lambda: self.embedder.words)

    def named_document(self, question: str) -> str | None:
        """The indexed cable a question names by reference ID ("When was 09MEXICO3061 written?")."""
        for match in reference_ids(question):
            if match in self.index.documents:
                return match
        return None

    def matching_documents(self, where: Filter) -> int:
        """How many indexed documents the filter allows."""
        return self._allowed(where)[0]

    def _allowed(self, where: Filter) -> tuple[int, np.ndarray, np.ndarray]:
        """How many documents `where` allows, which chunk rows, which document rows: worked out once per
        filter, since a question checks its filter and then searches with it, and a batch or chat reuses one."""
        import numpy as np

        if where not in self._filtered:
            if len(self._filtered) >= 16:
                self._filtered.clear()
            documents = self.index.documents
            ok = where.allowed(documents)
            rows = np.repeat(ok, np.diff(documents.chunk_start))
            self._filtered[where] = (int(ok.sum()), rows, np.flatnonzero(ok))
        return self._filtered[where]

    def _lexical_search(
        self, query: str, question: str, pool: int, k: int, mask: np.ndarray | None, documents: np.ndarray | None
    ) -> tuple[list[tuple[int, float]], np.ndarray | None]:
        """BM25's ranking, then `question` without the names its best `k` passages write, embedded (None
        when nothing is left out of `query`: its own vector serves). The passages that hold the question's
        words say best which of them are names, and this runs on the worker while the main thread embeds
        and searches the query: 1–2 ms a question less than waiting for the fused ranking's passages."""
        lexical = self.index.lexical.top(terms(query), pool, mask, documents)
        if not question:
            return lexical, None
        text = without_names(question, [self.index.chunks[r].text for r, _ in lexical[:k]])
        return lexical, None if text == query else self.embedder.embed_query(text)

    def search(
        self, query: str, k: int, where: Filter | None = None, expand: int = 0, question: str = ""
    ) -> list[Hit]:
        """The `k` best chunks for `query` among the documents `where` allows; scores are cosine similarities.

        With `expand`, up to that many more chunks of the document the top hits
        point at most follow, then the chunks either side of each of the top
        `k`: the answer is often a few paragraphs from the passages that
        matched the question best, or next to one of them.

        With `question` (the question as read; `query` may add an earlier one
        of a conversation), each sentence is also scored against it without
        the names BM25's top `k` passages write (`relation_scores`).
        """
        pool = max(50, 5 * k)
        _, mask, documents = self._allowed(where) if where else (0, None, None)
        if mask is not None and not mask.any():
            return []
        lexical_search = self._worker.submit(self._lexical_search, query, question, pool, k, mask, documents)
        vector = self.embedder.embed_query(query)
        dense = self.index.search(vector, pool, mask)
        lexical, relation = lexical_search.result()
        fused: dict[int, float] = {}
        for ranking in (dense, lexical):
            for rank, (row, _) in enumerate(ranking, 1):
                fused[row] = fused.get(row, 0.0) + 1.0 / (self.RRF_K + rank)
        best = sorted(fused, key=lambda r: -fused[r])[:k]
        chunks = {r: self.index.chunks[r] for r in best}
        rows = list(best)
        if expand and best:  # the document the top passages point at most
            weight: dict[str, float] = {}
            for r in best:
                doc_id = chunks[r].doc_id
                weight[doc_id] = weight.get(doc_id, 0.0) + fused[r]
            taken = set(best)
            same_doc = self.index.rows_of(max(weight, key=weight.__getitem__))
            rows += [r for r in same_doc if r not in taken][:expand]
            taken.update(rows)
            for r in best:  # the passages either side of each of the best, within its document
                beside = self.index.rows_of(chunks[r].doc_id)
                for n in (r - 1, r + 1):
                    if n in beside and n not in taken:
                        taken.add(n)
                        rows.append(n)
        chunks.update((r, self.index.chunks[r]) for r in rows if r not in chunks)
        sims = self.index.sentence_scores(vector, rows)
        dense_rank = {row: rank for rank, (row, _) in enumerate(dense, 1)}
        lexical_rank = {row: rank for rank, (row, _) in enumerate(lexical, 1)}
        related = sims if relation is None else self.index.sentence_scores(relation, rows)
        return [
            Hit(
                chunks[r],
                float(s.max()) if len(s) else 0.0,
                rank,
                tuple(map(float, s)),
                dense_rank.get(r, 0),
                lexical_rank.get(r, 0),
                tuple(map(float, t)),
            )
            for rank, (r, s, t) in enumerate(zip(rows, sims, related, strict=True), 1)
        ]
