"""Documents: reading files (.txt, .md, .html) into clean, numbered paragraphs.

Everything quoted later comes from `Document.paragraphs`, so this is where page
chrome, boilerplate and broken lines are dealt with, once.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

from cablebot.cables import looks_like_cable, parse_cable

SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm")
# Bump when the same files parse into other paragraphs. The manifest records it; files are parsed again on
# the next build, and sentences that did not change keep their vectors.
PARSER_VERSION = 1
MAX_BYTES = 10_000_000  # files larger than this are skipped ([index] max_file_mb)

# Paragraphs that are site furniture, never content (matched on short paragraphs only).
_BOILERPLATE = re.compile(
    r"^(subscribe\b|sign up\b|get more news\b|follow us\b|share this\b|click here\b|read more\b"
    r"|advertisement\b|related( articles| posts)?:|copyright\b|©|all rights reserved"
    r"|.*\b(newsletter|in your inbox)\b)",
    re.IGNORECASE,
)
# A paragraph ending like this is complete; anything else continues on the next one.
_COMPLETE_END = re.compile(r"""[.!?…:"”’')\]]\s*$""")


@dataclass(frozen=True)
class Document:
    """One source a citation can name: an article, a page, a cable.

    `labels` names each paragraph in citations ("¶5" of a cable); by default
    paragraphs are numbered from 1. `paragraphs` and `labels` are empty for
    documents read back from an index (the chunk store holds their text).
    Cables carry `reference_id`, `created`, `classification`, `origin`,
    `tags` and `subject` in `metadata`.
    """

    id: str
    title: str
    url: str | None = None
    path: str = ""
    sha256: str = ""
    paragraphs: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
    labels: tuple[str, ...] = ()

    def label(self, index: int) -> str:
        """Citation label of paragraph `index` (0-based)."""
        return self.labels[index] if index < len(self.labels) else f"¶{index + 1}"

    @property
    def is_cable(self) -> bool:
        return "reference_id" in self.metadata

    @property
    def date(self) -> str:
        """ISO date (YYYY-MM-DD) when known, for filters and citations."""
        return (self.metadata.get("created") or self.metadata.get("date") or "")[:10]

    @property
    def text(self) -> str:
        """The document body as chunked: paragraphs joined by blank lines."""
        return "\n\n".join(self.paragraphs)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "document"


def iter_files(
    paths: Iterable[Path],
    warn: Callable[[str], None],
    follow_links: bool = False,
    max_bytes: int = MAX_BYTES,
    note: Callable[[str], None] | None = None,
) -> Iterator[Path]:
    """Files to index under `paths`, sorted; what is skipped gets a warning naming it.

    Symbolic links inside a folder are not followed unless `follow_links`: an
    unpacked archive must not make cablebot read (and quote) files outside the
    folder it was given. FIFOs, devices and sockets are never read, nor files
    over `max_bytes` (a 50 MB log would take half an hour and gigabytes). A
    folder's files of other types (PDFs, Word files) get one line to `note`
    (else `warn`), so that nobody takes a collection for indexed whole when
    part of it was never read.
    """
    for path in paths:
        if path.is_dir():
            other: dict[str, int] = {}  # suffix -> files of it not read
            seen: set[str] = set()  # real paths of folders walked: followed links must not loop
            for root, dirs, names in os.walk(path, followlinks=follow_links):
                seen.add(os.path.realpath(root))
                for name in sorted(dirs):
                    if (Path(root) / name).is_symlink() and not follow_links:
                        warn(f"skipped {Path(root) / name}: a symbolic link (index with --follow-links to follow)")
                dirs[:] = sorted(d for d in dirs if os.path.realpath(Path(root) / d) not in seen)
                for name in sorted(names):
                    file = Path(root) / name
                    if file.suffix.lower() in SUFFIXES or file.is_symlink():
                        yield from _regular(file, warn, follow_links, max_bytes)
                    elif not name.startswith("."):  # hidden files (.DS_Store, .gitignore) are no documents
                        suffix = file.suffix.lower() or "without a suffix"
                        other[suffix] = other.get(suffix, 0) + 1
            if other:
                counted = sorted(other.items(), key=lambda kv: (-kv[1], kv[0]))
                kinds = ", ".join(f"{n} {suffix}" for suffix, n in counted)
                (note or warn)(
                    f"not read under {path}: {sum(other.values())} files of other types ({kinds}); "
                    f"cablebot reads {', '.join(SUFFIXES)}"
                )
        elif path.exists():
            yield from _regular(path, warn, True, max_bytes)  # a file named on the command line
        else:
            warn(f"skipped {path}: no such file or directory")


def _regular(path: Path, warn: Callable[[str], None], follow_links: bool, max_bytes: int) -> Iterator[Path]:
    if path.is_symlink() and not follow_links:
        warn(f"skipped {path}: a symbolic link (index with --follow-links to follow)")
        return
    try:
        st = path.stat()
    except OSError as e:  # a dangling link or a loop
        warn(f"skipped {path}: {e.strerror or e}")
        return
    if not stat.S_ISREG(st.st_mode):
        warn(f"skipped {path}: not a regular file")
        return
    size = st.st_size
    if size > max_bytes:
        warn(f"skipped {path}: {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit ([index] max_file_mb)")
        return
    if path.suffix.lower() in SUFFIXES:
        yield path


def decode(data: bytes, name: str, warn: Callable[[str], None]) -> str | None:
    """UTF-8 text of a file, or None (with a warning) for binary files."""
    sample = data[:8192]
    controls = sum((b < 32 and b not in (9, 10, 12, 13)) or b == 127 for b in sample)
    if b"\x00" in sample or controls > 0.05 * len(sample):  # text has hardly any control bytes
        warn(f"skipped {name}: binary file")
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        warn(f"{name}: not UTF-8; read as Windows-1252")
        return data.decode("cp1252", errors="replace")


def read_document(path: Path, warn: Callable[[str], None]) -> Document | None:
    """Parse one file; None (after a warning) when it cannot or should not be indexed."""
    try:
        data = path.read_bytes()
    except OSError as e:
        warn(f"skipped {path}: {e.strerror or e}")
        return None
    text = decode(data, str(path), warn)
    if text is None:
        return None
    return parse_document(path, text, sha256_bytes(data), warn)


def parse_document(path: Path, text: str, sha256: str, warn: Callable[[str], None]) -> Document | None:
    """A Document from a file's text: a cable when it looks like one, else an article or page."""
    suffix = path.suffix.lower()
    if looks_like_cable(text, suffix):
        meta, labelled = parse_cable(text, suffix, path.stem)
        if meta.get("subject"):  # the cable's own subject line: often what a question is about
            labelled.insert(0, ("subject", meta["subject"]))
        if not labelled:
            warn(f"skipped {path}: a cable with no text")
            return None
        if "reference_id" not in meta:
            warn(f"{path}: cable without a reference ID; using the file name")
        ref = meta.get("reference_id") or path.stem
        return Document(
            id=ref,
            title=meta.get("subject") or ref,
            path=str(path),
            sha256=sha256,
            paragraphs=tuple(p for _, p in labelled),
            labels=tuple(lb for lb, _ in labelled),
            metadata=meta,
        )
    labels: tuple[str, ...] = ()
    if suffix in (".html", ".htm"):
        meta, blocks = parse_html(text)
        paragraphs = tuple(clean_paragraphs(blocks))
    elif suffix in (".md", ".markdown"):
        meta, found, sections = parse_markdown(text, str(path), warn)
        paragraphs, labels = tuple(found), tuple(sections)
    else:
        meta, body = plain_title(text)
        paragraphs = tuple(clean_paragraphs((b, True) for b in split_blocks(body)))
    if not paragraphs:
        warn(f"skipped {path}: no text")
        return None
    title = " ".join(meta.pop("title", "").split())[:300] or path.stem.replace("-", " ").replace("_", " ")
    url = meta.pop("url", None) or None
    if url and not safe_url(url):
        warn(f"{path}: ignored the URL {url[:80]!r}: only plain http(s) addresses are cited")
        url = None
    return Document(
        id=slug(path.stem),
        title=title,
        url=url,
        path=str(path),
        sha256=sha256,
        paragraphs=paragraphs,
        metadata=meta,
        labels=labels,
    )


def safe_url(url: str | None) -> str | None:
    """`url` if it is a plain http(s) address, shown as itself wherever it is rendered, else None.

    Titles and URLs come from the documents: a crafted one must not become a
    masked link, a `javascript:` URL or markdown in a citation.
    """
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or re.search(r"[\s<>()\[\]`*|]", url):
        return None
    return url


def plain_title(text: str) -> tuple[dict[str, str], str]:
    """A plain text's title: a first line of its own, followed by a blank line, then the body."""
    m = re.match(r"\A\s*([^\n]{1,200}?)[ \t]*\r?\n[ \t]*\r?\n(?=\s*\S)", text)
    return ({"title": m.group(1).strip()}, text[m.end() :]) if m else ({}, text)


def split_blocks(text: str) -> list[str]:
    """Blank-line separated blocks, each with hard-wrapped lines joined by spaces."""
    blocks = re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n"))
    return [" ".join(line.strip() for line in b.splitlines() if line.strip()) for b in blocks if b.strip()]


def clean_paragraphs(blocks: Iterable[tuple[str, bool]]) -> Iterator[str]:
    """Drop boilerplate and join sentence fragments with their continuation.

    A block is `(text, joinable)`; headings are not joinable, so a title never
    swallows the paragraph below it.
    """
    pending = ""
    for text, joinable in blocks:
        text = re.sub(r"\s+", " ", text).strip()
        if not text or (len(text) < 120 and _BOILERPLATE.match(text)):
            continue
        if pending:
            text = f"{pending} {text}"
            pending = ""
        if joinable and not _COMPLETE_END.search(text):
            pending = text
            continue
        yield text
    if pending:
        yield pending


def parse_front_matter(text: str) -> tuple[dict[str, str] | None, str]:
    """The scalar fields of a leading YAML front matter block, and the rest of the text.

    The fields are None when the block is not valid YAML or not a mapping: a
    broken block must not become a citation's title or link.
    """
    m = re.match(r"\A---\s*\n(.*?)\n---\s*\n", text, re.DOTALL)
    if not m:
        return {}, text
    import yaml

    try:
        data = yaml.safe_load(m.group(1))
    except yaml.YAMLError:
        return None, text[m.end() :]
    if not isinstance(data, dict):
        return None, text[m.end() :]
    meta = {
        str(k).strip().lower(): " ".join(str(v).split())
        for k, v in data.items()
        if isinstance(v, str | int | float | datetime.date) and not isinstance(v, bool)
    }
    if "link" in meta and "url" not in meta:
        meta["url"] = meta.pop("link")
    return {k: v for k, v in meta.items() if v}, text[m.end() :]


def parse_markdown(
    text: str, name: str, warn: Callable[[str], None]
) -> tuple[dict[str, str], list[str], list[str]]:
    """Front matter, paragraphs, and their citation labels: headings are not paragraphs but name the
    section of the paragraphs under them ("¶3, Winter care"); a first heading with no title given is the title."""
    meta, body = parse_front_matter(text)
    if meta is None:
        warn(f"{name}: front matter is not valid YAML; its title and URL are ignored")
        meta = {}
    body = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", body)  # images
    body = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", body)  # links keep their text
    sections: list[tuple[str, list[tuple[str, bool]]]] = [("", [])]
    for block in split_blocks(body):
        heading = re.match(r"^#{1,6}\s+(.*)", block)
        if heading:
            label = re.sub(r"(\*\*|__|`|#+\s*$)", "", heading.group(1)).strip()
            if "title" not in meta:
                meta["title"] = label
                label = ""  # the document's title names no section
            sections.append((label, []))
            continue
        block = re.sub(r"(^|\s)([-*+]|\d+\.)\s+", r"\1", block)  # list markers
        block = re.sub(r"(\*\*|__|`)", "", block)
        sections[-1][1].append((block, True))
    paragraphs: list[str] = []
    labels: list[str] = []
    for section, blocks in sections:
        for paragraph in clean_paragraphs(blocks):
            paragraphs.append(paragraph)
            labels.append(f"¶{len(paragraphs)}, {section}" if section else f"¶{len(paragraphs)}")
    return meta, paragraphs, labels


class _ArticleParser(HTMLParser):
    """Collects the text blocks of a page, skipping scripts, styles and navigation."""

    SKIP: ClassVar[set[str]] = {
        "script",
        "style",
        "noscript",
        "nav",
        "header",
        "footer",
        "aside",
        "form",
        "svg",
        "button",
    }
    BLOCK: ClassVar[set[str]] = {
        "p",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "li",
        "blockquote",
        "pre",
        "div",
        "td",
        "br",
        "tr",
    }
    HEADINGS: ClassVar[set[str]] = {"h1", "h2", "h3", "h4", "h5", "h6"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.blocks: list[tuple[str, bool, bool]] = []  # text, joinable, inside <article>/<main>
        self._skip = 0
        self._main = 0
        self._heading = False
        self._title: list[str] | None = None
        self._buf: list[str] = []

    def _flush(self) -> None:
        text = " ".join("".join(self._buf).split())
        if text:
            self.blocks.append((text, not self._heading, self._main > 0))
        self._buf = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "meta":
            key = (a.get("property") or a.get("name") or "").lower()
            if key in ("og:title", "og:url", "article:published_time", "author"):
                name = {"og:title": "title", "og:url": "url", "article:published_time": "date"}.get(key, key)
                self.meta.setdefault(name, a.get("content", ""))
        elif tag == "link" and a.get("rel") == "canonical" and a.get("href"):
            self.meta.setdefault("url", a["href"])
        if tag == "title":
            self._title = []
        if tag in self.SKIP:
            self._skip += 1
        elif tag in ("article", "main"):
            self._main += 1
        if tag in self.BLOCK:
            self._flush()
            self._heading = tag in self.HEADINGS

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._title is not None:
            self.meta.setdefault("title", " ".join("".join(self._title).split()))
            self._title = None
        if tag in self.SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in ("article", "main"):
            self._main = max(0, self._main - 1)
        if tag in self.BLOCK:
            self._flush()
            self._heading = False

    def handle_data(self, data: str) -> None:
        if self._title is not None:
            self._title.append(data)
        elif not self._skip:
            self._buf.append(data)


def parse_html(text: str) -> tuple[dict[str, str], list[tuple[str, bool]]]:
    """The main text of a web page: inside <article>/<main> when the page has one."""
    parser = _ArticleParser()
    parser.feed(text)
    parser.close()
    parser._flush()
    blocks = parser.blocks
    if any(in_main for _, _, in_main in blocks):
        blocks = [b for b in blocks if b[2]]
    return parser.meta, [(t, joinable) for t, joinable, _ in blocks]


@dataclass(frozen=True)
class Known:
    """A file indexed before: unchanged size and mtime (or content) means its Document is reused."""

    size: int
    mtime_ns: int
    document: Document


@dataclass
class Loaded:
    documents: list[Document]
    skipped: int = 0  # unreadable, binary, empty or duplicate files
    failed: int = 0  # files the parser choked on


def load_documents(
    paths: Iterable[Path],
    warn: Callable[[str], None],
    known: dict[str, Known] | None = None,
    follow_links: bool = False,
    max_bytes: int = MAX_BYTES,
    excluded: Iterable[Path] = (),
) -> Loaded:
    """Every readable document under `paths`, parsing only files that changed since `known`.

    Ids are made unique when two files share a name; two cables with the same
    reference ID are one document (the first), with a warning.
    """
    known = known or {}
    loaded = Loaded([])
    docs: dict[str, Document] = {}

    def missing(message: str) -> None:
        loaded.skipped += 1
        warn(message)

    left_out = {str(p) for p in excluded}  # documents removed by id: their files stay out
    for path in iter_files(paths, missing, follow_links, max_bytes, note=warn):
        if str(path) in left_out:
            continue
        doc = _reuse(path, known.get(str(path)))
        if doc is None:
            try:
                doc = read_document(path, warn)
            except Exception as e:  # a malformed file must not stop the run
                warn(f"failed {path}: {type(e).__name__}: {e}")
                loaded.failed += 1
                continue
        if doc is None:
            loaded.skipped += 1
            continue
        if doc.id in docs and doc.is_cable:
            warn(f"skipped {path}: same reference ID {doc.id} as {docs[doc.id].path}")
            loaded.skipped += 1
            continue
        if doc.id in docs:
            doc = replace(doc, id=f"{doc.id}-{sha256_bytes(str(path).encode())[:8]}")
        docs[doc.id] = doc
    loaded.documents = list(docs.values())
    return loaded


def _reuse(path: Path, known: Known | None) -> Document | None:
    """The known Document when the file is unchanged: same size and mtime, or same content."""
    if known is None:
        return None
    try:
        st = path.stat()
        if (st.st_size, st.st_mtime_ns) == (known.size, known.mtime_ns):
            return known.document
        if sha256_bytes(path.read_bytes()) == known.document.sha256:
            return known.document
    except OSError:
        return None
    return None
