"""The index: a directory of plain files, written atomically.

    manifest.json           format version, model, dimension, chunker settings,
                            document hashes, and the names of the files below
    vectors.<gen>.faiss     the FAISS index (inner product over unit vectors)
    chunks.<gen>.jsonl      one chunk a line, in FAISS row order
    lexical.<gen>.*         BM25 postings of the chunks (see lexical.py)
    documents.<gen>.jsonl   one document's metadata a line

Data files carry a generation number and are written first; replacing
manifest.json (one atomic rename) switches readers to them. A crash or Ctrl-C
before that leaves the previous generation in force.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cablebot.chunking import CHUNKER_VERSION, Chunk, chunk_document
from cablebot.documents import Document
from cablebot.errors import CablebotError
from cablebot.lexical import Lexical, terms

if TYPE_CHECKING:
    import numpy as np

    from cablebot.embedding import Embedder

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
REBUILD = "cablebot index"


class IndexMissing(CablebotError):
    """No index has been built in this directory yet."""


@dataclass(frozen=True)
class BuildReport:
    documents: int
    chunks: int
    embedded: int  # chunks embedded in this run; the rest were reused
    removed: int  # documents dropped since the previous index
    seconds: float


def _corrupt(path: Path, why: object) -> CablebotError:
    return CablebotError(f"index file {path} is unreadable ({why}); rebuild it with: {REBUILD}")


def chunker_settings(tokens: int, overlap: int) -> dict[str, Any]:
    return {"version": CHUNKER_VERSION, "tokenizer": "cl100k_base", "tokens": tokens, "overlap": overlap}


class Index:
    """A loaded index: documents, chunks and their vectors, ready to search."""

    def __init__(
        self,
        directory: Path,
        manifest: dict[str, Any],
        documents: dict[str, Document],
        chunks: list[Chunk],
        vectors: Any,
        lexical: Lexical,
    ) -> None:
        self.directory = directory
        self.manifest = manifest
        self.documents = documents
        self.chunks = chunks
        self.vectors = vectors  # a faiss.Index
        self.lexical = lexical

    @staticmethod
    def read_manifest(directory: Path) -> dict[str, Any]:
        path = directory / MANIFEST
        if not path.is_file():
            raise IndexMissing(f"no index in {directory}; build it with: {REBUILD}")
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(manifest, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as e:
            raise _corrupt(path, e) from e
        if manifest.get("format") != FORMAT_VERSION:
            raise CablebotError(
                f"index in {directory} has format {manifest.get('format')}, this cablebot reads "
                f"format {FORMAT_VERSION}; rebuild it with: {REBUILD}"
            )
        return manifest

    @classmethod
    def load(cls, directory: Path) -> Index:
        import faiss

        manifest = cls.read_manifest(directory)
        files = manifest.get("files", {})
        try:
            vec_path = directory / files["vectors"]
            chunk_path = directory / files["chunks"]
            doc_path = directory / files["documents"]
        except (KeyError, TypeError) as e:
            raise _corrupt(directory / MANIFEST, f"missing entry {e}") from e
        documents: dict[str, Document] = {}
        chunks: list[Chunk] = []
        try:
            for line in doc_path.read_text(encoding="utf-8").splitlines():
                doc = Document(**json.loads(line))
                documents[doc.id] = doc
        except (OSError, ValueError, TypeError) as e:
            raise _corrupt(doc_path, e) from e
        try:
            for line in chunk_path.read_text(encoding="utf-8").splitlines():
                chunks.append(Chunk(**json.loads(line)))
        except (OSError, ValueError, TypeError) as e:
            raise _corrupt(chunk_path, e) from e
        if not vec_path.is_file():
            raise _corrupt(vec_path, "missing")
        try:
            vectors = faiss.read_index(str(vec_path))
        except RuntimeError as e:
            raise _corrupt(vec_path, str(e).strip().splitlines()[-1] if str(e).strip() else e) from e
        if vectors.ntotal != len(chunks) or vectors.d != manifest.get("dimension"):
            raise _corrupt(vec_path, f"{vectors.ntotal} vectors for {len(chunks)} chunks")
        try:
            lexical = Lexical.load(directory, files["lexical"])
        except (OSError, ValueError, KeyError, EOFError) as e:
            raise _corrupt(directory / f"{files.get('lexical')}.npz", e) from e
        if lexical.n_rows != len(chunks):
            raise _corrupt(
                directory / f"{files['lexical']}.npz", f"{lexical.n_rows} rows for {len(chunks)} chunks"
            )
        return cls(directory, manifest, documents, chunks, vectors, lexical)

    def check_model(self, model: str, dimension: int) -> None:
        """Refuse to search with vectors from another model: the scores would be meaningless."""
        if self.manifest.get("model") != model or self.manifest.get("dimension") != dimension:
            raise CablebotError(
                f"index in {self.directory} was built with {self.manifest.get('model')} "
                f"({self.manifest.get('dimension')} dimensions) but the configured model is {model} "
                f"({dimension}); rebuild it with: {REBUILD}"
            )

    def stale_documents(self) -> list[str]:
        """Paths of indexed files that changed or vanished since the index was built."""
        stale = []
        for entry in self.manifest.get("documents", {}).values():
            path = Path(entry["path"])
            try:
                st = path.stat()
            except OSError:
                stale.append(str(path))
                continue
            if st.st_size != entry["size"] or st.st_mtime_ns != entry["mtime_ns"]:
                from cablebot.documents import sha256_bytes

                if sha256_bytes(path.read_bytes()) != entry["sha256"]:
                    stale.append(str(path))
        return stale

    def vectors_of(self, rows: Sequence[int]) -> np.ndarray:
        import numpy as np

        return np.stack([self.vectors.reconstruct(int(r)) for r in rows])

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(chunk row, cosine similarity) of the `k` nearest chunks, best first."""
        k = min(k, len(self.chunks))
        if k == 0:
            return []
        scores, rows = self.vectors.search(query.reshape(1, -1).astype("float32"), k)
        return [(int(r), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0]


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def build_index(
    documents: Sequence[Document],
    embedder: Embedder,
    directory: Path,
    chunk_tokens: int,
    chunk_overlap: int,
    batch_size: int = 64,
    progress: Callable[[int], Callable[[int], None]] | None = None,
    sources: Sequence[str] = (),
) -> BuildReport:
    """Index `documents` into `directory`, re-embedding only documents whose content changed.

    `progress(total)` may return a callback that is told how many chunks each
    embedding batch finished.
    """
    import faiss
    import numpy as np

    started = time.monotonic()
    directory.mkdir(parents=True, exist_ok=True)
    chunker = chunker_settings(chunk_tokens, chunk_overlap)
    old = _reusable(directory, embedder, chunker)

    chunks: list[Chunk] = []
    vectors: list[np.ndarray | None] = []  # one entry per chunk; None = to embed
    for doc in documents:
        reused = old.get(doc.id, {}).get(doc.sha256) if old else None
        if reused is not None:
            doc_chunks, doc_vectors = reused
            chunks.extend(doc_chunks)
            vectors.extend(doc_vectors)
        else:
            doc_chunks = list(chunk_document(doc, chunk_tokens, chunk_overlap))
            chunks.extend(doc_chunks)
            vectors.extend([None] * len(doc_chunks))
    todo = [i for i, v in enumerate(vectors) if v is None]
    matrix = np.zeros((len(chunks), embedder.dim), dtype=np.float32)
    for i, v in enumerate(vectors):
        if v is not None:
            matrix[i] = v
    if todo:
        tick = progress(len(todo)) if progress else None
        matrix[todo] = embedder.embed_documents([chunks[i].text for i in todo], batch_size, tick)

    flat = faiss.IndexFlatIP(embedder.dim)
    flat.add(matrix)
    previous = Index.read_manifest(directory).get("generation", 0) if (directory / MANIFEST).is_file() else 0
    generation = int(previous) + 1 if str(previous).isdigit() else 1
    files = {
        "vectors": f"vectors.{generation}.faiss",
        "chunks": f"chunks.{generation}.jsonl",
        "documents": f"documents.{generation}.jsonl",
        "lexical": f"lexical.{generation}",
    }
    _write(directory / files["vectors"], faiss.serialize_index(flat).tobytes())
    Lexical.build([terms(c.text) for c in chunks]).save(directory, files["lexical"])
    _write(directory / files["chunks"], "".join(json.dumps(asdict(c)) + "\n" for c in chunks).encode())
    _write(
        directory / files["documents"],
        "".join(json.dumps(asdict(d) | {"paragraphs": []}) + "\n" for d in documents).encode(),
    )
    manifest = {
        "format": FORMAT_VERSION,
        "generation": generation,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": embedder.name,
        "dimension": embedder.dim,
        "chunker": chunker,
        "faiss": "IndexFlatIP",
        "files": files,
        "chunks": len(chunks),
        "sources": list(sources),
        "documents": {d.id: _file_entry(d) for d in documents},
    }
    tmp = directory / f"{MANIFEST}.tmp"
    _write(tmp, json.dumps(manifest, indent=1).encode())
    os.replace(tmp, directory / MANIFEST)
    _remove_unreferenced(directory, set(files.values()))
    removed = len(set(old) - {d.id for d in documents}) if old else 0
    return BuildReport(len(documents), len(chunks), len(todo), removed, time.monotonic() - started)


def _file_entry(doc: Document) -> dict[str, Any]:
    entry: dict[str, Any] = {"sha256": doc.sha256, "path": doc.path, "size": -1, "mtime_ns": -1}
    try:
        st = Path(doc.path).stat()
        entry.update(size=st.st_size, mtime_ns=st.st_mtime_ns)
    except OSError:
        pass
    return entry


def _reusable(
    directory: Path, embedder: Embedder, chunker: dict[str, Any]
) -> dict[str, dict[str, tuple[list[Chunk], list[np.ndarray]]]] | None:
    """Chunks and vectors of the previous index by document id and hash, when compatible."""
    try:
        index = Index.load(directory)
    except CablebotError:
        return None  # nothing usable: embed everything
    m = index.manifest
    if m.get("model") != embedder.name or m.get("dimension") != embedder.dim or m.get("chunker") != chunker:
        return None
    matrix = index.vectors.reconstruct_n(0, index.vectors.ntotal)
    by_doc: dict[str, tuple[list[Chunk], list[np.ndarray]]] = {}
    for row, chunk in enumerate(index.chunks):
        entry = by_doc.setdefault(chunk.doc_id, ([], []))
        entry[0].append(chunk)
        entry[1].append(matrix[row])
    hashes = {doc_id: e["sha256"] for doc_id, e in m.get("documents", {}).items()}
    return {doc_id: {hashes.get(doc_id, ""): entry} for doc_id, entry in by_doc.items()}


def _remove_unreferenced(directory: Path, keep: set[str]) -> None:
    """Delete data files of earlier generations and of interrupted builds."""
    for path in directory.iterdir():
        parts = path.name.split(".")
        stem = ".".join(parts[:2])
        if (
            parts[0] in ("vectors", "chunks", "documents", "lexical")
            and path.name not in keep
            and stem not in keep
        ):
            path.unlink(missing_ok=True)
