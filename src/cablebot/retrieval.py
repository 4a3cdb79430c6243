"""Retrieval: the chunks nearest a question, as ranked hits."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cablebot.chunking import Chunk
from cablebot.lexical import terms

if TYPE_CHECKING:
    from cablebot.embedding import Embedder
    from cablebot.index import Index


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk, its rank (1 = best) and its similarity to the question."""

    chunk: Chunk
    score: float
    rank: int


class Retriever:
    """Hybrid search: dense (FAISS) and lexical (BM25) rankings fused by reciprocal rank."""

    RRF_K = 60  # the usual constant: ranks beyond a few dozen hardly count

    def __init__(self, index: Index, embedder: Embedder) -> None:
        self.index = index
        self.embedder = embedder
        self._max_weight = math.log(1 + 2 * max(1, len(index.chunks)))

    def term_weight(self, term: str) -> float:
        """Inverse chunk frequency of a term; terms the corpus never uses weigh most of all."""
        df = self.index.lexical.doc_freq(term)
        return math.log(1 + len(self.index.chunks) / df) if df else self._max_weight

    def search(self, query: str, k: int) -> list[Hit]:
        """The `k` best chunks for `query`; each hit's score is its cosine similarity."""
        import numpy as np

        vector = self.embedder.embed_query(query)
        pool = max(50, 5 * k)
        dense = self.index.search(vector, pool)
        lexical = self.index.lexical.top(terms(query), pool)
        fused: dict[int, float] = {}
        for ranking in (dense, lexical):
            for rank, (row, _) in enumerate(ranking, 1):
                fused[row] = fused.get(row, 0.0) + 1.0 / (self.RRF_K + rank)
        rows = sorted(fused, key=lambda r: -fused[r])[:k]
        cosine = dict(dense)
        missing = [r for r in rows if r not in cosine]
        if missing:
            sims = self.index.vectors_of(missing) @ np.asarray(vector, dtype=np.float32)
            cosine.update(zip(missing, map(float, sims), strict=True))
        return [Hit(self.index.chunks[r], cosine[r], rank) for rank, r in enumerate(rows, 1)]
