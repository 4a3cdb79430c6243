"""Record files read by row, never loaded whole: the chunk store and the document store.

A store is two plain files: `<name>.jsonl`, one JSON object a line (readable
with any tool), and `<name>.rows.npy`, each line's byte offset and xxh3-64
hash. Opening one maps both files; reading a row parses that one line and
checks its hash. So an index of millions of chunks opens in milliseconds and
costs memory only for the pages read, and a damaged record is caught when it
is read, however large the file.
"""

from __future__ import annotations

import ctypes
import functools
import json
import mmap
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

from cablebot.documents import Document
from cablebot.errors import CablebotError

ROW = np.dtype([("start", "<i8"), ("hash", "<u8")])

T = TypeVar("T")


class DamagedFile(CablebotError):
    """An index file that cannot be read, or a record whose bytes are not the ones written (found on load,
    or on reading the record: the error reaches the user as one line either way)."""

    def __init__(self, path: Path, cause: object) -> None:
        super().__init__(f"index file {path} is unreadable ({cause}); rebuild it with: cablebot index")
        self.path = path
        self.cause = cause


def rows_path(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(".jsonl") + ".rows.npy")


def write_records(path: Path, records: Iterable[dict[str, Any]]) -> int:
    """Write `records` to `path` and its row file (both fsynced); returns how many."""
    import xxhash

    starts: list[int] = [0]
    hashes: list[int] = []
    with open(path, "wb") as f:
        for record in records:
            line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
            f.write(line)
            starts.append(starts[-1] + len(line))
            hashes.append(xxhash.xxh3_64_intdigest(line))
        f.flush()
        os.fsync(f.fileno())
    rows = np.zeros(len(starts), dtype=ROW)
    rows["start"] = starts
    rows["hash"][:-1] = hashes
    save_array(rows_path(path), rows)
    return len(hashes)


def save_array(path: Path, array: np.ndarray) -> None:
    """One array as a .npy file (memory-mappable), fsynced."""
    with open(path, "wb") as f:
        np.save(f, array, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())


def load_array(path: Path) -> np.ndarray:
    """A .npy file, memory-mapped; a DamagedFile when it cannot be read.

    A plain ndarray view of the mapping, not np.memmap: memmap's Python-level
    indexing took 8 µs a row lookup against 1.3 µs, and rows are looked up one
    at a time (a record's offset and checksum, a chunk's sentences).
    """
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False).view(np.ndarray)
    except Exception as e:  # a truncated or altered .npy fails in many ways (ValueError, OSError, EOFError)
        raise DamagedFile(path, e) from e


def read_by_row(data: mmap.mmap | np.ndarray | bytes) -> None:
    """Tell the kernel that `data`, a memory-mapped file, is now read a row at a time, not scanned.

    On a page fault Linux reads ahead around it (8 MB on this machine's disk):
    right for a file read through, wasted on one row. From a cold page cache,
    reading 38 chunk records read 104 MB this way. Advice only: on a system
    without madvise nothing changes.
    """
    if isinstance(data, mmap.mmap) and hasattr(mmap, "MADV_RANDOM"):
        data.madvise(mmap.MADV_RANDOM)
    elif isinstance(data, np.ndarray) and data.nbytes and hasattr(mmap, "MADV_RANDOM"):
        madvise(data.ctypes.data, data.nbytes, mmap.MADV_RANDOM)


def madvise(address: int, length: int, advice: int) -> None:
    """madvise(2) on the pages holding bytes [address, address + length) of a memory-mapped file."""
    call = _libc_madvise()
    if call is not None:
        start = address - address % mmap.PAGESIZE  # it takes whole pages
        call(start, length + address - start, advice)  # advice: a refusal changes no result


@functools.cache
def _libc_madvise() -> Any:
    try:
        call = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, TypeError, AttributeError):  # no C library to load by name (Windows)
        return None
    call.argtypes, call.restype = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int], ctypes.c_int
    return call


class Records(Sequence[T], Generic[T]):
    """The records of a store, as `make(record dict)`, read on demand."""

    def __init__(self, path: Path, make: Callable[[dict[str, Any]], T]) -> None:
        self.path = path
        self._make = make
        self._rows = load_array(rows_path(path))
        if self._rows.dtype != ROW or self._rows.ndim != 1 or len(self._rows) == 0:
            raise DamagedFile(rows_path(path), "not a row file")
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                self._data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        except OSError as e:
            raise DamagedFile(path, e.strerror or e) from e
        if int(self._rows["start"][-1]) != size:
            raise DamagedFile(path, f"{size} bytes, its row file says {int(self._rows['start'][-1])}")

    def __len__(self) -> int:
        return len(self._rows) - 1

    def __getitem__(self, row: int) -> T:  # type: ignore[override]  (rows one at a time; no slices)
        if row < 0:
            row += len(self)
        if not 0 <= row < len(self):
            raise IndexError(row)
        try:
            return self._make(self.raw(row))
        except TypeError as e:
            raise DamagedFile(self.path, f"record {row}: {e}") from e

    def raw(self, row: int) -> dict[str, Any]:
        """Record `row` as written, its checksum checked."""
        import xxhash

        start, end = int(self._rows["start"][row]), int(self._rows["start"][row + 1])
        line = self._data[start:end]
        if xxhash.xxh3_64_intdigest(line) != int(self._rows["hash"][row]):
            raise DamagedFile(self.path, f"record {row} changed since it was written (checksum mismatch)")
        try:
            record = json.loads(line)
        except ValueError as e:
            raise DamagedFile(self.path, f"record {row}: {e}") from e
        if not isinstance(record, dict):
            raise DamagedFile(self.path, f"record {row} is not a JSON object")
        return record

    def __iter__(self) -> Iterator[T]:
        for row in range(len(self)):
            yield self[row]

    def read_by_row(self) -> None:
        """Records are read one at a time from now on (see `read_by_row`)."""
        read_by_row(self._data)
        read_by_row(self._rows)


class DocumentStore(Mapping[str, Document]):
    """Documents by id, each read from its record when asked for.

    Beside the records, a small table is loaded whole (a few dozen bytes a
    document): the ids, sorted, for lookups; each document's first chunk row
    (its chunks are contiguous); and the columns filters test (origin,
    classification, date), so a filter is a few array operations, never a
    loop over documents.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: Records[Document] = Records(path, _document)
        table = table_path(path)
        try:
            with np.load(table, allow_pickle=False) as z:
                self.table = {key: z[key] for key in TABLE}
        except Exception as e:  # a truncated or altered .npz fails in many ways (zipfile, numpy, KeyError)
            raise DamagedFile(table, e) from e
        self.ids, self.order, self.chunk_start = self.table["ids"], self.table["order"], self.table["chunk_start"]
        if not len(self.ids) == len(self.order) == len(self.chunk_start) - 1 == len(self.records):
            raise DamagedFile(table, f"does not match the {len(self.records)} documents")

    def row(self, doc_id: str) -> int | None:
        """The record row of a document id, or None."""
        key = doc_id.encode()
        i = int(np.searchsorted(self.ids, key))
        return int(self.order[i]) if i < len(self.ids) and self.ids[i] == key else None

    def __getitem__(self, doc_id: str) -> Document:
        row = self.row(doc_id)
        if row is None:
            raise KeyError(doc_id)
        return self.records[row]

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, str) and self.row(doc_id) is not None

    def __iter__(self) -> Iterator[str]:
        return (i.decode() for i in self.ids.tolist())

    def __len__(self) -> int:
        return len(self.ids)

    def chunk_rows(self, row: int) -> range:
        """The chunk rows of the document in record row `row`."""
        return range(int(self.chunk_start[row]), int(self.chunk_start[row + 1]))

    def files(self) -> Iterator[tuple[Document, int, int]]:
        """Each document with its file's size and mtime_ns as recorded (one read of each record)."""
        for row in range(len(self.records)):
            record = self.records.raw(row)
            yield _document(record), record.get("size", -1), record.get("mtime_ns", -1)


TABLE = ("ids", "order", "chunk_start", "origin", "origins", "classification", "classifications", "date")


def table_path(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(".jsonl") + ".table.npz")


def _document(record: dict[str, Any]) -> Document:
    record = {k: v for k, v in record.items() if k not in ("size", "mtime_ns")}
    return Document(**record)


def write_documents(
    path: Path, documents: Sequence[Document], files: Sequence[dict[str, Any]], chunks: Sequence[int]
) -> None:
    """The document store: records (without paragraphs: the chunk store holds the text) with their files'
    size and mtime, and the table; `chunks` is how many chunks each document has, in order."""
    write_records(
        path,
        (asdict(d) | {"paragraphs": [], "labels": []} | f for d, f in zip(documents, files, strict=True)),
    )
    ids = np.array([d.id.encode() for d in documents], dtype=bytes)
    order = np.argsort(ids, kind="stable")
    columns = {}
    for name, values in (
        ("origin", [d.metadata.get("origin", "") for d in documents]),
        ("classification", [d.metadata.get("classification", "").upper() for d in documents]),
    ):
        unique, codes = np.unique(np.array(values, dtype=str), return_inverse=True)
        columns[name], columns[f"{name}s"] = codes.astype(np.int32), unique
    with open(table_path(path), "wb") as f:
        np.savez(
            f,
            ids=ids[order],
            order=order.astype(np.int64),
            chunk_start=np.concatenate([[0], np.cumsum(chunks, dtype=np.int64)]),
            date=np.array([d.date.encode() for d in documents], dtype="S10"),
            **columns,
        )
        f.flush()
        os.fsync(f.fileno())
