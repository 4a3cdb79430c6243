from pathlib import Path

from cablebot.documents import load_documents, parse_front_matter, read_document

SEED = Path(__file__).resolve().parent.parent / "src/cablebot/data/seed"


def test_seed_article_metadata_and_joined_fragments() -> None:
    warnings: list[str] = []
    (doc,) = load_documents([SEED], warnings.append).documents
    assert warnings == []
    assert doc.title.startswith("WikiLeaks XIX: Guatemalan Concerns")
    assert doc.url and doc.url.startswith("https://ips-dc.org/")
    assert doc.metadata["author"].startswith("Michael Busch")
    joined = [p for p in doc.paragraphs if "The cable reports that our visit to three border crossings" in p]
    assert len(joined) == 1
    assert any("At the conference in Tapachula, The lack of coordination" in p for p in doc.paragraphs)
    assert not any("newsletter" in p.lower() or "inbox" in p.lower() for p in doc.paragraphs)


def test_html_keeps_article_text_and_drops_chrome(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text(
        "<html><head><title>Border report</title><link rel='canonical' href='https://example.org/b'>"
        "<style>p{color:red}</style><script>var x = 'not content';</script></head><body>"
        "<nav><a href='/'>Home</a> Menu</nav><article><h1>Border report</h1>"
        "<p>Only 125 officials watch the border.</p><p>The cable says that</p><p>nobody checks.</p>"
        "</article><footer>Subscribe to our newsletter.</footer></body></html>",
        encoding="utf-8",
    )
    doc = read_document(page, print)
    assert doc is not None
    assert doc.title == "Border report"
    assert doc.url == "https://example.org/b"
    assert doc.paragraphs == (
        "Border report",
        "Only 125 officials watch the border.",
        "The cable says that nobody checks.",
    )


def test_markdown_front_matter_and_markup(tmp_path: Path) -> None:
    meta, body = parse_front_matter("---\ntitle: 'A: B'\ndate: 2010-12-01\n---\nText.")
    assert meta == {"title": "A: B", "date": "2010-12-01"} and body == "Text."
    md = tmp_path / "note.md"
    md.write_text("# Heading\n\nSee [the cable](http://x) **now**.\n", encoding="utf-8")
    doc = read_document(md, print)
    assert doc is not None and doc.title == "Heading"
    assert doc.paragraphs == ("See the cable now.",)  # the title heading is no paragraph


def test_bad_files_are_warned_about_and_skipped(tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_text("A good sentence.\n", encoding="utf-8")
    (tmp_path / "binary.txt").write_bytes(b"\x00\x01\x02PNG")
    (tmp_path / "latin.txt").write_bytes("Caf\xe9 con le\xf1a.".encode("latin-1"))
    (tmp_path / "empty.txt").write_text("   \n", encoding="utf-8")
    warnings: list[str] = []
    loaded = load_documents([tmp_path, tmp_path / "missing.txt"], warnings.append)
    docs = loaded.documents
    assert (loaded.skipped, loaded.failed) == (3, 0)
    assert sorted(d.id for d in docs) == ["good", "latin"]
    text = "\n".join(warnings)
    assert "binary.txt: binary file" in text
    assert "latin.txt: not UTF-8" in text
    assert "empty.txt: no text" in text
    assert "missing.txt: no such file" in text
    assert next(d for d in docs if d.id == "latin").paragraphs == ("Café con leña.",)


def test_same_file_name_gets_distinct_ids(tmp_path: Path) -> None:
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "notes.txt").write_text(f"Notes from {sub}.", encoding="utf-8")
    ids = [d.id for d in load_documents([tmp_path], print).documents]
    assert len(set(ids)) == 2 and ids[0] == "notes"


def test_malformed_front_matter_and_unsafe_urls_never_reach_a_citation(tmp_path: Path) -> None:
    warnings: list[str] = []
    broken = tmp_path / "broken-note.md"
    broken.write_text(
        '---\ntitle: "[unclosed\nurl: {http://evil.example\n---\nThe harbour handles 40 ships.\n', "utf-8"
    )
    doc = read_document(broken, warnings.append)
    assert doc is not None and doc.title == "broken note" and doc.url is None
    assert doc.paragraphs == ("The harbour handles 40 ships.",)
    assert any("front matter is not valid YAML" in w for w in warnings)
    script = tmp_path / "script.md"
    script.write_text("---\ntitle: Notes\nurl: javascript:alert(1)\n---\nText here.\n", "utf-8")
    doc = read_document(script, warnings.append)
    assert doc is not None and doc.url is None and any("only plain http(s)" in w for w in warnings)


def test_a_text_files_title_line_and_markdown_sections(tmp_path: Path) -> None:
    txt = tmp_path / "bikes.txt"
    txt.write_text(
        "Commuting by bicycle in the rain\n\nThe city of Leiden built 3 garages.\n\nIt rains often.\n", "utf-8"
    )
    doc = read_document(txt, print)
    assert doc is not None and doc.title == "Commuting by bicycle in the rain"
    assert doc.paragraphs == ("The city of Leiden built 3 garages.", "It rains often.")
    md = tmp_path / "care.md"
    md.write_text(
        "---\ntitle: Bicycle care\n---\nIntro text.\n\n## Winter care\n\nOil the chain.\n\nDry the frame.\n"
        "\n## Summer care\n\nCheck the tyres.\n",
        "utf-8",
    )
    doc = read_document(md, print)
    assert doc is not None and doc.title == "Bicycle care"
    assert doc.paragraphs == ("Intro text.", "Oil the chain.", "Dry the frame.", "Check the tyres.")
    assert doc.labels == ("¶1", "¶2, Winter care", "¶3, Winter care", "¶4, Summer care")


def test_files_of_other_types_are_named_in_one_line_not_counted_as_skipped(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("A good sentence.\n", encoding="utf-8")
    for name in ("report.pdf", "annex.pdf", "memo.docx", "README", ".DS_Store"):
        (tmp_path / name).write_bytes(b"%PDF-1.4")
    warnings: list[str] = []
    loaded = load_documents([tmp_path], warnings.append)
    assert [d.id for d in loaded.documents] == ["a"] and loaded.skipped == 0
    (line,) = warnings  # hidden files are no documents: not mentioned
    assert line == (
        f"not read under {tmp_path}: 4 files of other types (2 .pdf, 1 .docx, 1 without a suffix); "
        "cablebot reads .txt, .md, .markdown, .html, .htm"
    )
