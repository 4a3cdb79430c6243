"""Where the sentence vectors live: a FAISS file in the index directory (the default), or Milvus.

Both backends answer the same calls: `search` (the nearest vectors, among
allowed ids if given), `reconstruct` (vectors by id, to score each sentence
of a retrieved passage), `ntotal` and `save`. Everything else of an index
(chunks, documents, BM25, filters) stays in the index directory either way.

FAISS serves one machine up to the whole Cablegate release (bench/scale.py).
Milvus (`[index] backend = "milvus"`) is for a collection that outgrows one
machine or is shared by many: `uri` names the server; left empty, Milvus Lite
keeps the vectors in a folder of the index directory (one process at a time:
for tests and trials).
"""

from __future__ import annotations

import contextlib
import json
import math
import mmap
import os
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from cablebot.errors import CablebotError
from cablebot.store import DamagedFile, load_array, madvise, read_by_row, save_array

APPROXIMATE_ABOVE = 200_000  # sentence vectors; more get an approximate (IVF) FAISS index
MAX_CELLS = 16_384  # IVF cells at most
TWO_LEVEL_ABOVE = 1_024  # cells; more are trained by two-level k-means
MIN_SCANNED = 50_000  # vectors a question scans at least in an inverted file (see cells_to_search)
SPLIT_ABOVE = 20_000  # vectors per core at least, for an exact search to be split across cores
ADD_BLOCK = 65_536  # vectors converted to fp32 and added to an index at a time
BACKENDS = ("faiss", "milvus")


def half(matrix: np.ndarray) -> np.ndarray:
    """`matrix` in fp16, rounded by FAISS's own encoder: an index of these is the same, bit for bit, as one of the
    fp32 vectors (NumPy rounds a few values the other way), in half the memory while a build holds them all."""
    import faiss

    quantizer = faiss.ScalarQuantizer(matrix.shape[1], faiss.ScalarQuantizer.QT_fp16)
    return quantizer.compute_codes(np.ascontiguousarray(matrix, dtype=np.float32)).view(np.float16)


class FaissVectors:
    """A FAISS index of unit vectors (inner product), memory-mapped when opened."""

    def __init__(self, index: Any, kind: str, nprobe: int = 0, where: np.ndarray | None = None) -> None:
        self.index, self.kind = index, kind
        self._where = where  # an inverted file's vector -> (cell << 32 | offset), when not FAISS's own map
        self.nprobe = nprobe or cells_to_search(getattr(index, "nlist", 0), index.ntotal)
        self._mapped: _MappedCells | None = None
        self._split_pool: Any = None  # threads scanning parts of an exact index (see _search_split)

    @classmethod
    def new(cls, n: int, sample: np.ndarray, approximate_above: int = APPROXIMATE_ABOVE) -> FaissVectors:
        """An empty index for `n` vectors, trained on `sample` if it needs training.

        Exact search over fp16 vectors (half the memory of fp32, the same
        rankings) up to `approximate_above` vectors; above, an inverted file:
        k-means cells of about a thousand fp16 vectors, of which a few are
        searched per question, read memory-mapped (bench/scale.py: 14 million
        sentence vectors, the whole Cablegate release, in 10.8 GB).
        """
        import faiss

        faiss.omp_set_num_threads(os.cpu_count() or 1)  # training and adding use every core
        dim = sample.shape[1]
        if n <= approximate_above:
            return cls(faiss.index_factory(dim, "SQfp16", faiss.METRIC_INNER_PRODUCT), "SQfp16")
        # 4 sqrt(n) cells (FAISS's rule of thumb), found through a small HNSW graph of their centres, so that
        # adding a vector does not compare it with every centre. fp16 rather than 8-bit codes: searching
        # more cells of 8-bit codes never found more than 0.97 of the exact top 10.
        nlist = max(1, min(MAX_CELLS, int(4 * np.sqrt(n))))
        kind = f"IVF{nlist}_HNSW32,SQfp16"
        index = faiss.index_factory(dim, kind, faiss.METRIC_INNER_PRODUCT)
        if len(sample) > 64 * nlist:
            sample = sample[np.random.default_rng(0).choice(len(sample), 64 * nlist, replace=False)]
        sample = np.ascontiguousarray(sample, dtype=np.float32)
        if nlist > TWO_LEVEL_ABOVE:
            # k-means over every centre costs samples x cells per pass: over an hour for 14,804 cells and a
            # million samples on two cores. Two levels (sqrt(cells) groups, then cells within each) took 64 s.
            from faiss.contrib.clustering import two_level_clustering

            centres, _ = two_level_clustering(sample, int(np.sqrt(nlist)), nlist, spherical=True, seed=1)
            faiss.extract_index_ivf(index).quantizer.add(centres)  # trained: train() keeps these cells
        index.train(sample)
        # Where each vector is (for reconstruct: re-scoring and incremental rebuilds), kept up by every add
        # and saved beside the file (see `save`): built at load instead, it reads every cell of the file.
        index.make_direct_map()
        return cls(index, kind, cells_to_search(nlist, n))

    @classmethod
    def of(cls, matrix: np.ndarray, approximate_above: int = APPROXIMATE_ABOVE) -> FaissVectors:
        """An index of `matrix` (fp16 or fp32), added a block at a time: never a second copy of it all in fp32."""
        vectors = cls.new(len(matrix), matrix, approximate_above)
        for start in range(0, len(matrix), ADD_BLOCK):
            vectors.add(matrix[start : start + ADD_BLOCK])
        return vectors

    @classmethod
    def open(cls, path: Path, settings: dict[str, Any]) -> FaissVectors:
        import faiss

        faiss.omp_set_num_threads(1)  # one question at a time: waking OpenMP threads costs more than they save
        kind = str(settings.get("kind", ""))
        if not path.is_file():
            raise DamagedFile(path, "missing")
        try:
            # Indexes are memory-mapped: pages load as searches touch them. An exact index maps its codes
            # (a loaded index is only searched): 3 ms to open the 1,295 cables' 57 MB, not 53 ms to read them.
            approximate = kind.startswith("IVF")
            index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP if approximate else faiss.IO_FLAG_MMAP_IFC)
            beside = path.with_name(where_name(path.name))
            where = load_array(beside) if approximate and beside.is_file() else None
            if approximate and where is None and index.direct_map.no():  # written before the map was saved at all
                index.make_direct_map()
        except RuntimeError as e:
            raise DamagedFile(path, str(e).strip().splitlines()[-1] if str(e).strip() else e) from e
        if where is not None and len(where) != index.ntotal:
            raise DamagedFile(beside, f"does not match the {index.ntotal} vectors")
        return cls(index, kind, int(settings.get("nprobe", 0)), where)

    def read_by_row(self) -> None:
        """Questions from now on, not a rebuild reading every vector: a memory-mapped inverted file is
        read by cell, and the cells a search probes are read ahead together, not page by page as the scan
        reaches them. Linux reads 8 MB around each page fault here: from a cold page cache a search of
        115 cells of ~0.7 MB read 520 MB and looking up 300 vectors by id 1.9 GB (2 s); advised, 104 MB
        and 10 MB."""
        self._mapped = _MappedCells.of(self.index)
        if self._where is not None:
            read_by_row(self._where)

    def settings(self) -> dict[str, Any]:
        """What the manifest records to open these vectors again."""
        return {"backend": "faiss", "kind": self.kind, "nprobe": self.nprobe}

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def d(self) -> int:
        return int(self.index.d)

    def add(self, matrix: np.ndarray) -> None:
        self.index.add(np.ascontiguousarray(matrix, dtype=np.float32))

    def search(
        self, query: np.ndarray, n: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Ids and scores of the `n` nearest vectors (among `allowed` ids), best first."""
        import faiss

        selector = faiss.IDSelectorBatch(allowed.astype("int64")) if allowed is not None else None
        x = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        if self.kind.startswith("IVF"):
            # The cells are found in an HNSW graph of their centres: exploring it twice as wide as the cells
            # wanted finds the right ones (in a trial, recall@10 0.98 instead of 0.86 at 256 of 14,805 cells).
            quantizer = faiss.SearchParametersHNSW(efSearch=2 * self.nprobe) if "_HNSW" in self.kind else None
            params = faiss.SearchParametersIVF(sel=selector, nprobe=self.nprobe, quantizer_params=quantizer)
            if self._mapped:
                scores, ids = self._search_mapped(x, n, params, self._mapped)
            else:
                scores, ids = self.index.search(x, n, params=params)
        elif self._parts() > 1:
            scores, ids = self._search_split(x, n, selector)
        else:
            params = faiss.SearchParameters(sel=selector) if selector is not None else None
            scores, ids = self.index.search(x, n, params=params)
        found = ids[0] >= 0
        return ids[0][found], scores[0][found]

    def _parts(self) -> int:
        """Into how many ranges an exact search is split, one per core: FAISS scans a single question's
        vectors on one core (it parallelises over questions), and a question is all a user asks at a time."""
        return max(1, min(os.cpu_count() or 1, self.ntotal // SPLIT_ABOVE))

    def _search_split(self, x: np.ndarray, n: int, selector: Any) -> tuple[np.ndarray, np.ndarray]:
        """Exact search of one question, its vectors scanned in ranges on all cores at once (FAISS releases
        the GIL): over the 1,295 cables' 73,689 vectors on 2 cores, 5.5 ms instead of 8.1 ms."""
        import faiss

        parts = self._parts()
        if self._split_pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._split_pool = ThreadPoolExecutor(parts - 1, thread_name_prefix="cablebot-faiss")
        cuts = np.linspace(0, self.ntotal, parts + 1).astype(int).tolist()
        ranges = [faiss.IDSelectorRange(a, b) for a, b in pairwise(cuts)]
        chosen = [r if selector is None else faiss.IDSelectorAnd(r, selector) for r in ranges]
        params = [faiss.SearchParameters(sel=sel) for sel in chosen]
        futures = [self._split_pool.submit(self.index.search, x, n, params=p) for p in params[1:]]
        results = [self.index.search(x, n, params=params[0]), *(f.result() for f in futures)]
        scores = np.concatenate([s[0] for s, _ in results])
        ids = np.concatenate([i[0] for _, i in results])
        best = np.lexsort((ids, -scores))[:n]  # best first; equal scores in id order
        return scores[best][None], ids[best][None]

    def _search_mapped(
        self, x: np.ndarray, n: int, params: Any, mapped: _MappedCells
    ) -> tuple[np.ndarray, np.ndarray]:
        """FAISS's search of a memory-mapped inverted file, (scores, ids) of one query `x`, done in two steps
        so that the cells to scan are read ahead together, not page by page as the scan reaches them."""
        import faiss

        cell_scores, cells = self.index.quantizer.search(x, self.nprobe, params=params.quantizer_params)
        mapped.read_ahead(cells[0])
        scores, ids = np.empty((1, n), dtype=np.float32), np.empty((1, n), dtype=np.int64)
        self.index.search_preassigned_c(
            1, faiss.swig_ptr(x), n, faiss.swig_ptr(cells), faiss.swig_ptr(cell_scores),
            faiss.swig_ptr(scores), faiss.swig_ptr(ids), False, params,
        )  # fmt: skip
        return scores, ids

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """The vectors `ids` (as stored: fp16 precision)."""
        import faiss

        ids = np.asarray(ids, dtype="int64")
        if self._where is None:
            return self.index.reconstruct_batch(ids)
        out = np.empty((len(ids), self.d), dtype=np.float32)
        for i, where in enumerate(self._where[ids].tolist()):
            self.index.reconstruct_from_offset(where >> 32, where & 0xFFFFFFFF, faiss.swig_ptr(out[i]))
        return out

    def save(self, path: Path) -> None:
        """The FAISS file and, beside it, an inverted file's map of where each vector is.

        FAISS would read a map in its file whole at every load (8 bytes a
        vector: 110 MB at 13.7 million); beside it, memory-mapped, a question
        reads the few entries it needs. A flat index has no map (an empty one).
        """
        import faiss

        where = np.zeros(0, dtype=np.int64) if self._where is None else np.asarray(self._where)
        if self._where is None and self.kind.startswith("IVF") and not self.index.direct_map.no():
            where = faiss.vector_to_array(self.index.direct_map.array).astype(np.int64)
            self.index.set_direct_map_type(faiss.DirectMap.NoMap)
            self._where = where
        faiss.write_index(self.index, str(path))  # straight to the file: no copy in memory
        with open(path, "rb") as f:
            os.fsync(f.fileno())
        save_array(path.with_name(where_name(path.name)), where)


def cells_to_search(nlist: int, n: int) -> int:
    """Cells of an inverted file of `n` vectors in `nlist` cells that a question searches.

    1 in 128 cells, and at least MIN_SCANNED vectors: bench/scale.py measured
    recall@10 0.960 at 13.7 million vectors with 115 of 14,804 cells (17 ms),
    but at 810,000 vectors 1 cell in 128 (32 of 3,600, 7,000 vectors) found
    only 0.832, and 223 cells (50,000 vectors) 0.960 in 13 ms.
    """
    return min(nlist, max(32, nlist // 128, math.ceil(MIN_SCANNED * nlist / max(n, 1)))) if nlist else 32


def where_name(name: str) -> str:
    """The file beside FAISS file `name` that maps each vector to where it is (see `FaissVectors.save`)."""
    return name.removesuffix(".faiss") + ".where.npy"


class _MappedCells:
    """Read-ahead advice for an inverted file FAISS memory-maps (see `FaissVectors.read_by_row`)."""

    def __init__(self, lists: Any) -> None:
        self.lists = lists
        madvise(int(lists.ptr), int(lists.totsize), mmap.MADV_RANDOM)

    @classmethod
    def of(cls, index: Any) -> _MappedCells | None:
        """Advice for `index` if its cells are memory-mapped and this system takes madvise, else None."""
        import faiss

        if not hasattr(index, "invlists") or not hasattr(mmap, "MADV_WILLNEED"):
            return None
        lists = faiss.downcast_InvertedLists(index.invlists)
        return cls(lists) if isinstance(lists, faiss.OnDiskInvertedLists) and int(lists.totsize) else None

    def read_ahead(self, cells: np.ndarray) -> None:
        """Ask the kernel for the codes and ids of `cells` at once (it reads them while the scan starts)."""
        for cell in cells.tolist():
            size = self.lists.list_size(cell) if cell >= 0 else 0
            if size:
                madvise(int(self.lists.get_codes(cell)), size * self.lists.code_size, mmap.MADV_WILLNEED)
                madvise(int(self.lists.get_ids(cell)), size * 8, mmap.MADV_WILLNEED)


class MilvusVectors:
    """A Milvus collection of (id, vector). Vectors given before `save` are inserted by it."""

    BATCH = 2_000  # vectors a request inserts
    MAX_LIMIT = 16_384  # the most results Milvus returns for one search

    def __init__(self, uri: str, collection: str, dim: int, client: Any = None, pending: Any = None) -> None:
        self.uri, self.collection, self.dim = uri, collection, dim
        self._client = client
        self._pending = pending  # vectors to insert on save
        self._ntotal = 0 if pending is None else len(pending)

    @classmethod
    def of(cls, matrix: np.ndarray, uri: str, collection: str) -> MilvusVectors:
        return cls(uri, collection, matrix.shape[1], pending=matrix)

    @classmethod
    def open(cls, path: Path, settings: dict[str, Any]) -> MilvusVectors:
        """The collection the manifest names; Milvus Lite's folder is `path` when no uri is recorded."""
        uri = str(settings.get("uri") or path)
        collection = str(settings.get("collection", ""))
        client = _client(uri)
        try:
            if not client.has_collection(collection):
                raise DamagedFile(path, f"Milvus at {uri} has no collection {collection}")
            client.load_collection(collection)
            stats = client.get_collection_stats(collection)
        except DamagedFile:
            raise
        except Exception as e:  # pymilvus raises MilvusException and gRPC errors
            raise DamagedFile(path, f"Milvus at {uri}: {e}") from e
        vectors = cls(uri, collection, int(settings.get("dimension", 0)), client)
        vectors._ntotal = int(stats.get("row_count", 0))
        return vectors

    def file_name(self, generation: int) -> str:
        """Milvus Lite's folder in the index directory, or a file naming the server and collection."""
        return f"vectors.{generation}.milvus.{'db' if _is_lite(self.uri) else 'json'}"

    def settings(self) -> dict[str, Any]:
        return {"backend": "milvus", "uri": "" if _is_lite(self.uri) else self.uri, "collection": self.collection}

    def read_by_row(self) -> None:
        """Nothing to advise: the server holds the vectors."""

    @property
    def ntotal(self) -> int:
        return self._ntotal

    @property
    def d(self) -> int:
        return self.dim

    def save(self, path: Path) -> None:
        """Create the collection (Milvus Lite: in the folder `path`) and insert the vectors."""
        from pymilvus import DataType

        uri = str(path) if _is_lite(self.uri) else self.uri
        client = _client(uri)
        if client.has_collection(self.collection):
            client.drop_collection(self.collection)
        schema = client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        index = client.prepare_index_params()
        index.add_index("vector", index_type="AUTOINDEX", metric_type="IP")
        client.create_collection(self.collection, schema=schema, index_params=index)
        pending = self._pending if self._pending is not None else np.zeros((0, self.dim), np.float32)
        for start in range(0, len(pending), self.BATCH):
            batch = pending[start : start + self.BATCH]
            rows = [{"id": start + i, "vector": v.tolist()} for i, v in enumerate(batch)]
            client.insert(self.collection, rows)
        client.flush(self.collection)  # searches see only flushed vectors
        if not _is_lite(self.uri):
            path.write_text(json.dumps({"uri": self.uri, "collection": self.collection}), encoding="utf-8")
        client.close()
        self._pending = None

    def search(
        self, query: np.ndarray, n: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Ids and scores of the `n` nearest vectors (among `allowed` ids), best first."""
        expression = f"id in {[int(i) for i in allowed]}" if allowed is not None else ""
        found = self._client.search(
            self.collection,
            [np.asarray(query, dtype=np.float32).tolist()],
            limit=min(n, self.MAX_LIMIT, max(self._ntotal, 1)),
            filter=expression,
            search_params={"metric_type": "IP"},
        )[0]
        ids = np.array([hit["id"] for hit in found], dtype=np.int64)
        return ids, np.array([hit["distance"] for hit in found], dtype=np.float32)

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        ids = [int(i) for i in ids]
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        for start in range(0, len(ids), self.MAX_LIMIT):
            part = ids[start : start + self.MAX_LIMIT]
            got = {
                r["id"]: r["vector"] for r in self._client.get(self.collection, ids=part, output_fields=["vector"])
            }
            out[start : start + len(part)] = [got[i] for i in part]
        return out


def _is_lite(uri: str) -> bool:
    return not uri.startswith(("http://", "https://", "tcp://", "unix:"))


def _client(uri: str) -> Any:
    try:
        from pymilvus import MilvusClient
    except ImportError as e:
        raise CablebotError("the Milvus backend needs pymilvus: pip install 'cablebot[milvus]'") from e
    try:
        return MilvusClient(uri, token=os.environ.get("MILVUS_TOKEN", ""))
    except Exception as e:  # a server that is down, or Milvus Lite's folder open in another process
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CablebotError(f"cannot open Milvus at {uri} ({why}); is another cablebot using it?") from e


def open_vectors(path: Path, settings: dict[str, Any]) -> FaissVectors | MilvusVectors:
    """The vectors a manifest describes (`settings`), stored at `path` in the index directory."""
    if settings.get("backend") == "milvus":
        if path.is_file():  # a server: the file names it
            try:
                pointer = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise DamagedFile(path, e) from e
            settings = settings | {"uri": pointer.get("uri"), "collection": pointer.get("collection")}
        return MilvusVectors.open(path, settings)
    return FaissVectors.open(path, settings)


def drop(path: Path) -> None:
    """Before a generation's vectors file goes: a Milvus server's collection it names goes too."""
    if path.is_file() and path.name.endswith(".milvus.json"):
        with contextlib.suppress(Exception):  # best effort: a server that is gone has nothing left to drop
            pointer = json.loads(path.read_text(encoding="utf-8"))
            _client(pointer["uri"]).drop_collection(pointer["collection"])
