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
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cablebot.chunking import CHUNKER_VERSION, Chunk, chunk_document
from cablebot.documents import Document, Known, load_documents
from cablebot.errors import CablebotError
from cablebot.lexical import Lexical, terms

if TYPE_CHECKING:
    import numpy as np

    from cablebot.embedding import Embedder

FORMAT_VERSION = 1
APPROXIMATE_ABOVE = 200_000  # chunks; more get an approximate (IVF) FAISS index
NPROBE = 32  # IVF cells searched per question
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
    skipped: int  # files not indexed (unreadable, binary, empty, duplicate)
    failed: int  # files whose parsing failed
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
        faiss.omp_set_num_threads(1)  # one question at a time: waking OpenMP threads costs more than they save
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
            # Approximate indexes are memory-mapped: pages load as searches touch them.
            flags = faiss.IO_FLAG_MMAP if manifest.get("faiss", "").startswith("IVF") else 0
            vectors = faiss.read_index(str(vec_path), flags)
            if flags:
                vectors.make_direct_map()  # for reconstruct(): re-scoring and incremental rebuilds
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

    def model_mismatch(self, model: str, dimension: int) -> str:
        """Why this index cannot be searched with `model` (vectors from another encoder mean nothing), or ""."""
        if self.manifest.get("model") != model or self.manifest.get("dimension") != dimension:
            return (
                f"it was built with the encoder {self.manifest.get('model')} ({self.manifest.get('dimension')} "
                f"dimensions) but the configured one is {model} ({dimension})"
            )
        return ""

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

    @cached_property
    def rows_of_document(self) -> dict[str, list[int]]:
        """Chunk rows of each document, in order."""
        rows: dict[str, list[int]] = {}
        for row, chunk in enumerate(self.chunks):
            rows.setdefault(chunk.doc_id, []).append(row)
        return rows

    def vectors_of(self, rows: Sequence[int]) -> np.ndarray:
        import numpy as np

        return np.stack([self.vectors.reconstruct(int(r)) for r in rows])

    def search(self, query: np.ndarray, k: int, mask: np.ndarray | None = None) -> list[tuple[int, float]]:
        """(chunk row, cosine similarity) of the `k` nearest chunks, best first, among rows `mask` allows."""
        import faiss
        import numpy as np

        k = min(k, len(self.chunks))
        if k == 0:
            return []
        selector = faiss.IDSelectorBatch(np.flatnonzero(mask).astype("int64")) if mask is not None else None
        if self.manifest.get("faiss", "").startswith("IVF"):
            params = faiss.SearchParametersIVF(sel=selector, nprobe=int(self.manifest.get("nprobe", NPROBE)))
        else:
            params = faiss.SearchParameters(sel=selector) if selector is not None else None
        scores, rows = self.vectors.search(query.reshape(1, -1).astype("float32"), k, params=params)
        return [(int(r), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0]


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def build_index(
    paths: Sequence[Path],
    embedder: Embedder,
    directory: Path,
    chunk_tokens: int,
    chunk_overlap: int,
    batch_size: int = 64,
    warn: Callable[[str], None] = print,
    progress: Callable[[int], Callable[[int], None] | None] | None = None,
    approximate_above: int = APPROXIMATE_ABOVE,
) -> BuildReport:
    """Index the files under `paths` into `directory`.

    Unchanged files (by size and mtime, else content hash) are neither parsed
    nor embedded again: their chunks and vectors come from the previous index.
    `progress(total)` may return a callback told how many chunks each
    embedding batch finished.
    """
    import faiss
    import numpy as np

    started = time.monotonic()
    directory.mkdir(parents=True, exist_ok=True)
    chunker = chunker_settings(chunk_tokens, chunk_overlap)
    previous = _previous(directory, embedder, chunker)
    loaded = load_documents(paths, warn, previous.known if previous else None)
    if not loaded.documents:
        raise CablebotError("no documents to index (supported: .txt, .md, .html)")

    chunks: list[Chunk] = []
    reused_rows: list[tuple[int, int]] = []  # (new row, old row)
    for doc in loaded.documents:
        old_rows = previous.rows_of(doc) if previous else None
        if old_rows is not None:
            reused_rows.extend((len(chunks) + i, r) for i, r in enumerate(old_rows))
            chunks.extend(previous.index.chunks[r] for r in old_rows)  # type: ignore[union-attr]
        else:
            chunks.extend(chunk_document(doc, chunk_tokens, chunk_overlap))
    matrix = np.zeros((len(chunks), embedder.dim), dtype=np.float32)
    if reused_rows:
        new, old = (list(x) for x in zip(*reused_rows, strict=True))
        matrix[new] = previous.matrix[old]  # type: ignore[union-attr]
    todo = sorted(set(range(len(chunks))) - {n for n, _ in reused_rows})
    if todo:
        tick = progress(len(todo)) if progress else None
        matrix[todo] = embedder.embed_documents([chunks[i].text for i in todo], batch_size, tick)

    vectors, kind = vector_index(matrix, approximate_above)
    generation = int(previous.index.manifest.get("generation", 0)) + 1 if previous else _next_generation(directory)
    files = {
        "vectors": f"vectors.{generation}.faiss",
        "chunks": f"chunks.{generation}.jsonl",
        "documents": f"documents.{generation}.jsonl",
        "lexical": f"lexical.{generation}",
    }
    _write(directory / files["vectors"], faiss.serialize_index(vectors).tobytes())
    Lexical.build([terms(c.text) for c in chunks]).save(directory, files["lexical"])
    _write(directory / files["chunks"], "".join(json.dumps(asdict(c)) + "\n" for c in chunks).encode())
    _write(
        directory / files["documents"],
        "".join(
            json.dumps(asdict(d) | {"paragraphs": [], "labels": []}) + "\n" for d in loaded.documents
        ).encode(),
    )
    manifest = {
        "format": FORMAT_VERSION,
        "generation": generation,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": embedder.name,
        "dimension": embedder.dim,
        "chunker": chunker,
        "faiss": kind,
        "nprobe": NPROBE,
        "files": files,
        "chunks": len(chunks),
        "sources": [str(p) for p in paths],
        "documents": {d.id: _file_entry(d) for d in loaded.documents},
    }
    tmp = directory / f"{MANIFEST}.tmp"
    _write(tmp, json.dumps(manifest, indent=1).encode())
    os.replace(tmp, directory / MANIFEST)
    _remove_unreferenced(directory, set(files.values()))
    removed = len(set(previous.index.documents) - {d.id for d in loaded.documents}) if previous else 0
    return BuildReport(
        len(loaded.documents),
        len(chunks),
        len(todo),
        removed,
        loaded.skipped,
        loaded.failed,
        time.monotonic() - started,
    )


def vector_index(matrix: np.ndarray, approximate_above: int = APPROXIMATE_ABOVE) -> tuple[Any, str]:
    """A FAISS index of `matrix` (unit vectors, inner product) and its description.

    Exact (flat) search up to `approximate_above` vectors; above, an inverted
    file of fp16 vectors: k-means cells, of which NPROBE are searched per
    question. At 1.5 million vectors that is 1.1 GB instead of 2.3 GB, read
    memory-mapped, at recall@10 >= 0.95 against exact search (bench/scale.py).
    """
    import faiss
    import numpy as np

    faiss.omp_set_num_threads(os.cpu_count() or 1)  # training and adding use every core
    n, dim = matrix.shape
    if n <= approximate_above:
        flat = faiss.IndexFlatIP(dim)
        flat.add(matrix)
        return flat, "IndexFlatIP"
    nlist = max(1, min(65536, int(4 * np.sqrt(n))))
    index = faiss.index_factory(dim, f"IVF{nlist},SQfp16", faiss.METRIC_INNER_PRODUCT)
    sample = matrix if n <= 64 * nlist else matrix[np.random.default_rng(0).choice(n, 64 * nlist, replace=False)]
    index.train(sample)
    index.add(matrix)
    return index, f"IVF{nlist},SQfp16"


def _next_generation(directory: Path) -> int:
    """One past any generation found in the directory (a damaged index may have left files)."""
    numbers = [int(p.name.split(".")[1]) for p in directory.glob("*.*.*") if p.name.split(".")[1].isdigit()]
    return max(numbers, default=0) + 1


def _file_entry(doc: Document) -> dict[str, Any]:
    entry: dict[str, Any] = {"sha256": doc.sha256, "path": doc.path, "size": -1, "mtime_ns": -1}
    try:
        st = Path(doc.path).stat()
        entry.update(size=st.st_size, mtime_ns=st.st_mtime_ns)
    except OSError:
        pass
    return entry


@dataclass
class _Previous:
    """What a compatible earlier index offers a rebuild: documents, chunk rows and vectors."""

    index: Index
    matrix: Any  # numpy array of all vectors
    known: dict[str, Known]

    def rows_of(self, doc: Document) -> list[int] | None:
        old = self.index.documents.get(doc.id)
        if old is None or old.sha256 != doc.sha256:
            return None
        return self.index.rows_of_document.get(doc.id)


def _previous(directory: Path, embedder: Embedder, chunker: dict[str, Any]) -> _Previous | None:
    try:
        index = Index.load(directory)
    except CablebotError:
        return None  # nothing usable: parse and embed everything
    m = index.manifest
    if m.get("model") != embedder.name or m.get("dimension") != embedder.dim or m.get("chunker") != chunker:
        return None
    known = {}
    for doc_id, entry in m.get("documents", {}).items():
        doc = index.documents.get(doc_id)
        if doc is not None and doc.sha256 == entry.get("sha256"):
            known[entry["path"]] = Known(entry["size"], entry["mtime_ns"], doc)
    return _Previous(index, index.vectors.reconstruct_n(0, index.vectors.ntotal), known)


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
