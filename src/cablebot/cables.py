"""Diplomatic cables: WikiLeaks cable-viewer pages and plain-text cables, recognised on sight.

A cable becomes one Document whose id is its reference ID (09MEXICO3061). The
routing header and page chrome go to metadata, never into quoted text;
hard-wrapped lines are joined back into sentences; page-break lines
(`MEXICO 00003061 002 OF 002`) are dropped; each numbered paragraph
(`¶5. (S/NF) ...`) keeps its number as its citation label and its
classification marking in its text.
"""

from __future__ import annotations

import html
import re

REFERENCE_ID = re.compile(r"\b(\d{2}[A-Z][A-Z0-9-]*?\d+)\b")
_REF_ID_FULL = re.compile(r"^\d{2}[A-Z][A-Z-]*\d+$")
_TABLE = re.compile(r"<table class=['\"]cable['\"]>(.*?)</table>", re.DOTALL | re.IGNORECASE)
_CELL = re.compile(r"<td>(.*?)</td>", re.DOTALL | re.IGNORECASE)
_PRE = re.compile(r"<pre[^>]*>(.*?)(?:</pre>|\Z)", re.DOTALL | re.IGNORECASE)  # a truncated page may end inside
_TABLE_FIELDS = ("reference_id", "created", "released", "classification", "origin")
_TEXT_FIELDS = {
    "reference id": "reference_id",
    "created": "created",
    "released": "released",
    "classification": "classification",
    "origin": "origin",
}
_PAGE_BREAK = re.compile(r"^\s*[A-Z][A-Z .'/&-]*\s\d{6,8}\s+\d{3}\s+OF\s+\d{3}\s*$", re.IGNORECASE)
_FIELD = re.compile(r"^(TAGS|SUBJ(?:ECT)?|REF(?:S|TEL)?|CLASSIFIED BY|E\.\s?O\.\s?\d+|REASONS?)\b:?\s*(.*)$", re.I)
# "5. (C) ..."; also "14.(C) ...", written without the space before the classification marking.
_NUMBERED = re.compile(r"^¶?\s*(\d{1,3})\.(?:\s+|(?=\())(.*)$")
_ROUTING = re.compile(
    r"^(VZCZC|ZZ|ZNY|ZNR|ZUI|DE RUE|RR |PP |OO |R \d|P \d|O \d|Z \d|FM |TO |INFO |BT$|NNNN|RUE|RHE|RHM|RUC|"
    r"AMEMBASSY|SECSTATE|[A-Z]+/[A-Z]+)",
    re.IGNORECASE,
)


def reference_ids(text: str) -> list[str]:
    """The cable reference IDs `text` names, as cables write them ("09mexico3061" is 09MEXICO3061)."""
    return REFERENCE_ID.findall(text.upper())


def looks_like_cable(text: str, suffix: str) -> bool:
    """A cable-viewer page, or plain text with a cable's reference line or header fields."""
    if suffix in (".html", ".htm"):
        return bool(_TABLE.search(text))
    head = text[:4000]
    return bool(re.search(r"^\s*Reference ID:\s*\S+", head, re.M | re.I)) or (
        bool(re.search(r"^\s*TAGS:?\s", head, re.M | re.I))
        and bool(re.search(r"^\s*SUBJ(ECT)?:", head, re.M | re.I))
    )


def _strip_tags(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def parse_cable(text: str, suffix: str, stem: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """(metadata, [(label, paragraph text)]) of a cable page or plain-text cable."""
    meta: dict[str, str] = {}
    if suffix in (".html", ".htm"):
        table = _TABLE.search(text)
        if table:
            cells = [" ".join(_strip_tags(c).split()) for c in _CELL.findall(table.group(1))]
            meta.update({k: v for k, v in zip(_TABLE_FIELDS, cells, strict=False) if v})
        blocks = [_strip_tags(b) for b in _PRE.findall(text)]
        body = "\n\n".join(blocks) if blocks else _strip_tags(text)
    else:
        lines = text.replace("\r\n", "\n").split("\n")
        rest = []
        for line in lines:
            key, sep, value = line.partition(":")
            field = _TEXT_FIELDS.get(key.strip().lower())
            if sep and field and field not in meta and not rest:
                meta[field] = value.strip()
            elif line.strip() or rest:
                rest.append(line)
        body = "\n".join(rest)
    if "reference_id" not in meta and _REF_ID_FULL.match(stem.upper()):
        meta["reference_id"] = stem.upper()
    header, paragraphs = _split_body(body)
    meta.update(header)
    return meta, paragraphs


def _split_body(body: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Header fields and the labelled paragraphs of a cable's text."""
    lines = [line.rstrip() for line in body.replace("\r\n", "\n").split("\n")]
    lines = [line for line in lines if not _PAGE_BREAK.match(line)]
    header: dict[str, str] = {}
    start = _body_start(lines, header)
    paragraphs: list[tuple[str, str]] = []
    label = "intro"
    current: list[str] = []

    def flush() -> None:
        text = " ".join(" ".join(current).split())
        if text and paragraphs and paragraphs[-1][0] == label:  # a list or note inside the same paragraph
            paragraphs[-1] = (label, f"{paragraphs[-1][1]} {text}")
        elif text:
            paragraphs.append((label, text))
        current.clear()

    for line in lines[start:]:
        stripped = line.strip()
        numbered = _NUMBERED.match(stripped)
        if numbered and (stripped.startswith("¶") or not current):
            flush()
            label = f"¶{int(numbered.group(1))}"
            current.append(numbered.group(2))
        elif not stripped:
            flush()
        else:
            current.append(stripped)
    flush()
    return header, paragraphs


def _body_start(lines: list[str], header: dict[str, str]) -> int:
    """Index of the first body line; header fields (TAGS, SUBJECT, REF...) are collected on the way.

    A field runs until a blank line; the first other line after the fields is
    the body. Lines before any field (routing, classification banner) are skipped.
    """
    seen = False
    field, value = "", []

    def close() -> None:
        if field and value:
            header.setdefault(field, " ".join(" ".join(value).split()))

    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            close()
            field, value = "", []
            continue
        m = _FIELD.match(stripped)
        if m:
            close()
            field, value, seen = _FIELD_NAMES.get(m.group(1).upper()[:4], "eo"), [m.group(2)], True
        elif field and not _NUMBERED.match(stripped):
            value.append(stripped)
        elif seen or _NUMBERED.match(stripped):
            close()
            return i
    close()
    if seen:
        return len(lines)
    for i, line in enumerate(lines):  # no header fields: skip the routing lines at the top
        if line.strip() and not _ROUTING.match(line.strip()):
            return i
    return len(lines)


_FIELD_NAMES = {
    "TAGS": "tags",
    "SUBJ": "subject",
    "REF": "refs",
    "REFS": "refs",
    "REFT": "refs",
    "CLAS": "classified_by",
    "REAS": "reason",
}
