"""The ONNX encoder against the sentence-transformers reference, and the approximate index."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from cablebot.chunking import chunk_document
from cablebot.config import BUNDLED_CORPUS, Settings
from cablebot.documents import parse_document

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="module")
def texts() -> tuple[list[str], list[str]]:
    """The development questions and 1,000 chunks of real cables."""
    if not (SHARED / "eval").is_dir():
        pytest.skip("../shared is not here")
    questions = [
        json.loads(line)["question"]
        for name in ("dev-seed.jsonl", "dev-cables.jsonl")
        for line in (SHARED / "eval" / name).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    chunks: list[str] = []
    with tarfile.open(SHARED / "corpus/cablegate/cablegate-1295-html.tar.gz") as tar:
        for member in tar:
            if len(chunks) >= 1000:
                break
            if member.isfile() and member.name.endswith(".html"):
                text = tar.extractfile(member).read().decode("utf-8", "replace")  # type: ignore[union-attr]
                doc = parse_document(Path(member.name), text, "", lambda m: None)
                if doc is not None:
                    chunks.extend(c.text for c in chunk_document(doc, 100, 30))
    return questions, chunks[:1000]


def test_onnx_and_torch_encoders_are_equivalent(texts: tuple[list[str], list[str]]) -> None:
    from cablebot.embedding import OnnxEmbedder, TorchEmbedder

    questions, chunks = texts
    assert len(questions) >= 70 and len(chunks) == 1000
    onnx, torch = OnnxEmbedder(), TorchEmbedder()
    assert (onnx.name, onnx.dim) == (torch.name, torch.dim) == ("all-MiniLM-L6-v2", 384)
    q = np.stack([onnx.embed_query(t) for t in questions]) * np.stack([torch.embed_query(t) for t in questions])
    assert q.sum(axis=1).min() >= 0.999
    d = onnx.embed_documents(chunks, 16) * torch.embed_documents(chunks, 16)
    assert d.sum(axis=1).min() >= 0.999
    assert np.allclose(np.linalg.norm(onnx.embed_documents(chunks[:10]), axis=1), 1.0, atol=1e-5)
    for text in questions[:20] + chunks[:20]:  # token vectors too (Cablebot.match), with the same spans
        (a, a_spans), (b, b_spans) = onnx.token_vectors(text), torch.token_vectors(text)
        assert (a_spans == b_spans).all() and (a * b).sum(axis=1).min() >= 0.999


def test_an_index_above_the_threshold_is_an_ivf_file_memory_mapped_that_answers(tmp_path: Path) -> None:
    """The IVF path end to end. At 42 vectors its 32 probes cover every cell, so the search is exhaustive:
    test_index.py checks approximate search itself at 300,000 vectors."""
    from cablebot.core import Cablebot

    settings = Settings(index_dir=tmp_path / "index", corpus_paths=(BUNDLED_CORPUS,), index_approximate_above=5)
    bot = Cablebot(settings, warn=lambda m: None)
    kind = bot.index.manifest["vectors"]["kind"]
    assert kind.startswith("IVF") and kind.endswith("SQfp16")
    answer = bot.ask("How many Mexican officials guard the southern border?")
    assert "125 Mexican immigration officials" in answer.citations[0].quote
    reloaded = Cablebot(settings, warn=lambda m: None)  # memory-mapped on load
    assert "125" in reloaded.ask("How many Mexican officials guard the southern border?").text
    # The map from vector to cell is saved beside the file, memory-mapped: a load neither reads every
    # cell to build it nor reads it whole from the FAISS file.
    import faiss

    path = settings.index_dir / bot.index.manifest["files"]["vectors"]
    assert faiss.read_index(str(path), faiss.IO_FLAG_MMAP).direct_map.no()
    where = np.load(path.with_name(path.name.removesuffix(".faiss") + ".where.npy"), mmap_mode="r")
    assert len(where) == reloaded.index.vectors.ntotal == bot.index.vectors.ntotal
    assert path.with_name(path.name.removesuffix(".faiss") + ".where.npy").name in bot.index.manifest["checksums"]
