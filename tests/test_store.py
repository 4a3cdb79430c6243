"""The stores an index reads by row (chunks, documents), its filters, and BM25 in tantivy (issue 10)."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

import cablebot.index
from cablebot.documents import Document
from cablebot.errors import CablebotError
from cablebot.index import Index, build_index
from cablebot.lexical import WORDS, Lexical, is_word, question_word, terms
from cablebot.retrieval import Filter
from cablebot.store import DamagedFile, DocumentStore, Records, write_documents, write_records


def test_a_record_is_read_alone_and_a_changed_byte_is_caught_when_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    assert write_records(path, ({"n": i, "text": f"record {i}"} for i in range(1000))) == 1000
    records = Records(path, dict)
    assert len(records) == 1000 and records[737] == {"n": 737, "text": "record 737"} and records[-1]["n"] == 999
    data = bytearray(path.read_bytes())
    at = data.index(b"record 500")
    data[at] = ord("R")  # same size: only the record's own checksum can tell
    path.write_bytes(bytes(data))
    records = Records(path, dict)
    assert records[499]["n"] == 499 and records[501]["n"] == 501  # its neighbours are fine
    with pytest.raises(CablebotError, match="record 500 changed since it was written"):
        records[500]


def test_a_damaged_chunk_too_large_to_hash_on_load_is_one_line_when_read(
    tmp_path: Path, fake_embedder, monkeypatch
) -> None:
    docs, index = tmp_path / "docs", tmp_path / "index"
    docs.mkdir()
    (docs / "a.txt").write_text("Apples grow in orchards. Pears grow there too.", encoding="utf-8")
    build_index([docs], fake_embedder, index, 100, 30, warn=lambda m: None)
    monkeypatch.setattr(cablebot.index, "CHECK_AT_LOAD", 0)  # as for files of gigabytes: sizes only on load
    chunks = index / json.loads((index / "manifest.json").read_text(encoding="utf-8"))["files"]["chunks"]
    chunks.write_bytes(chunks.read_bytes().replace(b"Apples", b"Apricot"[:6]))
    loaded = Index.load(index)  # opens: the file has its recorded size
    with pytest.raises(DamagedFile) as caught:
        loaded.chunks[0]
    message = str(caught.value)
    assert "\n" not in message and str(chunks) in message and "checksum mismatch" in message
    assert "cablebot index" in message


def _store(tmp_path: Path) -> DocumentStore:
    cables = [
        ("09MEXICO3061", "Embassy Mexico", "CONFIDENTIAL", "2009-10-23"),
        ("08GUATEMALA1", "Embassy Guatemala", "SECRET//NOFORN", "2008-02-01"),
        ("09STATE100", "Secretary of State", "UNCLASSIFIED", "2009-12-31"),
        ("07MEXICO9", "Consulate Monterrey, Mexico", "SECRET", "2007-05-05"),
    ]
    documents = [
        Document(i, i, metadata={"origin": o, "classification": c, "created": f"{d} 10:00"}, path=f"/x/{i}")
        for i, o, c, d in cables
    ] + [Document("article", "An article")]
    files = [{"size": 1, "mtime_ns": 2} for _ in documents]
    write_documents(tmp_path / "documents.jsonl", documents, files, [3, 0, 2, 1, 4])
    return DocumentStore(tmp_path / "documents.jsonl")


@pytest.mark.parametrize(
    ("where", "allowed"),
    [
        (Filter(origin="mexico"), {"09MEXICO3061", "07MEXICO9"}),
        (Filter(classification="secret"), {"08GUATEMALA1", "07MEXICO9"}),
        (Filter(classification="SECRET//NOFORN"), {"08GUATEMALA1"}),
        (Filter(since="2009"), {"09MEXICO3061", "09STATE100"}),
        (Filter(since="2009-11"), {"09STATE100"}),
        (Filter(until="2008"), {"08GUATEMALA1", "07MEXICO9"}),
        (Filter(until="2009-10-23"), {"09MEXICO3061", "08GUATEMALA1", "07MEXICO9"}),
        (Filter(doc="09mexico3061"), {"09MEXICO3061"}),
        (Filter(doc="article"), {"article"}),
        (Filter(doc="nothing"), set()),
        (Filter(origin="Mexico", since="2008"), {"09MEXICO3061"}),
    ],
)
def test_filters_are_array_operations_on_the_document_table(tmp_path: Path, where: Filter, allowed: set) -> None:
    store = _store(tmp_path)
    ok = where.allowed(store)
    assert {store.records[r].id for r in np.flatnonzero(ok)} == allowed


@pytest.mark.parametrize("value", ["10/2009", "2009-13", "2009-02-30", "Oct 2009", "09", "2009-1"])
def test_a_date_filter_that_is_no_calendar_date_is_an_error(value: str) -> None:
    with pytest.raises(CablebotError, match=rf"^since '{re.escape(value)}' is not a date: use 2009, 2009-10"):
        Filter(since=value)
    with pytest.raises(CablebotError, match=r"^until "):
        Filter(until=value)


def test_the_document_store_finds_ids_and_chunk_rows_without_reading_every_record(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert sorted(store) == ["07MEXICO9", "08GUATEMALA1", "09MEXICO3061", "09STATE100", "article"]
    assert "09STATE100" in store and "09state100" not in store and store.get("nope") is None
    assert store["09STATE100"].metadata["origin"] == "Secretary of State"
    row = store.row("article")
    assert row == 4 and store.chunk_rows(row) == range(6, 10) and store.chunk_rows(1) == range(3, 3)
    files = {d.id: (d.id, d.path, size, mtime, d.sha256) for d, size, mtime in store.files()}
    assert files["07MEXICO9"] == ("07MEXICO9", "/x/07MEXICO9", 1, 2, "")


def _lexical(tmp_path: Path, rows: list[tuple[int, str]]) -> Lexical:
    """A BM25 index of `rows` (document row, text), opened as answering opens one."""
    Lexical.build(tmp_path / "lex", rows)
    return Lexical(tmp_path / "lex")


def test_bm25_in_tantivy_is_the_textbook_formula_and_filters_inside_the_search(tmp_path: Path) -> None:
    rows = [(0, ["border", "guard"]), (0, ["border"] * 3 + ["river"]), (1, ["guard", "river"]), (2, ["coffee"])]
    lexical = _lexical(tmp_path, [(doc, " ".join(words)) for doc, words in rows])
    n, avg = 4, sum(len(t) for _, t in rows) / 4

    def bm25(term: str, words: list[str]) -> float:
        df = sum(term in t for _, t in rows)
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        tf = words.count(term)
        return idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * len(words) / avg))

    expected = sorted(
        (
            (r, bm25("border", t) + bm25("guard", t))
            for r, (_, t) in enumerate(rows)
            if {"border", "guard"} & set(t)
        ),
        key=lambda x: -x[1],
    )
    found = lexical.top(["border", "guard"], 10)
    assert [r for r, _ in found] == [r for r, _ in expected]
    assert np.allclose([s for _, s in found], [s for _, s in expected], rtol=1e-3)
    assert lexical.doc_freq("border") == 2 and lexical.doc_freq("absent") == 0
    # A filter to a few documents runs inside the search; a broad one (a mask) takes more until k pass.
    assert [r for r, _ in lexical.top(["border", "guard"], 10, documents=np.array([1]))] == [2]
    mask = np.array([False, True, True, True])
    assert [r for r, _ in lexical.top(["border", "guard"], 1, mask=mask)] == [r for r, _ in expected if mask[r]][
        :1
    ]
    assert lexical.top(terms("coffee"), 5, documents=np.array([0, 1])) == []
    assert [r for r, _ in lexical.top(terms("coffee"), 5)] == [3]  # the texts are indexed as their terms


def test_a_typo_is_respelt_as_the_nearest_word_the_collection_uses_most(tmp_path: Path) -> None:
    texts = [
        "The president met the presidents of Guatemala and Belize.",
        "The president visited Tapachula; the resident stayed.",
        "Presidium members and the resident doctor met in Tapachula.",
        "A word misspelt once in the documents: Tapachala.",
    ]
    lexical = _lexical(tmp_path, [(0, t) for t in texts])
    listed = dict(line.split() for line in (tmp_path / "lex" / WORDS).read_text().splitlines())
    assert (listed["president"], listed["tapachula"], listed["tapachala"], listed["the"]) == ("2", "2", "1", "6")
    assert lexical.knows("presidential") is False and lexical.knows("presidents") and lexical.knows("the")
    assert lexical.nearest("presiednt") == "president"  # a transposition is one edit
    assert lexical.nearest("tapachila") == "tapachula"  # of two words one edit away, the commoner
    assert lexical.nearest("resdent") == "resident" and lexical.nearest("xyzzy") is None

    def english() -> frozenset[str]:
        return frozenset({"resistant", "visit"})

    typed = "Did the presiednt visits Tapahcula, a resistant docter, or Bleize?"
    # A word the English list holds (or its inflection) stays.
    assert lexical.respelt(typed, english) == "Did the president visits tapachula, a resistant doctor, or belize?"
    assert lexical.respelt("the dentist", english) == "the dentist"  # no collection word is near
    assert lexical.respelt(typed, frozenset) == typed  # without English words a rare word may be right
    # A mistyped first word is the question word it is one edit from, when only one fits.
    assert lexical.respelt("hwo many presiednts?", english) == "how many presidents?"
    assert lexical.respelt("waht did the presidnt say?", english) == "what did the president say?"
    assert lexical.respelt("hwo is the president?", english) == "hwo is the president?"  # how or who
    assert lexical.respelt("the president waht?", english) == "the president waht?"  # only the first word


def test_a_typo_is_read_by_the_other_words_of_the_question(tmp_path: Path) -> None:
    texts = [
        "The track record of the minister is poor.",
        "The track was wet and the track team lost.",
        "Track the money, the minister said.",
        "The truck stop cafe on the highway sells coffee.",
    ]
    lexical = _lexical(tmp_path, [(0, t) for t in texts])

    def english() -> frozenset[str]:
        return frozenset({"what", "is", "the", "called", "who", "did", "say"})

    # Of the words one edit away, the one the question's other words are found with; alone, the commoner.
    assert lexical.respelt("what is the trck stop cafe called?", english) == "what is the truck stop cafe called?"
    assert lexical.respelt("what is the trck record?", english) == "what is the track record?"
    assert lexical.respelt("trck", english) == "track"


def test_a_regular_inflection_follows_english_spelling() -> None:
    vocabulary = frozenset({"process", "refugee", "replace", "hope", "tax", "hero", "car", "quick", "see"})
    for word in ("processes", "refugees", "replaced", "hoping", "hoped", "taxes", "heroes", "cars", "quickly"):
        assert is_word(word, vocabulary), word
    for word in ("processs", "refugeees", "replaceed", "taxs", "cares", "carses"):
        assert not is_word(word, vocabulary), word  # typos, not inflections
    assert is_word("seeing", vocabulary)


@pytest.mark.parametrize(
    ("typed", "rest", "meant"),
    [("woh", " is it?", "who"), ("whta", " is it?", "what"), ("wehn", " did", "when"), ("ohw", " many", "how"),
     ("hwo", " long", "how"), ("wha", " is", "what"), ("whcih", " city", "which"), ("wyh", " not", "why"),
     ("hwo", " is", None), ("wh", " is", None), ("xyz", " is", None)],
)  # fmt: skip
def test_a_mistyped_question_word(typed: str, rest: str, meant: str | None) -> None:
    assert question_word(typed, rest) == meant
