"""The index: a directory of plain files, written atomically, read without loading them whole.

    manifest.json              format version, model, dimension, chunker settings, sources,
                               checksums, and the names of the files below
    vectors.<gen>.faiss        the FAISS index of sentence vectors (inner product over unit vectors),
                               or vectors.<gen>.milvus.db|json: Milvus Lite's folder, or which
                               server and collection hold them (see vectors.py)
    sentences.<gen>.npy        the sentence vector of each sentence of each chunk, in the chunks' order,
    sentences.<gen>.offsets.npy  where each chunk's sentences start (chunk r: offsets[r]:offsets[r + 1]),
    sentences.<gen>.order.npy  those entries grouped by sentence vector, and where each group
    sentences.<gen>.start.npy  starts: the chunks holding a sentence, without a search
    chunks.<gen>.jsonl         one chunk a line, in document order (+ .rows.npy: see store.py)
    documents.<gen>.jsonl      one document's metadata and file a line (+ .rows.npy)
    documents.<gen>.table.npz  per document: id, first chunk row, origin, classification, date
    lexical.<gen>/             BM25 over the chunks (a tantivy index, see lexical.py)

The unit embedded is the sentence, not the chunk: a chunk is as close to a
question as its closest sentence. Short, paraphrased questions find their
answer sentence more often that way (docs/answer-quality.md has the figures), and the
reader gets each candidate sentence's own similarity at no extra encoding.
Identical sentences are embedded once.

Everything but the document table is memory-mapped: an index of millions of
chunks opens in milliseconds, and memory holds only the pages questions touch.

Data files carry a generation number and are written first; replacing
manifest.json (one atomic rename) switches readers to them. A crash or Ctrl-C
before that leaves the previous generation in force.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cablebot.chunking import CHUNKER_VERSION, Chunk, chunk_document, sentence_spans
from cablebot.documents import MAX_BYTES, PARSER_VERSION, Document, Known, load_documents
from cablebot.errors import CablebotError
from cablebot.lexical import TERMS, Lexical
from cablebot.store import (
    DamagedFile,
    DocumentStore,
    Records,
    load_array,
    save_array,
    write_documents,
    write_records,
)
from cablebot.vectors import APPROXIMATE_ABOVE, FaissVectors, MilvusVectors, drop, half, open_vectors, where_name

if TYPE_CHECKING:
    import numpy as np

    from cablebot.embedding import Embedder

FORMAT_VERSION = 3
EXACT_FILTERED = 20_000  # a filter allowing at most this many sentence vectors is searched exactly
MANIFEST = "manifest.json"
JOURNAL = "building.json"  # the files a build is writing, named before it writes them
LOCK = "index.lock"  # held by the one build writing into the directory
REBUILD = "cablebot index"
EMBED_BLOCK = 8_192  # sentences embedded per call while indexing (rounded to whole batches)
READ_BLOCK = 50_000  # sentence vectors a rebuild reads from the previous index at a time
STALE_CHECK = 20_000  # indexes of at most this many documents check their files for changes on load
CHECK_AT_LOAD = 64 << 20  # files up to this size are hashed on load; larger ones are checked by size (the
# chunk and document stores also record by record, as they are read)
FILES = {  # each file of a generation, by what it holds
    "vectors": "vectors.{}.faiss",
    "sentences": "sentences.{}.npy",
    "offsets": "sentences.{}.offsets.npy",
    "order": "sentences.{}.order.npy",
    "start": "sentences.{}.start.npy",
    "chunks": "chunks.{}.jsonl",
    "documents": "documents.{}.jsonl",
    "lexical": "lexical.{}",
}
SENTENCE_ARRAYS = ("sentences", "offsets", "order", "start")


class IndexMissing(CablebotError):
    """No index has been built in this directory yet."""


class IndexOutdated(CablebotError):
    """An index in an older format: readable only after a rebuild."""

    def __init__(self, message: str, manifest: dict[str, Any]) -> None:
        super().__init__(message)
        self.manifest = manifest


@dataclass(frozen=True)
class BuildReport:
    documents: int
    chunks: int
    sentences: int  # distinct sentences, each one vector
    embedded: int  # sentences embedded in this run; the rest were reused
    removed: int  # documents dropped since the previous index
    skipped: int  # files not indexed (unreadable, binary, empty, duplicate)
    failed: int  # files whose parsing failed
    seconds: float


def _chunk(record: dict[str, Any]) -> Chunk:
    return Chunk(**record)


def chunker_settings(tokens: int, overlap: int) -> dict[str, Any]:
    return {
        "parser": PARSER_VERSION,
        "version": CHUNKER_VERSION,
        "tokenizer": "cl100k_base",
        "tokens": tokens,
        "overlap": overlap,
        "terms": TERMS,
    }


class Index:
    """A loaded index: documents, chunks and their vectors, ready to search."""

    def __init__(
        self,
        directory: Path,
        manifest: dict[str, Any],
        documents: DocumentStore,
        chunks: Records[Chunk],
        vectors: FaissVectors | MilvusVectors,
        lexical: Lexical,
        sentences: dict[str, np.ndarray],
    ) -> None:
        self.directory = directory
        self.manifest = manifest
        self.documents = documents
        self.chunks = chunks
        self.vectors = vectors  # the sentence vectors
        self.lexical = lexical
        # Chunk r's sentences are vector rows sentences[offsets[r]:offsets[r + 1]], in reading order;
        # order[start[v]:start[v + 1]] are the entries holding sentence vector v.
        self.sentences = sentences["sentences"]
        self.offsets = sentences["offsets"]
        self._order = sentences["order"]
        self._start = sentences["start"]

    def read_by_row(self) -> None:
        """This index answers questions from now on: its memory-mapped files are read a row at a time
        (store.read_by_row), except those a filter scans whole. A build, which reads them through, does
        not call this."""
        from cablebot.store import read_by_row

        self.chunks.read_by_row()
        self.documents.records.read_by_row()
        read_by_row(self._order)
        read_by_row(self._start)
        self.vectors.read_by_row()

    @staticmethod
    def read_manifest(directory: Path) -> dict[str, Any]:
        path = directory / MANIFEST
        if not path.is_file():
            if directory.exists() and not directory.is_dir():
                raise CablebotError(f"{directory} is a file, not an index directory")
            if directory.is_dir() and _foreign(directory):
                raise CablebotError(
                    f"{directory} is not a usable index: it has no {MANIFEST} but holds other files; "
                    f"rebuild into a new directory with: {REBUILD} --index NEW_DIR PATH..."
                )
            raise IndexMissing(f"no index in {directory}; build it with: {REBUILD} --index {directory} PATH...")
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(manifest, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as e:
            raise DamagedFile(path, e) from e
        if manifest.get("format") != FORMAT_VERSION:
            raise IndexOutdated(
                f"index in {directory} has format {manifest.get('format')}, this cablebot reads "
                f"format {FORMAT_VERSION}; rebuild it with: {REBUILD} --index {directory} PATH...",
                manifest,
            )
        return manifest

    @classmethod
    def load(cls, directory: Path) -> Index:
        """The index in `directory`. A rebuild may swap generations while this reads: when a file of
        the manifest just read has vanished, the new manifest is read once more."""
        first = cls.read_manifest(directory)
        try:
            return cls._load(directory, first)
        except CablebotError:
            again = cls.read_manifest(directory)
            if again.get("generation") == first.get("generation"):
                raise
            return cls._load(directory, again)

    @classmethod
    def _load(cls, directory: Path, manifest: dict[str, Any]) -> Index:
        _check(directory, manifest)
        files = manifest.get("files")
        if not isinstance(files, dict) or set(files) != set(FILES) or not all(map(_safe_name, files.values())):
            raise DamagedFile(directory / MANIFEST, "its list of files is not this format's")
        vec_path = directory / files["vectors"]
        documents = DocumentStore(directory / files["documents"])
        chunks = Records(directory / files["chunks"], _chunk)
        sentences = {key: load_array(directory / files[key]) for key in SENTENCE_ARRAYS}
        lexical = Lexical(directory / files["lexical"])
        settings = manifest.get("vectors")
        if not isinstance(settings, dict):
            raise DamagedFile(directory / MANIFEST, "it does not say how the vectors are stored")
        vectors = open_vectors(vec_path, settings | {"dimension": manifest.get("dimension")})
        offsets, entries = sentences["offsets"], sentences["sentences"]
        if (
            len(offsets) != len(chunks) + 1
            or offsets[-1] != len(entries)
            or len(sentences["order"]) != len(entries)
            or len(sentences["start"]) != vectors.ntotal + 1
        ):
            why = f"does not match the {len(chunks)} chunks and {vectors.ntotal} vectors"
            raise DamagedFile(directory / files["sentences"], why)
        if vectors.d != manifest.get("dimension"):
            raise DamagedFile(vec_path, f"{vectors.d} dimensions, the manifest says {manifest.get('dimension')}")
        if lexical.n_rows != len(chunks) or documents.chunk_start[-1] != len(chunks):
            wrong = lexical.path if lexical.n_rows != len(chunks) else documents.path
            raise DamagedFile(wrong, f"does not match the {len(chunks)} chunks")
        return cls(directory, manifest, documents, chunks, vectors, lexical, sentences)

    def model_mismatch(self, model: str, dimension: int) -> str:
        """Why this index cannot be searched with `model` (vectors from another encoder mean nothing), or ""."""
        if self.manifest.get("model") != model or self.manifest.get("dimension") != dimension:
            return (
                f"it was built with the encoder {self.manifest.get('model')} ({self.manifest.get('dimension')} "
                f"dimensions) but the configured one is {model} ({dimension})"
            )
        return ""

    def stale_documents(self) -> list[str]:
        """Paths of indexed files that changed or vanished since the index was built (checked when the index
        has at most STALE_CHECK documents: statting a quarter of a million files would take seconds)."""
        if len(self.documents) > STALE_CHECK:
            return []
        stale = []
        records = self.documents.records
        for row in range(len(records)):
            record = records.raw(row)  # not a Document: every ask of a CLI runs this, 30 µs a file matters
            path = str(record.get("path"))
            try:
                st = os.stat(path)
            except OSError:
                stale.append(path)
                continue
            if st.st_size != record.get("size", -1) or st.st_mtime_ns != record.get("mtime_ns", -1):
                from cablebot.documents import sha256_bytes

                if sha256_bytes(Path(path).read_bytes()) != record.get("sha256"):
                    stale.append(path)
        return stale

    def rows_of(self, doc_id: str) -> range:
        """Chunk rows of a document, in order (empty when it is not indexed)."""
        row = self.documents.row(doc_id)
        return range(0) if row is None else self.documents.chunk_rows(row)

    def sentence_ids(self) -> dict[str, int]:
        """Each distinct sentence text of the index and the row of its vector."""
        out: dict[str, int] = {}
        for row, chunk in enumerate(self.chunks):
            ids = self.sentences[self.offsets[row] : self.offsets[row + 1]]
            for (a, b), i in zip(sentence_spans(chunk.text), ids.tolist(), strict=False):
                out[chunk.text[a:b]] = i
        return out

    def sentence_scores(self, query: np.ndarray, rows: Sequence[int]) -> list[np.ndarray]:
        """Cosine similarity of `query` to each sentence of each chunk in `rows`, in reading order."""
        import numpy as np

        ids = [self.sentences[self.offsets[r] : self.offsets[r + 1]] for r in rows]
        flat = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
        if not len(flat):
            return [np.zeros(0, dtype=np.float32) for _ in rows]
        sims = self.vectors.reconstruct(flat) @ np.asarray(query, dtype=np.float32)
        return np.split(sims, np.cumsum([len(i) for i in ids])[:-1])

    def search(self, query: np.ndarray, k: int, mask: np.ndarray | None = None) -> list[tuple[int, float]]:
        """(chunk row, cosine similarity of its closest sentence) of the `k` nearest chunks, best first,
        among the chunk rows `mask` allows."""
        import numpy as np

        k = min(k, len(self.chunks))
        if k == 0:
            return []
        allowed = None
        if mask is not None:
            allowed = np.unique(self.sentences[np.repeat(mask, np.diff(self.offsets))])
            if len(allowed) <= EXACT_FILTERED:
                # An inverted file filters only inside the cells it probes: a few allowed vectors would
                # mostly be missed. So few are scored exactly, which is also faster.
                sims = self.vectors.reconstruct(allowed) @ query.astype("float32")
                return self._best_chunks(allowed[np.argsort(-sims)], np.sort(sims)[::-1], k, mask)
        want = 4 * k  # a chunk holds a few sentences: ask for enough to fill k chunks
        while True:
            n = min(want, self.vectors.ntotal)
            rows, scores = self.vectors.search(query, n, allowed)
            best = self._best_chunks(rows, scores, k, mask)
            if len(best) >= k or n >= self.vectors.ntotal or len(rows) < n:
                return best
            want *= 4

    def _best_chunks(
        self, sentence_rows: np.ndarray, scores: np.ndarray, k: int, mask: np.ndarray | None
    ) -> list[tuple[int, float]]:
        """The `k` best chunks for sentences ranked best first: a chunk scores as its best sentence."""
        import numpy as np

        best: dict[int, float] = {}
        for sentence, score in zip(sentence_rows.tolist(), scores.tolist(), strict=True):
            # The chunks holding this sentence (one repeated by overlap is in two).
            entries = self._order[self._start[sentence] : self._start[sentence + 1]]
            for chunk in (np.searchsorted(self.offsets, entries, side="right") - 1).tolist():
                if chunk not in best and (mask is None or mask[chunk]):
                    best[chunk] = score
            if len(best) >= k:  # sentences come best first: no later one gives a better chunk
                break
        return sorted(best.items(), key=lambda item: -item[1])[:k]


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
    follow_links: bool = False,
    max_bytes: int = MAX_BYTES,
    excluded: Sequence[Path] = (),
    backend: str = "faiss",
    uri: str = "",
) -> BuildReport:
    """Index the files under `paths` into `directory` (symbolic links in folders followed only if asked).

    Unchanged files (by size and mtime, else content hash) are neither parsed
    nor embedded again: their chunks and vectors come from the previous index.
    `progress(total)` may return a callback told how many sentences each
    embedding batch finished. The vectors go to FAISS, or with `backend`
    "milvus" to the Milvus server at `uri` (empty: Milvus Lite, in `directory`).
    """
    started = time.monotonic()
    claim(directory)  # before creating anything in it
    directory.mkdir(parents=True, exist_ok=True)
    with _writer_lock(directory, warn):
        return _build(
            paths, embedder, directory, chunk_tokens, chunk_overlap, batch_size, warn, progress,
            approximate_above, follow_links, max_bytes, excluded, started, backend, uri,
        )  # fmt: skip


@contextlib.contextmanager
def _writer_lock(directory: Path, warn: Callable[[str], None]) -> Iterator[None]:
    """One `cablebot index` at a time per directory: a second one waits, saying so, then builds on the first's."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(directory / LOCK, "a+b") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            warn(f"another cablebot is indexing into {directory}; waiting for it to finish…")
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _build(
    paths: Sequence[Path],
    embedder: Embedder,
    directory: Path,
    chunk_tokens: int,
    chunk_overlap: int,
    batch_size: int,
    warn: Callable[[str], None],
    progress: Callable[[int], Callable[[int], None] | None] | None,
    approximate_above: int,
    follow_links: bool,
    max_bytes: int,
    excluded: Sequence[Path],
    started: float,
    backend: str,
    uri: str,
) -> BuildReport:
    import numpy as np

    recorded = read_json_object(directory / MANIFEST)
    live = _names(recorded)  # the generation readers use now
    # Every file an earlier build wrote: the live and retired generations, and an interrupted build's.
    ours = {*_names(recorded, retired=True), *_names(read_json_object(directory / JOURNAL)), f"{MANIFEST}.tmp"}
    chunker = chunker_settings(chunk_tokens, chunk_overlap)
    previous = _previous(directory, embedder, chunker)
    loaded = load_documents(paths, warn, previous.known if previous else None, follow_links, max_bytes, excluded)
    if not loaded.documents:
        raise CablebotError("no documents to index (supported: .txt, .md, .html)")

    chunks: list[Chunk] = []
    for doc in loaded.documents:
        old_rows = previous.rows_of(doc) if previous else None
        if old_rows is not None:
            chunks.extend(previous.index.chunks[r] for r in old_rows)  # type: ignore[union-attr]
        else:
            chunks.extend(chunk_document(doc, chunk_tokens, chunk_overlap))
    # Each distinct sentence is embedded once; sentences of unchanged documents keep their vectors.
    row_of: dict[str, int] = {}
    sentence_rows: list[int] = []
    offsets = [0]
    for chunk in chunks:
        for a, b in sentence_spans(chunk.text):
            sentence_rows.append(row_of.setdefault(chunk.text[a:b], len(row_of)))
        offsets.append(len(sentence_rows))
    texts = list(row_of)
    # fp16 as the index keeps them (see `half`): the whole release's ~14 million sentences take 10.5 GiB, not 21.
    matrix = np.zeros((len(texts), embedder.dim), dtype=np.float16)
    todo = previous.fill(texts, matrix) if previous else list(range(len(texts)))
    if todo:
        tick = progress(len(todo)) if progress else None
        # Longest first, as embed_documents orders a batch's texts: blocks of whole batches embed exactly as one
        # call would, without a second full matrix of fp32 output.
        todo.sort(key=lambda row: -len(texts[row]))
        block = batch_size * max(1, EMBED_BLOCK // batch_size)
        for start in range(0, len(todo), block):
            rows = todo[start : start + block]
            matrix[rows] = half(embedder.embed_documents([texts[r] for r in rows], batch_size, tick))

    generation = 1 + max((int(part) for n in ours for part in n.split(".")[1:2] if part.isdigit()), default=0)
    uid = str(recorded.get("uid") or uuid.uuid4().hex[:12])  # names this index's collections on a Milvus server
    vectors = (
        MilvusVectors.of(matrix, uri, f"cablebot_{uid}_{generation}" if uri else "sentences")
        if backend == "milvus"
        else FaissVectors.of(matrix, approximate_above)
    )
    settings = {"uid": uid, "model": embedder.name, "dimension": embedder.dim, "chunker": chunker}
    settings |= {"sources": [str(p) for p in paths], "excluded": [str(p) for p in excluded]}
    write_generation(
        directory, generation, ours, live, loaded.documents, chunks,
        np.array(sentence_rows, dtype=np.int32), np.array(offsets, dtype=np.int64), vectors, settings,
    )  # fmt: skip
    removed = len(set(previous.index.documents) - {d.id for d in loaded.documents}) if previous else 0
    return BuildReport(
        len(loaded.documents),
        len(chunks),
        len(texts),
        len(todo),
        removed,
        loaded.skipped,
        loaded.failed,
        time.monotonic() - started,
    )


def write_generation(
    directory: Path,
    generation: int,
    ours: set[str],
    live: list[str],
    documents: Sequence[Document],
    chunks: Sequence[Chunk],
    sentences: np.ndarray,
    offsets: np.ndarray,
    vectors: FaissVectors | MilvusVectors,
    settings: dict[str, Any],
) -> None:
    """Write one generation's files, then switch readers to it by replacing the manifest.

    `chunks` are in document order; chunk r's sentences are the vector rows
    `sentences[offsets[r]:offsets[r + 1]]`. `ours` are the files earlier
    builds wrote, `live` those of the generation in force; `settings` go
    into the manifest as they are.
    """
    import numpy as np

    files = {key: name.format(generation) for key, name in FILES.items()}
    if isinstance(vectors, MilvusVectors):
        files["vectors"] = vectors.file_name(generation)
    written = _file_names(files)
    # Name the files before writing them: whatever a crash leaves behind is known to be ours.
    _write(directory / JOURNAL, json.dumps({"files": written}).encode())
    try:
        order = np.argsort(sentences, kind="stable").astype(np.int32)
        start = np.searchsorted(sentences[order], np.arange(vectors.ntotal + 1)).astype(np.int64)
        for key, array in zip(SENTENCE_ARRAYS, (sentences, offsets, order, start), strict=True):
            save_array(directory / files[key], array)
        vectors.save(directory / files["vectors"])
        write_records(directory / files["chunks"], (asdict(c) for c in chunks))
        counts: dict[str, int] = {}
        for c in chunks:
            counts[c.doc_id] = counts.get(c.doc_id, 0) + 1
        write_documents(
            directory / files["documents"],
            documents,
            [_file_entry(d) for d in documents],
            [counts.get(d.id, 0) for d in documents],
        )
        doc_row = {d.id: row for row, d in enumerate(documents)}
        Lexical.build(directory / files["lexical"], ((doc_row[c.doc_id], c.text) for c in chunks))
        manifest = {
            "format": FORMAT_VERSION,
            "generation": generation,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **settings,
            "vectors": vectors.settings(),
            "files": files,
            "documents": len(documents),
            "chunks": len(chunks),
            "sentences": int(vectors.ntotal),
            "checksums": _checksums(directory, written),
            "retired": live,
        }
        tmp = directory / f"{MANIFEST}.tmp"
        _write(tmp, json.dumps(manifest, indent=1).encode())
    except BaseException:  # Ctrl-C or a failure while writing: the previous generation stays, whole
        for name in (*written, f"{MANIFEST}.tmp", JOURNAL):
            _remove(directory / name)
        raise
    os.replace(tmp, directory / MANIFEST)
    # The generation just replaced stays until the next build: a reader that read the old manifest a moment
    # ago can still open its files. Older generations and interrupted builds go, and nothing but ours.
    for name in ours - set(written) - set(live):
        _remove(directory / name)
    (directory / JOURNAL).unlink(missing_ok=True)


def _remove(path: Path) -> None:
    drop(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _checksums(directory: Path, names: Sequence[str]) -> dict[str, list[Any]]:
    """Size and content hash of every data file (a directory's files named one by one)."""
    paths = []
    for name in names:
        path = directory / name
        if path.is_dir() and path.name.endswith(".milvus.db"):
            continue  # Milvus Lite's folder: Milvus keeps it, and writes to it when it opens it
        if path.is_dir():
            paths += sorted(p for p in path.iterdir() if p.is_file() and not p.name.endswith(".lock"))
        else:
            paths.append(path)
    return {p.relative_to(directory).as_posix(): [p.stat().st_size, digest(p)] for p in paths}


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
    """What a compatible earlier index offers a rebuild: documents, chunk rows and sentence vectors."""

    index: Index
    known: dict[str, Known]
    same_chunks: bool  # else every document is parsed again; only sentence vectors are reused

    def fill(self, texts: Sequence[str], matrix: np.ndarray) -> list[int]:
        """Copy the vector of each of `texts` that the previous index holds into its row of `matrix`; the rows
        left to embed. Vectors are read a block at a time, in the order they are stored: read all at once, the
        whole release's would take 21 GiB beside the new ones."""
        import numpy as np

        known = self.index.sentence_ids()
        old = np.array([known.get(text, -1) for text in texts], dtype=np.int64)
        del known  # the largest thing a rebuild holds besides the matrix
        rows = np.flatnonzero(old >= 0)
        rows = rows[np.argsort(old[rows], kind="stable")]
        for start in range(0, len(rows), READ_BLOCK):
            part = rows[start : start + READ_BLOCK]
            matrix[part] = half(self.index.vectors.reconstruct(old[part]))
        return np.flatnonzero(old < 0).tolist()

    def rows_of(self, doc: Document) -> range | None:
        old = self.index.documents.get(doc.id)
        if not self.same_chunks or old is None or old.sha256 != doc.sha256:
            return None
        return self.index.rows_of(doc.id)


def _previous(directory: Path, embedder: Embedder, chunker: dict[str, Any]) -> _Previous | None:
    try:
        index = Index.load(directory)
    except CablebotError:
        return None  # nothing usable: parse and embed everything
    m = index.manifest
    # Chunks and vectors do not depend on how terms are made (BM25 is rebuilt on every build): new term
    # rules re-index the words, not the vectors. A sentence's vector depends on its text and the model
    # alone, so after a new parser or other chunk settings every file is parsed and chunked again, and
    # each sentence found before keeps its vector.
    if m.get("model") != embedder.name or m.get("dimension") != embedder.dim:
        return None
    if _without(m.get("chunker"), "terms") != _without(chunker, "terms"):
        return _Previous(index, {}, same_chunks=False)
    known = {}
    try:
        for doc, size, mtime_ns in index.documents.files():
            known[doc.path] = Known(size, mtime_ns, doc)
    except DamagedFile:
        return None
    return _Previous(index, known, same_chunks=True)


def _without(chunker: object, *keys: str) -> object:
    return {k: v for k, v in chunker.items() if k not in keys} if isinstance(chunker, dict) else chunker


def indexed_document(directory: Path, doc_id: str) -> Document | None:
    """The document `doc_id` of the index in `directory`, if it has one that reads (its document store alone:
    neither vectors nor BM25 are opened)."""
    try:
        files = Index.read_manifest(directory).get("files")
        name = files.get("documents") if isinstance(files, dict) else None
        return DocumentStore(directory / name).get(doc_id) if _safe_name(name) else None
    except CablebotError:
        return None


def digest(path: Path) -> str:
    """A fast content hash of a file (xxh3, 128 bits), read in blocks: about 10 GB/s from the page cache."""
    import xxhash

    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def _check(directory: Path, manifest: dict[str, Any]) -> None:
    """Every data file has the size the manifest recorded, and those up to CHECK_AT_LOAD its content hash,
    or the index is not used."""
    checksums = manifest.get("checksums")
    if not isinstance(checksums, dict) or not all(map(_safe_name, checksums)):
        raise DamagedFile(directory / MANIFEST, "its list of checksums is damaged")
    for name, (size, expected) in checksums.items():
        path = directory / name
        try:
            actual = path.stat().st_size
        except OSError as e:
            raise DamagedFile(path, e.strerror or e) from e
        if actual != size:
            raise DamagedFile(path, f"{actual} bytes, the manifest recorded {size}")
        if size > CHECK_AT_LOAD:
            continue
        try:
            same = digest(path) == expected
        except OSError as e:  # vanished since: a rebuild swapped generations (Index.load reads again)
            raise DamagedFile(path, e.strerror or e) from e
        if not same:
            raise DamagedFile(path, "its content changed since it was written (checksum mismatch)")


def _safe_name(name: object) -> bool:
    """A file name a manifest may hold: in the index directory (or one folder down), nowhere else."""
    parts = name.split("/") if isinstance(name, str) else []
    return 0 < len(parts) <= 2 and all(part not in ("", ".", "..") and "\\" not in part for part in parts)


def _file_names(files: dict[str, str]) -> list[str]:
    """Every file (or folder) name of one generation."""
    names = list(files.values())
    for key in ("chunks", "documents"):
        names.append(files[key].removesuffix(".jsonl") + ".rows.npy")
    names.append(files["documents"].removesuffix(".jsonl") + ".table.npz")
    if files["vectors"].endswith(".faiss"):
        names.append(where_name(files["vectors"]))
    return names


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in `path`, or {} when it is missing, unreadable or not an object (for rebuilds,
    which start from what an earlier index recorded, if anything; `Index.load` is the strict reader)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _names(record: dict[str, Any], retired: bool = False) -> list[str]:
    """The data files a manifest or journal names (with the generation it retired, if `retired`)."""
    files = record.get("files", {})
    try:
        names = _file_names(files) if isinstance(files, dict) else list(files)
        if retired:
            names += list(record.get("retired", []))
    except (KeyError, TypeError):
        return []
    return [n for n in names if _safe_name(n) and "/" not in n and n not in (MANIFEST, JOURNAL)]


def _foreign(directory: Path) -> list[str]:
    """Files of `directory` that are neither an index's nor a README or .gitkeep, sorted."""
    return sorted(p.name for p in directory.iterdir() if p.name not in ("README.md", ".gitkeep", LOCK))


def claim(directory: Path) -> None:
    """Refuse to write into a directory that holds files cablebot did not write.

    A directory is cablebot's when it is new, empty (a README or .gitkeep
    aside), or holds a manifest or build journal: only the files those name
    are ever deleted, and anything else in it is left alone.
    """
    if not directory.exists():
        return
    if not directory.is_dir():
        raise CablebotError(f"{directory} is a file, not an index directory")
    if not (directory / MANIFEST).exists() and not (directory / JOURNAL).exists():
        others = _foreign(directory)
        if others:
            raise CablebotError(
                f"{directory} holds files cablebot did not write (e.g. {others[0]}) and no index; "
                "choose a new or empty directory for the index"
            )
