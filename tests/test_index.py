"""The index directory: incremental builds, atomic replacement, and clear errors."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from cablebot.errors import CablebotError
from cablebot.index import Index, IndexMissing, build_index


def _corpus(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in {
        "a": "Apples grow in orchards.",
        "b": "Bananas grow in the tropics.",
        "c": "Cherries are small and red.",
    }.items():
        (docs / f"{name}.txt").write_text(text, encoding="utf-8")
    return docs


def _build(docs: Path, index: Path, embedder) -> object:
    return build_index([docs], embedder, index, 100, 30)


def test_rebuild_embeds_only_changed_documents(tmp_path: Path, fake_embedder) -> None:
    docs, index = _corpus(tmp_path), tmp_path / "index"
    first = _build(docs, index, fake_embedder)
    assert (first.documents, first.embedded) == (3, 3)
    (docs / "b.txt").write_text("Bananas are yellow.", encoding="utf-8")
    (docs / "c.txt").unlink()
    (docs / "d.txt").write_text("Dates are sweet.", encoding="utf-8")
    fake_embedder.embedded.clear()
    second = _build(docs, index, fake_embedder)
    assert sorted(fake_embedder.embedded) == ["Bananas are yellow.", "Dates are sweet."]
    assert (second.documents, second.embedded, second.removed) == (3, 2, 1)
    loaded = Index.load(index)
    assert sorted(loaded.documents) == ["a", "b", "d"]
    assert sorted(c.text for c in loaded.chunks) == [
        "Apples grow in orchards.",
        "Bananas are yellow.",
        "Dates are sweet.",
    ]
    # The generation just replaced stays for readers that opened it a moment ago; older ones go.
    assert sorted(p.name for p in index.glob("chunks.*.jsonl")) == ["chunks.1.jsonl", "chunks.2.jsonl"]
    (docs / "a.txt").write_text("Apricots are orange.", encoding="utf-8")
    _build(docs, index, fake_embedder)
    assert sorted(p.name for p in index.glob("chunks.*.jsonl")) == ["chunks.2.jsonl", "chunks.3.jsonl"]


def test_an_open_index_still_searches_after_its_files_are_replaced(tmp_path: Path, fake_embedder) -> None:
    """Vectors are memory-mapped: a process that opened an index keeps answering from it while two
    rebuilds replace its generation and delete its files."""
    docs, index = _corpus(tmp_path), tmp_path / "index"
    _build(docs, index, fake_embedder)
    opened = Index.load(index)
    query = fake_embedder.embed_query("Cherries are small and red.")
    before = opened.search(query, 3)
    for text in ("Apricots are orange.", "Avocados are green."):
        (docs / "a.txt").write_text(text, encoding="utf-8")
        _build(docs, index, fake_embedder)
    assert not list(index.glob("vectors.1.*"))  # the generation it opened is gone from the directory
    assert opened.search(query, 3) == before
    assert opened.chunks[before[0][0]].text == "Cherries are small and red."
    assert opened.vectors.reconstruct(np.arange(3)).shape == (3, fake_embedder.dim)


def test_new_term_rules_index_the_words_again_and_keep_the_vectors(tmp_path: Path, fake_embedder) -> None:
    from cablebot.lexical import TERMS

    docs, index = _corpus(tmp_path), tmp_path / "index"
    (docs / "e.txt").write_text("Talks on the US-Mexico border resumed.", encoding="utf-8")
    _build(docs, index, fake_embedder)
    manifest = json.loads((index / "manifest.json").read_text(encoding="utf-8"))
    manifest["chunker"]["terms"] = "the term rules of an older cablebot"
    (index / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    fake_embedder.embedded.clear()
    again = _build(docs, index, fake_embedder)
    assert (again.documents, again.embedded, fake_embedder.embedded) == (4, 0, [])
    loaded = Index.load(index)
    assert loaded.manifest["chunker"]["terms"] == TERMS
    assert [loaded.chunks[row].doc_id for row, _ in loaded.lexical.top(["mexico"], 5)] == ["e"]


def test_a_new_parser_parses_again_and_embeds_only_the_sentences_it_changed(
    tmp_path: Path, fake_embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cablebot import cables
    from cablebot import index as index_module

    docs, index = _corpus(tmp_path), tmp_path / "index"
    (docs / "cable.txt").write_text(
        "Reference ID: 10OSLO1\n\nSUBJECT: JETS\n\n1. (C) Norway buys the F-35.\n\n2.(C) The decision is final.\n",
        encoding="utf-8",
    )
    with monkeypatch.context() as old_parser:  # one that did not know "2.(C)" starts a paragraph
        old_parser.setattr(cables, "_NUMBERED", re.compile(r"^¶?\s*(\d{1,3})\.\s+(.*)$"))
        old_parser.setattr(index_module, "PARSER_VERSION", 0)
        _build(docs, index, fake_embedder)
    assert _locations(index, "10OSLO1") == ["subject", "¶1"]
    fake_embedder.embedded.clear()
    again = _build(docs, index, fake_embedder)
    assert (again.documents, fake_embedder.embedded) == (4, ["(C) The decision is final."])
    assert _locations(index, "10OSLO1") == ["subject", "¶1", "¶2"]


def test_new_chunk_settings_embed_only_sentences_not_seen_before(tmp_path: Path, fake_embedder) -> None:
    docs, index = _corpus(tmp_path), tmp_path / "index"
    long = "Plums, " + "pears, " * 12 + "and figs are sold in the market."
    (docs / "a.txt").write_text(f"Apples grow in orchards. {long}", encoding="utf-8")
    _build(docs, index, fake_embedder)
    fake_embedder.embedded.clear()
    again = build_index([docs], fake_embedder, index, 10, 0)  # the long sentence no longer fits one chunk
    pieces = [c.text for c in Index.load(index).chunks if c.doc_id == "a"]
    assert pieces[0] == "Apples grow in orchards."
    assert "".join(pieces[1:]).replace(" ", "") == long.replace(" ", "")  # the long sentence, in pieces
    new = sorted(set(pieces[1:]))  # each distinct piece is new; nothing else is
    assert (sorted(fake_embedder.embedded), again.embedded) == (new, len(new))
    assert Index.load(index).manifest["chunker"]["tokens"] == 10


def _vectors_by_sentence(index: Path) -> dict[str, bytes]:
    loaded = Index.load(index)
    ids = loaded.sentence_ids()
    return {text: loaded.vectors.reconstruct(np.array([i]))[0].tobytes() for text, i in ids.items()}


def test_sentences_are_embedded_and_reused_a_block_at_a_time_with_the_vectors_of_one_pass(
    tmp_path: Path, fake_embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build holds every vector once, in fp16, and embeds or reads them a block at a time: the index is
    the one a single pass of fp32 vectors makes, bit for bit."""
    docs = _corpus(tmp_path)
    (docs / "a.txt").write_text(" ".join(f"Orchard {i} grows {'apples ' * (i % 7)}." for i in range(60)))
    _build(docs, tmp_path / "whole", fake_embedder)
    monkeypatch.setattr("cablebot.index.EMBED_BLOCK", 8)
    monkeypatch.setattr("cablebot.index.READ_BLOCK", 5)
    build_index([docs], fake_embedder, tmp_path / "blocks", 100, 30, batch_size=3)
    assert fake_embedder.calls[0] > 8 and set(fake_embedder.calls[1:-1]) == {6}  # whole batches of 3
    whole = _vectors_by_sentence(tmp_path / "whole")
    assert _vectors_by_sentence(tmp_path / "blocks") == whole
    fake_embedder.embedded.clear()
    build_index([docs], fake_embedder, tmp_path / "blocks", 40, 0)  # new chunks: every vector read back
    assert fake_embedder.embedded == [] and _vectors_by_sentence(tmp_path / "blocks") == whole


def test_fp16_vectors_make_the_same_index_as_fp32_ones() -> None:
    import faiss

    from cablebot.vectors import FaissVectors, half

    def codes(matrix: np.ndarray) -> np.ndarray:
        index = FaissVectors.of(matrix).index  # held while its codes are copied out
        return faiss.vector_to_array(index.codes)

    x = np.random.default_rng(2).standard_normal((50_000, 32), dtype=np.float32)
    fp32, rounded, numpy = (codes(m) for m in (x, half(x), x.astype(np.float16)))
    assert np.array_equal(fp32, rounded)
    assert not np.array_equal(fp32, numpy)  # NumPy rounds some values the other way than FAISS


def _locations(index: Path, doc_id: str) -> list[str]:
    loaded = Index.load(index)
    return [loaded.chunks[row].location for row in loaded.rows_of(doc_id)]


def test_interrupted_build_keeps_previous_index(tmp_path: Path, fake_embedder) -> None:
    docs, index = _corpus(tmp_path), tmp_path / "index"
    _build(docs, index, fake_embedder)
    before = (index / "manifest.json").read_text()
    (docs / "a.txt").write_text("Apricots.", encoding="utf-8")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    fake_embedder.embed_documents = interrupted
    with pytest.raises(KeyboardInterrupt):
        _build(docs, index, fake_embedder)
    assert (index / "manifest.json").read_text() == before
    assert "Apples grow in orchards." in [c.text for c in Index.load(index).chunks]


def test_missing_and_corrupt_indexes_are_explained(tmp_path: Path, fake_embedder) -> None:
    with pytest.raises(IndexMissing, match="cablebot index"):
        Index.load(tmp_path / "nothing")
    docs, index = _corpus(tmp_path), tmp_path / "index"
    _build(docs, index, fake_embedder)
    manifest = json.loads((index / "manifest.json").read_text())
    faiss_file = index / manifest["files"]["vectors"]
    faiss_file.write_bytes(faiss_file.read_bytes()[:40])
    with pytest.raises(CablebotError, match=rf"{re.escape(faiss_file.name)}.*rebuild it with: cablebot index"):
        Index.load(index)
    (index / "manifest.json").write_text("{not json")
    with pytest.raises(CablebotError, match=r"manifest\.json is unreadable"):
        Index.load(index)


def test_other_model_or_format_is_detected(tmp_path: Path, fake_embedder) -> None:
    docs, index = _corpus(tmp_path), tmp_path / "index"
    _build(docs, index, fake_embedder)
    loaded = Index.load(index)
    assert loaded.model_mismatch("fake-hash", 64) == ""
    assert "encoder fake-hash (64 dimensions) but the configured one is all-MiniLM-L6-v2@int8 (384)" in (
        loaded.model_mismatch("all-MiniLM-L6-v2@int8", 384)
    )
    manifest = json.loads((index / "manifest.json").read_text())
    (index / "manifest.json").write_text(json.dumps(manifest | {"format": 99}))
    with pytest.raises(CablebotError, match="format 99"):
        Index.load(index)


def test_changed_files_are_reported_stale(tmp_path: Path, fake_embedder) -> None:
    docs, index = _corpus(tmp_path), tmp_path / "index"
    _build(docs, index, fake_embedder)
    assert Index.load(index).stale_documents() == []
    (docs / "a.txt").write_text("Changed.", encoding="utf-8")
    assert Index.load(index).stale_documents() == [str(docs / "a.txt")]


def test_a_small_filtered_set_is_found_whole_in_an_approximate_index_of_300k_vectors() -> None:
    import numpy as np

    from cablebot.chunking import Chunk
    from cablebot.index import Index
    from cablebot.vectors import FaissVectors

    n, per_doc, dim = 300_000, 30, 32
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((n, dim), dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    vectors = FaissVectors.of(matrix, approximate_above=1_000)
    assert vectors.kind.startswith("IVF")
    chunks = [Chunk(f"d{i // per_doc}", 1, 0, 1, "x", "¶1") for i in range(n)]
    one_each = np.arange(n + 1, dtype=np.int64)
    sentences = {"sentences": one_each[:-1], "offsets": one_each, "order": one_each[:-1], "start": one_each}
    index = Index(Path("."), {}, None, chunks, vectors, None, sentences)
    hits = 0
    for _ in range(50):
        doc = int(rng.integers(0, n // per_doc))
        mask = np.zeros(n, dtype=bool)
        mask[doc * per_doc : (doc + 1) * per_doc] = True
        query = rng.standard_normal(dim).astype(np.float32)
        found = index.search(query / np.linalg.norm(query), per_doc, mask)
        assert {r for r, _ in found} <= set(range(doc * per_doc, (doc + 1) * per_doc))
        hits += len(found)
    assert hits == 50 * per_doc  # every allowed chunk, every time: the filtered set is searched exactly
    # Unfiltered, the index is approximate: its top 10 are mostly, not always, the exact top 10.
    queries = rng.standard_normal((20, dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact = np.argsort(-(queries @ matrix.T), axis=1)[:, :10]
    recall = np.mean(
        [len({r for r, _ in index.search(q, 10)} & set(e)) / 10 for q, e in zip(queries, exact, strict=True)]
    )
    assert 0.2 < recall < 1.0


def test_a_memory_mapped_inverted_file_read_by_row_finds_the_same_vectors(tmp_path: Path) -> None:
    """Serving advises the kernel (random reads, the probed cells read ahead together) and searches cell
    by cell itself: the results must be exactly those of FAISS's own search, filtered or not."""
    import numpy as np

    from cablebot.vectors import FaissVectors

    rng = np.random.default_rng(1)
    matrix = rng.standard_normal((20_000, 32), dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    path = tmp_path / "vectors.faiss"
    FaissVectors.of(matrix, approximate_above=1_000).save(path)
    settings = {"kind": FaissVectors.of(matrix[:1_001], approximate_above=1_000).kind}
    plain, served = FaissVectors.open(path, settings), FaissVectors.open(path, settings)
    served.read_by_row()
    allowed = np.arange(0, 20_000, 3)
    for query in rng.standard_normal((20, 32)).astype(np.float32):
        for among in (None, allowed):
            ids, scores = served.search(query, 25, among)
            expected_ids, expected_scores = plain.search(query, 25, among)
            assert len(ids) == 25 and ids.tolist() == expected_ids.tolist()
            assert np.array_equal(scores, expected_scores)
    # Looked up by id through the map beside the file, a few or (a rebuild) many.
    assert np.abs(served.reconstruct(allowed[:50]) - matrix[allowed[:50]]).max() < 1e-3
    assert np.abs(served.reconstruct(np.arange(20_000)) - matrix).max() < 1e-3
    smaps = Path("/proc/self/smaps")
    if smaps.is_file():  # Linux: the mapping of the file is marked for random reads ("rr")
        mappings = smaps.read_text().split(str(path))[1:]
        assert any(" rr" in m.split("VmFlags:")[1].splitlines()[0] for m in mappings)


def test_an_inverted_file_written_before_its_map_was_saved_beside_it_still_opens(tmp_path: Path) -> None:
    """Indexes built before the map moved beside the FAISS file hold it inside, or (earlier) nowhere."""
    import faiss
    import numpy as np

    from cablebot.vectors import FaissVectors

    rng = np.random.default_rng(2)
    matrix = rng.standard_normal((3_000, 16), dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    inside, nowhere = (FaissVectors.of(matrix, approximate_above=1_000) for _ in range(2))
    faiss.write_index(inside.index, str(tmp_path / "inside.faiss"))
    nowhere.index.set_direct_map_type(faiss.DirectMap.NoMap)
    faiss.write_index(nowhere.index, str(tmp_path / "nowhere.faiss"))
    for name in ("inside.faiss", "nowhere.faiss"):
        opened = FaissVectors.open(tmp_path / name, {"kind": inside.kind})
        opened.read_by_row()
        assert np.abs(opened.reconstruct(np.arange(0, 3_000, 7)) - matrix[::7]).max() < 1e-3
        assert opened.search(matrix[5], 1)[0].tolist() == [5]


def test_a_question_scans_at_least_fifty_thousand_vectors_of_an_inverted_file() -> None:
    """Searching 1 cell in 128 was enough at 13.7 million vectors (recall@10 0.96), not at 810,000 (0.83)."""
    from cablebot.vectors import MAX_CELLS, cells_to_search

    assert cells_to_search(14_804, 13_698_384) == 115
    for n in (200_001, 810_159, 3_000_000, 13_698_384, 60_000_000):
        nlist = max(1, min(MAX_CELLS, int(4 * n**0.5)))
        cells = cells_to_search(nlist, n)
        assert nlist // 128 <= cells <= nlist and cells * n / nlist >= 50_000


def test_an_exact_search_split_across_cores_finds_what_one_scan_finds(monkeypatch: pytest.MonkeyPatch) -> None:
    """FAISS scans one question's vectors on one core; split into ranges on several, the results, filtered
    or not, must be exactly those of one scan."""
    import numpy as np

    from cablebot.vectors import FaissVectors

    rng = np.random.default_rng(3)
    matrix = rng.standard_normal((9_000, 24), dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    whole, split = FaissVectors.of(matrix), FaissVectors.of(matrix)
    monkeypatch.setattr("cablebot.vectors.SPLIT_ABOVE", 2_000)
    monkeypatch.setattr("os.cpu_count", lambda: 3)
    assert whole.kind == "SQfp16" and split._parts() == 3
    allowed = np.arange(1, 9_000, 4)
    for query in rng.standard_normal((10, 24)).astype(np.float32):
        for among in (None, allowed):
            ids, scores = split.search(query, 40, among)
            monkeypatch.setattr(whole, "_parts", lambda: 1)
            expected_ids, expected_scores = whole.search(query, 40, among)
            assert len(ids) == 40 and set(ids.tolist()) == set(expected_ids.tolist())
            assert np.array_equal(scores, expected_scores)
            assert among is None or np.isin(ids, among).all()
    assert len(split.search(matrix[0], 10_000)[0]) == 9_000  # more asked for than there are


def test_the_passages_beside_the_best_join_it(tmp_path: Path, fake_embedder) -> None:
    from cablebot.retrieval import Retriever

    docs = tmp_path / "docs"
    docs.mkdir()
    paragraphs = ["Savanna notes", "Weather is mild.", "Zebras graze quietly.", "The herd numbers forty.", "Rain."]
    (docs / "savanna.txt").write_text("\n\n".join(paragraphs), encoding="utf-8")  # the first line is its title
    _build(docs, tmp_path / "index", fake_embedder)
    hits = Retriever(Index.load(tmp_path / "index"), fake_embedder).search("zebras graze", k=1, expand=1)
    # The best passage, one more of its document in reading order, then the one after the best.
    assert [h.chunk.text for h in hits] == ["Zebras graze quietly.", "Weather is mild.", "The herd numbers forty."]
    assert [h.rank for h in hits] == [1, 2, 3]


def test_the_question_is_embedded_again_without_the_names_it_holds(tmp_path: Path, fake_embedder) -> None:
    from cablebot.retrieval import Retriever

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "savanna.txt").write_text("Savanna notes\n\nZebras graze near Lake Nakuru.", encoding="utf-8")
    _build(docs, tmp_path / "index", fake_embedder)
    asked: list[str] = []
    embed = fake_embedder.embed_query
    fake_embedder.embed_query = lambda text: asked.append(text) or embed(text)
    retriever = Retriever(Index.load(tmp_path / "index"), fake_embedder)
    # The passage holding the question's words writes "Nakuru" as a name: the question is also embedded without it.
    question = "where do zebras graze, by nakuru?"
    (hit,) = retriever.search(question, k=1, question=question)
    assert sorted(asked) == ["where do zebras graze , by ?", "where do zebras graze, by nakuru?"]
    assert hit.relation_scores != hit.sentence_scores
    # A question naming nothing is its own relation: one vector.
    asked.clear()
    (hit,) = retriever.search("where do zebras graze?", k=1, question="where do zebras graze?")
    assert asked == ["where do zebras graze?"] and hit.relation_scores == hit.sentence_scores
