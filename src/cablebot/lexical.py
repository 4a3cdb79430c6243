"""A BM25 index over chunks, stored as plain .npy files beside the FAISS index.

Dense search misses exact names, numbers and reference IDs; BM25 finds them.
Postings are kept term by term (CSC layout) with each posting's BM25 weight
precomputed, so a query is a few vectorised additions.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

K1, B = 1.2, 0.75

# Words that carry no topic; "article", "cable" etc. are how people refer to the documents themselves.
STOPWORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be been before being below
    between both but by can could did do does doing down during each few for from further had has
    have having he her here hers herself him himself his how i if in into is it its itself just me
    more most my myself no nor not now of off on once only or other our ours ourselves out over own
    same she should so some such than that the their theirs them themselves then there these they
    this those through to too under until up very was we were what when where which while who whom
    whose why will with would you your yours yourself according said say says much many article
    cable document report
    """.split()
)


def terms(text: str) -> list[str]:
    """Content words of `text`, lower-cased and crudely stemmed, for lexical matching."""
    return list(_terms(text))


@lru_cache(maxsize=50_000)  # answering looks at the same passages and sentences again and again
def _terms(text: str) -> tuple[str, ...]:
    out = []
    for word in re.findall(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|[\w][\w'’.-]*[\w]|\w", text.lower()):
        word = word.replace("’", "'").removesuffix("'s").replace(",", "")
        if word in STOPWORDS or (len(word) < 2 and not word.isdigit()):
            continue
        out.append(stem(word))
    return tuple(out)


# How text becomes terms, recorded in the manifest: BM25 terms made another way do not match.
TERMS = "2: Snowball English stems; 30,000 is the one term 30000"


@cache
def _stemmer():
    import Stemmer  # PyStemmer: the Snowball stemmers, in C

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """The Snowball (Porter 2) stem: "prosecuted"/"prosecution", "commands"/"commander", "families"/"family"."""
    return _stemmer().stemWord(word)


class DamagedFile(Exception):
    """A file of the lexical index that cannot be read."""

    def __init__(self, path: Path, cause: object) -> None:
        super().__init__(f"{path}: {cause}")
        self.path = path
        self.cause = cause


class Lexical:
    def __init__(
        self, vocab: dict[str, int], indptr: np.ndarray, rows: np.ndarray, weights: np.ndarray, n_rows: int
    ) -> None:
        self.vocab = vocab
        self.indptr = indptr
        self.rows = rows
        self.weights = weights
        self.n_rows = n_rows

    @classmethod
    def build(cls, docs: Sequence[Sequence[str]]) -> Lexical:
        """BM25 over `docs`, each a list of terms."""
        vocab: dict[str, int] = {}
        counts = [Counter(d) for d in docs]
        lengths = np.array([len(d) for d in docs], dtype=np.float32)
        avg = float(lengths.mean()) if len(docs) else 1.0
        postings: list[list[tuple[int, int]]] = []
        for row, c in enumerate(counts):
            for term, tf in c.items():
                tid = vocab.setdefault(term, len(vocab))
                if tid == len(postings):
                    postings.append([])
                postings[tid].append((row, tf))
        indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        rows_out, weights = [], []
        n = len(docs)
        for tid, plist in enumerate(postings):
            idf = math.log(1 + (n - len(plist) + 0.5) / (len(plist) + 0.5))
            for row, tf in plist:
                rows_out.append(row)
                weights.append(idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * lengths[row] / avg)))
            indptr[tid + 1] = len(rows_out)
        return cls(vocab, indptr, np.array(rows_out, dtype=np.int32), np.array(weights, dtype=np.float32), n)

    def save(self, directory: Path, stem: str) -> list[str]:
        """Write the index as `<stem>.vocab.json` and `<stem>.npz`; returns the file names."""
        (directory / f"{stem}.vocab.json").write_text(json.dumps(self.vocab), encoding="utf-8")
        with open(directory / f"{stem}.npz", "wb") as f:
            np.savez(f, indptr=self.indptr, rows=self.rows, weights=self.weights, n_rows=np.int64(self.n_rows))
        return [f"{stem}.vocab.json", f"{stem}.npz"]

    @classmethod
    def load(cls, directory: Path, stem: str) -> Lexical:
        """The index saved as `stem`; a DamagedFile names whichever of its two files cannot be read."""
        vocab_path, arrays_path = directory / f"{stem}.vocab.json", directory / f"{stem}.npz"
        try:
            vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
            if not isinstance(vocab, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as e:
            raise DamagedFile(vocab_path, e) from e
        try:
            with np.load(arrays_path) as z:
                return cls(vocab, z["indptr"], z["rows"], z["weights"], int(z["n_rows"]))
        except Exception as e:  # a truncated or altered .npz fails in many ways (zipfile, numpy, KeyError)
            raise DamagedFile(arrays_path, e) from e

    def doc_freq(self, term: str) -> int:
        tid = self.vocab.get(term)
        return 0 if tid is None else int(self.indptr[tid + 1] - self.indptr[tid])

    def scores(self, query_terms: Sequence[str], mask: np.ndarray | None = None) -> np.ndarray:
        """BM25 score of every row for the query."""
        out = np.zeros(self.n_rows, dtype=np.float32)
        for term in set(query_terms):
            tid = self.vocab.get(term)
            if tid is not None:
                a, b = self.indptr[tid], self.indptr[tid + 1]
                out[self.rows[a:b]] += self.weights[a:b]
        if mask is not None:
            out[~mask] = 0.0
        return out

    def top(self, query_terms: Sequence[str], k: int, mask: np.ndarray | None = None) -> list[tuple[int, float]]:
        s = self.scores(query_terms, mask)
        k = min(k, int((s > 0).sum()))
        if k == 0:
            return []
        idx = np.argpartition(-s, k - 1)[:k]
        idx = idx[np.argsort(-s[idx], kind="stable")]
        return [(int(i), float(s[i])) for i in idx]
