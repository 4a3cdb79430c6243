"""Retrieval: the chunks nearest a question, as ranked hits."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cablebot.cables import REFERENCE_ID
from cablebot.chunking import Chunk
from cablebot.documents import Document
from cablebot.lexical import terms

if TYPE_CHECKING:
    import numpy as np

    from cablebot.embedding import Embedder
    from cablebot.index import Index


@dataclass(frozen=True)
class Filter:
    """Which documents a question may be answered from; unset fields do not filter."""

    origin: str | None = None  # part of the origin, any case: "Mexico" matches "Embassy Mexico"
    since: str | None = None  # ISO date, inclusive: "2009", "2009-10", "2009-10-23"
    until: str | None = None  # ISO date, inclusive
    classification: str | None = None  # "SECRET" matches "SECRET" and "SECRET//NOFORN"
    doc: str | None = None  # a document id (a cable's reference ID)

    def __bool__(self) -> bool:
        return any((self.origin, self.since, self.until, self.classification, self.doc))

    def __str__(self) -> str:
        """As the options that set it: `--origin Narnia --since 2009`."""
        fields = (("origin", self.origin), ("since", self.since), ("until", self.until))
        fields += (("classification", self.classification), ("doc", self.doc))
        return " ".join(f"--{name} {value}" for name, value in fields if value)

    def matches(self, doc: Document) -> bool:
        meta = doc.metadata
        if self.doc and doc.id.casefold() != self.doc.casefold():
            return False
        if self.origin and self.origin.casefold() not in meta.get("origin", "").casefold():
            return False
        if self.classification:
            level = meta.get("classification", "").upper()
            if self.classification.upper() not in (level, level.split("//")[0]):
                return False
        date = doc.date
        if self.since and (not date or date < self.since):
            return False
        return not (self.until and (not date or date[: len(self.until)] > self.until))


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk, its rank (1 = best) and its similarity to the question.

    `score` is the cosine similarity of the chunk's closest sentence;
    `sentence_scores` that of each of its sentences, in reading order.
    """

    chunk: Chunk
    score: float
    rank: int
    sentence_scores: tuple[float, ...] = ()
    dense_rank: int = 0  # rank in the dense (vector) ranking alone; 0 = not among its candidates
    lexical_rank: int = 0  # rank in the BM25 ranking alone; 0 = not among its candidates


class Retriever:
    """Hybrid search: dense (FAISS) and lexical (BM25) rankings fused by reciprocal rank."""

    RRF_K = 60  # the usual constant: ranks beyond a few dozen hardly count

    def __init__(self, index: Index, embedder: Embedder) -> None:
        self.index = index
        self.embedder = embedder
        self.max_weight = math.log(1 + 2 * max(1, len(index.chunks)))
        self._filtered: dict[Filter, tuple[int, np.ndarray]] = {}

    def term_weight(self, term: str) -> float:
        """Inverse chunk frequency of a term; terms the corpus never uses weigh most of all."""
        df = self.index.lexical.doc_freq(term)
        return math.log(1 + len(self.index.chunks) / df) if df else self.max_weight

    def named_document(self, question: str) -> str | None:
        """The indexed cable a question names by reference ID ("When was 09MEXICO3061 written?")."""
        for match in REFERENCE_ID.findall(question.upper()):
            if match in self.index.documents:
                return match
        return None

    def matching_documents(self, where: Filter) -> int:
        """How many indexed documents the filter allows."""
        return self._allowed(where)[0]

    def _allowed(self, where: Filter) -> tuple[int, np.ndarray]:
        """How many documents `where` allows, and which chunk rows: worked out once per filter, since a
        question checks its filter and then searches with it, and a batch or chat reuses one filter."""
        import numpy as np

        if where not in self._filtered:
            if len(self._filtered) >= 16:
                self._filtered.clear()
            ok = {doc_id for doc_id, doc in self.index.documents.items() if where.matches(doc)}
            rows = np.fromiter(
                (c.doc_id in ok for c in self.index.chunks), dtype=bool, count=len(self.index.chunks)
            )
            self._filtered[where] = (len(ok), rows)
        return self._filtered[where]

    def search(self, query: str, k: int, where: Filter | None = None, expand: int = 0) -> list[Hit]:
        """The `k` best chunks for `query` among the documents `where` allows; scores are cosine similarities.

        With `expand`, up to that many more chunks of the document the top hits
        point at most follow: the answer is often a few paragraphs from the
        passages that matched the question best.
        """
        vector = self.embedder.embed_query(query)
        pool = max(50, 5 * k)
        mask = self._allowed(where)[1] if where else None
        if mask is not None and not mask.any():
            return []
        dense = self.index.search(vector, pool, mask)
        lexical = self.index.lexical.top(terms(query), pool, mask)
        fused: dict[int, float] = {}
        for ranking in (dense, lexical):
            for rank, (row, _) in enumerate(ranking, 1):
                fused[row] = fused.get(row, 0.0) + 1.0 / (self.RRF_K + rank)
        rows = sorted(fused, key=lambda r: -fused[r])[:k]
        if expand and rows:  # the document the top passages point at most
            weight: dict[str, float] = {}
            for r in rows:
                doc_id = self.index.chunks[r].doc_id
                weight[doc_id] = weight.get(doc_id, 0.0) + fused[r]
            taken = set(rows)
            same_doc = self.index.rows_of_document[max(weight, key=weight.__getitem__)]
            rows += [r for r in same_doc if r not in taken][:expand]
        sims = self.index.sentence_scores(vector, rows)
        dense_rank = {row: rank for rank, (row, _) in enumerate(dense, 1)}
        lexical_rank = {row: rank for rank, (row, _) in enumerate(lexical, 1)}
        return [
            Hit(
                self.index.chunks[r],
                float(s.max()) if len(s) else 0.0,
                rank,
                tuple(map(float, s)),
                dense_rank.get(r, 0),
                lexical_rank.get(r, 0),
            )
            for rank, (r, s) in enumerate(zip(rows, sims, strict=True), 1)
        ]
