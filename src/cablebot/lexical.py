"""Lexical matching: terms (Snowball stems), BM25 over the chunks (tantivy), and the collection's words, as
which a question's typos are respelt (rapidfuzz edit distances).

Dense search misses exact names, numbers and reference IDs; BM25 finds them.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from functools import cache, cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from cablebot.store import DamagedFile

if TYPE_CHECKING:
    import numpy as np

# Words that carry no topic; "article", "cable" etc. are how people refer to the documents themselves.
STOPWORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be been before being below
    between both but by can could did do does doing down during each few for from further had has
    have having he her here hers herself him himself his how i if in into is it its itself just me
    more most my myself no nor not now of off on once only or other our ours ourselves out over own
    same she should so some such than that the their theirs them themselves then there these they
    this those through to too under until up very was we were what when where which while who whom
    whose why will with would you your yours yourself according said say says much many
    article articles cable cables document documents report reports
    """.split()
)


_OTHER_PERSON = ("vice-", "ex-")


def terms(text: str) -> list[str]:
    """Content words of `text`, lower-cased and crudely stemmed, for lexical matching."""
    return list(_terms(text))


@lru_cache(maxsize=50_000)  # answering looks at the same passages and sentences again and again
def _terms(text: str) -> tuple[str, ...]:
    out = []
    text = folded(text)
    if "united" in text or "union" in text:  # a substring test first: ten times faster than the pattern
        text = _UNIONS.sub(lambda m: _UNION_ACRONYMS[m[1]], text)
    for token in re.findall(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|[\w][\w'’.-]*[\w]|\w", text):
        token = token.replace("’", "'").removesuffix("'s").replace(",", "")
        if _DOTTED.fullmatch(token):  # "U.S." is "US" is "us" as people type it; "U.N.", "U.K." alike
            token = token.replace(".", "")
        # A hyphenated word is also its parts ("US-Mexico border" is about Mexico, "350-400" holds 400),
        # but a vice-president or an ex-minister is not the president or the minister.
        split = "-" in token and not token.startswith(_OTHER_PERSON)
        for word in (token, *token.split("-")) if split else (token,):
            if word in STOPWORDS or (len(word) < 2 and not word.isdigit()):
                continue
            out.append(stem(american(word)))
    return tuple(out)


# The unions people name by their initials: "the US" is the United States in the cables' words.
_UNION_ACRONYMS = {"united states": "us", "united kingdom": "uk", "united nations": "un", "european union": "eu"}
_UNIONS = re.compile(r"\b(" + "|".join(_UNION_ACRONYMS) + r")\b")
_DOTTED = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]")  # an acronym written with full stops


# Latin letters that Unicode does not decompose into a base letter and an accent.
_LETTERS = str.maketrans({"ø": "o", "ł": "l", "ß": "ss", "æ": "ae", "œ": "oe", "đ": "d", "ð": "d", "þ": "th"})


def folded(text: str) -> str:
    """`text` lower-cased and unaccented: people type "peten" and "sao paulo" for Petén and São Paulo."""
    text = text.lower()
    return text if text.isascii() else unaccented(text.translate(_LETTERS))


def unaccented(text: str) -> str:
    """`text` without the accents Unicode decomposes letters into ("Petén" is "Peten")."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


# How text becomes terms, recorded in the manifest: BM25 terms made another way do not match.
TERMS = (
    "10: Snowball English stems of American spellings; 30,000 is the one term 30000; U.S. and the United States"
    " the term us (UK, UN, EU alike); a hyphenated word also its parts (not vice-, ex-); accents folded; the"
    " documents' own names (cables, articles, ...) no terms; tantivy BM25; the words of the collection, for"
    " respelling typos"
)
WORDS = "words.txt"  # in the lexical directory: each word the collection uses, and how often
_WORD = re.compile(r"[^\W\d_]+")
# Regular inflections, each with what the word before it may not end in, by English spelling: "-s" follows
# no sibilant ("cars", not "processs": that is "processes"), "-es" only a sibilant or an "o" ("taxes",
# "heroes"), "-ed" and "-ing" no silent "e" ("hoped", "hoping": not "replaceed"), "-d" only one.
_SIBILANT = ("s", "x", "z", "ch", "sh")
_INFLECTIONS = (
    ("s", lambda base: not base.endswith(_SIBILANT)),
    ("es", lambda base: base.endswith((*_SIBILANT, "o"))),
    ("ed", lambda base: not base.endswith("e")),
    ("d", lambda base: base.endswith("e")),
    ("ing", lambda base: not base.endswith("e") or base.endswith(("ee", "ye", "oe"))),
    ("ly", lambda base: True),
)
# How many chunks' worth of the collection's average a word's own chunks are smoothed towards when judging how
# likely another term is beside it (Dirichlet smoothing): rare words are not made to fit by chance.
SMOOTHING = 10.0
SHORTEST_RESPELT = 4  # shorter words are too often another word one letter away ("form", "from")


def words(text: str) -> list[str]:
    """The words of `text` (letters only), folded, as the collection's word list holds them."""
    return _WORD.findall(folded(text))


def is_word(word: str, vocabulary: frozenset[str]) -> bool:
    """Is `word` in `vocabulary`, or a regular inflection of a word in it ("overdoses", "rumoring", "hoping";
    not "processs" or "refugeees")?"""
    if word in vocabulary:
        return True
    for ending, follows in _INFLECTIONS:
        base = word[: -len(ending)]
        if not (base and word.endswith(ending)):
            continue
        if (base in vocabulary and follows(base)) or (ending == "ing" and base + "e" in vocabulary):
            return True  # "hoping": the silent "e" of "hope" drops before "-ing"
    return False


# British spellings, as American ones: the cables spell American, quoted British officials and readers do not,
# and Snowball stems "defence" and "defense", "organisation" and "organization" apart. Only the regular
# correspondences, on both sides (collection and question), so that a word caught by mistake ("promise") is
# caught alike everywhere.
_BRITISH = (
    (re.compile(r"(?<=\w\w)(i|y)s(e|es|ed|ing|er|ers|ation|ations)$"), r"\1z\2"),  # organise, analyse
    (re.compile(r"(?<=\w\w\w)our(s|ed|ing|er|ers|ite|ites|able|ful)?$"), r"or\1"),  # labour, favourite
    (re.compile(r"(?<=\w\w)(t|b)re(s|d)?$"), r"\1er\2"),  # centre, fibre
    (re.compile(r"^(def|off|pret|lic)ence(s?)$"), r"\1ense\2"),  # defence
    (re.compile(r"(?<=\w\w)ogue(s?)$"), r"og\1"),  # dialogue
    (re.compile(r"^programme(s?)$"), r"program\1"),
)


QUESTION_WORDS = ("what", "which", "who", "whom", "whose", "where", "when", "why", "how")
# The words "how" asks with for a quantity or a time ("how many", "how soon").
HOW_WORDS = ("many", "much", "long", "far", "big", "large", "fine", "old", "high", "often", "fast", "soon")


def question_word(typed: str, rest: str) -> str | None:
    """The question word a mistyped first word stands for: the one within an edit of it ("waht", "wehn"); of
    several, "how" before "many", "much", ... ("hwo many"), else the one it begins ("wha": what, not who or
    why); None while several remain ("hwo is": how or who)."""
    from rapidfuzz.distance import OSA

    near = [w for w in QUESTION_WORDS if OSA.distance(typed, w) <= 1]
    if len(near) > 1:
        following = _WORD.search(rest.lower())
        if "how" in near and following and following.group() in HOW_WORDS:
            return "how"
        near = [w for w in near if w.startswith(typed)] or near
    return near[0] if len(near) == 1 else None


@lru_cache(maxsize=200_000)
def american(word: str) -> str:
    """`word` (lower case) in American spelling: "defence" -> "defense", "organisation" -> "organization"."""
    for pattern, replacement in _BRITISH:
        word = pattern.sub(replacement, word)
    return word


@cache
def _stemmer():
    import Stemmer  # PyStemmer: the Snowball stemmers, in C

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """The Snowball (Porter 2) stem: "prosecuted"/"prosecution", "commands"/"commander", "families"/"family"."""
    return _stemmer().stemWord(word)


class Lexical:
    """BM25 over the chunks' terms: a tantivy index in a directory, memory-mapped, opened in a millisecond.

    Terms are made by `terms()` and given to tantivy already split, so the
    index, the question and the reader's features share one stemmer and one
    stop list. tantivy's BM25 is the usual one (k1 = 1.2, b = 0.75).
    """

    FEW_DOCUMENTS = 1024  # a filter allowing at most this many documents is applied inside the search

    def __init__(self, path: Path) -> None:
        import tantivy

        self.path = path
        try:
            index = tantivy.Index.open(str(path))
            self._schema = index.schema
            self._searcher = index.searcher()
        except Exception as e:  # tantivy reports a missing or damaged file as ValueError or OSError
            raise DamagedFile(path, str(e).splitlines()[0] if str(e) else e) from e
        self.n_rows = self._searcher.num_docs
        self._nearest: dict[tuple[str, tuple[str, ...]], str | None] = {}  # a question is read more than once

    @staticmethod
    def build(path: Path, rows: Iterable[tuple[int, str]]) -> None:
        """Index `rows`, each (document row, the chunk's text), chunk rows numbered from 0 in order; and list
        the collection's words."""
        import tantivy

        schema = tantivy.SchemaBuilder()
        schema.add_text_field("terms", tokenizer_name="whitespace", index_option="freq")
        schema.add_integer_field("chunk", fast=True)
        schema.add_integer_field("doc", indexed=True)
        path.mkdir()
        index = tantivy.Index(schema.build(), str(path))
        writer = index.writer(256_000_000, 1)  # one thread: chunk rows stay in order, memory stays bounded
        counts: Counter[str] = Counter()
        for row, (doc, text) in enumerate(rows):
            writer.add_document(tantivy.Document(terms=" ".join(terms(text)), chunk=row, doc=doc))
            counts.update(words(text))
        writer.commit()
        writer.wait_merging_threads()
        listed = sorted((len(w), w, n) for w, n in counts.items())
        (path / WORDS).write_text("".join(f"{w} {n}\n" for _, w, n in listed), encoding="utf-8")

    def doc_freq(self, term: str) -> int:
        return self._searcher.doc_freq("terms", term)

    def knows(self, word: str) -> bool:
        """Does the collection hold `word`, in any of its forms (the same stem)? A stop word always counts."""
        return all(self.doc_freq(t) for t in terms(word))

    @cached_property
    def _by_length(self) -> dict[int, tuple[list[str], list[int]]]:
        """The collection's words and their counts, by length: read on the first typo, not on every load."""
        out: dict[int, tuple[list[str], list[int]]] = {}
        file = self.path / WORDS
        for line in file.read_text(encoding="utf-8").splitlines() if file.is_file() else ():
            word, count = line.split(" ")
            listed, counts = out.setdefault(len(word), ([], []))
            listed.append(word)
            counts.append(int(count))
        return out

    def nearest(self, word: str, context: Sequence[str] = ()) -> str | None:
        """The collection's word closest to `word` (one edit away, or two for a word of 8 letters or more; a
        transposition is one edit); of equally close ones, the likeliest among the `context` terms, the question's
        other words ("trck stop cafe" is a truck stop, not a track: `_fit`), or without them the most frequent
        ("maor" is "major" rather than "mayor"); None if there is none."""
        from rapidfuzz import process
        from rapidfuzz.distance import OSA

        most = 1 if len(word) < 8 else 2
        found: list[tuple[int, int, str]] = []
        for length in range(len(word) - most, len(word) + most + 1):
            listed, counts = self._by_length.get(length, ([], []))
            found += [
                (distance, -counts[i], near)
                for near, distance, i in process.extract(
                    word, listed, scorer=OSA.distance, score_cutoff=most, limit=None
                )
                if near != word
            ]
        if not found:
            return None
        closest = min(found)[0]
        tied = sorted(f for f in found if f[0] == closest)
        if len(tied) > 1 and context:
            # P(term) over all chunks: how far a word with no chunks of its own is pulled, the same for each word.
            background = {t: self.doc_freq(t) / max(1, self.n_rows) for t in set(context)}
            return max(tied, key=lambda f: self._fit(terms(f[2]), background))[2]
        return tied[0][2]

    def _fit(self, word_terms: Sequence[str], background: dict[str, float]) -> float:
        """How likely the word is among the context terms (`background`: each one's share of all chunks), by
        the chunks that hold it (naive Bayes): log P(word) + the sum of log P(term | word). A stop word is never
        a typo's likelier reading."""
        import tantivy

        def query(*ts: str) -> tantivy.Query:
            return tantivy.Query.boolean_query(
                [(tantivy.Occur.Must, tantivy.Query.term_query(self._schema, "terms", t)) for t in ts]
            )

        if not word_terms:
            return -math.inf
        holding = self._searcher.search(query(*word_terms), 1, count=True).count
        fit = math.log(holding + 1)
        for t, share in background.items():
            together = self._searcher.search(query(*word_terms, t), 1, count=True).count
            fit += math.log((together + SMOOTHING * share) / (holding + SMOOTHING))
        return fit

    def respelt(self, text: str, english: Callable[[], frozenset[str]]) -> str:
        """`text` with each word that neither the collection nor the English words know (a typo: "presiednt",
        "kouchnar") replaced by the collection's nearest word, and a mistyped first word by the question word
        it stands for ("hwo many", "waht"). `english()` is asked only when the collection lacks a word; when
        it has no words, nothing is respelt: a word the collection lacks may be right."""
        first = _WORD.search(text)

        @cache
        def known() -> tuple[str, ...]:
            """The words of `text` the collection holds: the context a typo is respelt in."""
            return tuple(w for w in words(text) if len(w) >= SHORTEST_RESPELT and self.knows(w))

        def respell(m: re.Match[str]) -> str:
            typed = m.group()
            word = "".join(words(typed))
            opening = first is not None and m.start() == first.start()
            if len(word) < (2 if opening else SHORTEST_RESPELT) or self.knows(word):
                return typed
            vocabulary = english()
            if not vocabulary or is_word(word, vocabulary):
                return typed
            if opening and (asked := question_word(word, text[m.end() :])):
                return asked
            if len(word) < SHORTEST_RESPELT:
                return typed
            context = tuple(t for other in known() if other != word for t in terms(other))
            if (word, context) not in self._nearest:
                if len(self._nearest) >= 10_000:
                    self._nearest.clear()
                self._nearest[word, context] = self.nearest(word, context)
            return self._nearest[word, context] or typed

        return _WORD.sub(respell, text)

    def top(
        self,
        query_terms: Sequence[str],
        k: int,
        mask: np.ndarray | None = None,
        documents: np.ndarray | None = None,
    ) -> list[tuple[int, float]]:
        """(chunk row, BM25 score) of the `k` best chunks, among the rows `mask` allows (`documents`: the
        document rows it allows, so that a filter down to a few documents is applied inside the search)."""
        import tantivy

        unique = sorted(set(query_terms))
        if not unique or k <= 0 or self.n_rows == 0:
            return []
        query = tantivy.Query.boolean_query(
            [(tantivy.Occur.Should, tantivy.Query.term_query(self._schema, "terms", t)) for t in unique]
        )
        if documents is not None and len(documents) <= self.FEW_DOCUMENTS:
            allowed = tantivy.Query.term_set_query(self._schema, "doc", [int(d) for d in documents])
            allowed = tantivy.Query.boost_query(allowed, 0.0)  # filters; adds nothing to the score
            query = tantivy.Query.boolean_query([(tantivy.Occur.Must, query), (tantivy.Occur.Must, allowed)])
            mask = None
        want = k if mask is None else 4 * k
        while True:  # a broad filter: take more of the best until k pass it
            hits = self._searcher.search(query, min(want, self.n_rows), count=False).hits
            rows = self._searcher.fast_field_values("chunk", [address for _, address in hits])
            out = [(r, s) for (s, _), r in zip(hits, rows, strict=True) if mask is None or mask[r]]
            if len(out) >= k or len(hits) < want:
                return out[:k]
            want *= 4
