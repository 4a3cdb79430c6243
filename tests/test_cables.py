"""Cables from the real Cablegate tarball: parsing, citations, incremental indexing, filters."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest

from cablebot.answering import cite
from cablebot.chunking import sentence_spans
from cablebot.documents import load_documents, read_document
from cablebot.index import Index, build_index
from cablebot.retrieval import Filter, Retriever

TARBALL = Path(__file__).resolve().parents[2] / "shared/corpus/cablegate/cablegate-1295-html.tar.gz"
CABLES = [
    "2009/10/09MEXICO3061",
    "1972/02/72TEHRAN1164",
    "1988/01/88BAGHDAD28",
    "2009/10/09BERLIN1273",
    "2010/02/10ASHGABAT245",
    "2009/12/09MEXICO3573",
]


@pytest.fixture(scope="session")
def cable_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A handful of real cable pages, extracted from the tarball."""
    if not TARBALL.is_file():
        pytest.skip(f"the Cablegate tarball is not at {TARBALL}")
    out = tmp_path_factory.mktemp("cables")
    wanted = {f"public/cable/{c}.html" for c in CABLES}
    with tarfile.open(TARBALL) as tar:
        for member in tar:
            if member.name.lstrip("./") in wanted:
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                (out / Path(member.name).name).write_bytes(data)
    assert len(list(out.iterdir())) == len(CABLES)
    return out


@pytest.fixture
def cables(cable_dir: Path, tmp_path: Path) -> Path:
    """A copy a test may change."""
    dest = tmp_path / "cables"
    shutil.copytree(cable_dir, dest)
    return dest


def test_metadata_paragraphs_and_dewrapping(cable_dir: Path) -> None:
    doc = read_document(cable_dir / "09MEXICO3061.html", print)
    assert doc is not None and doc.id == "09MEXICO3061" and doc.is_cable
    m = doc.metadata
    assert (m["created"], m["released"], m["classification"], m["origin"]) == (
        "2009-10-23 20:08",
        "2010-12-02 21:09",
        "SECRET",
        "Embassy Mexico",
    )
    assert m["tags"] == "PREL PGOV PINR MX"
    assert (
        m["subject"]
        == "DIRECTOR OF NATIONAL INTELLIGENCE DENNIS BLAIR'S MEETING WITH PRESIDENT CALDERON, OCTOBER 19"
    )
    assert m["classified_by"] == "Ambassador Carlos Pascual."
    assert doc.labels == ("subject", "¶1", "¶2", "¶3", "¶4", "¶5", "¶6")
    text = doc.text
    for chrome in (
        "VZCZC",
        "RUEHC",
        "SECSTATE",
        "MEXICO 00003061 002 OF 002",
        "TAGS",
        "Reference ID",
        "cablegate",
    ):
        assert chrome not in text
    p5 = doc.paragraphs[doc.labels.index("¶5")]
    assert p5.startswith(
        "(S/NF) Calderon exhorted the U.S. to watch Guatemala and Belize, since their internal "
        "weaknesses make them vulnerable."
    )
    # The paragraph that runs across the page break is whole.
    assert "the Guatemala border to combat arms trafficking from the south." in p5
    p6 = doc.paragraphs[doc.labels.index("¶6")]
    assert p6.startswith("(S/NF) Circling back to Venezuela")


def test_old_and_lowercase_cables(cable_dir: Path) -> None:
    old = read_document(cable_dir / "72TEHRAN1164.html", print)
    assert old is not None and old.metadata["classification"] == "UNCLASSIFIED"
    assert old.metadata["subject"] == "ACCELERATION OF F-4ES FOR IRAN"
    assert "¶2" in old.labels and "intro" in old.labels
    assert not any("AMEMBASSY TEHRAN" in p or "250930Z" in p for p in old.paragraphs)
    lower = read_document(cable_dir / "88BAGHDAD28.html", print)
    assert lower is not None and lower.metadata["tags"].startswith("mtcre, parm")
    assert (
        lower.paragraphs[lower.labels.index("¶1")]
        == "(U) This is an action request. Embassy Berlin please see paragraph 3."
    )


def test_truncated_cable_keeps_its_subject(cable_dir: Path) -> None:
    doc = read_document(cable_dir / "09BERLIN1273.html", print)
    assert doc is not None and doc.labels == ("subject",)
    assert doc.paragraphs[0].startswith("GERMANS MAY BE WILLING TO SURGE IN AFGHANISTAN")


def test_citation_reads_like_a_cable_reference(cable_dir: Path) -> None:
    doc = read_document(cable_dir / "09MEXICO3061.html", print)
    assert doc is not None
    c = cite(1, doc.id, {doc.id: doc}, "¶5", "Calderon exhorted the U.S. to watch Guatemala and Belize")
    assert c.reference == "09MEXICO3061 ¶5 — Embassy Mexico, 2009-10-23, SECRET"


def test_plain_text_cable(tmp_path: Path) -> None:
    cable = tmp_path / "cable.txt"
    cable.write_text(
        "Reference ID: 08OSLO629\nCreated: 2008-11-21 14:52\nReleased: 2010-12-01 21:09\n"
        "Classification: CONFIDENTIAL\nOrigin: Embassy Oslo\n\n"
        "VZCZCXRO1234\nRR RUEHAG\nDE RUEHNY #0629 3261452\nZNY CCCCC ZZH\nR 211452Z NOV 08\nFM AMEMBASSY OSLO\n"
        "TO RUEHC/SECSTATE WASHDC 1234\n\nC O N F I D E N T I A L OSLO 000629\n\nSIPDIS\n\n"
        "E.O. 12958: DECL: 11/20/2018\nTAGS: PREL MARR NO\nSUBJECT: NORWAY PICKS THE F-35\n\n"
        "Classified By: Ambassador Benson Whitney, reasons 1.4 (b) and (d)\n\n"
        "1. (C) Summary: On November 20 the government announced that it\nrecommends buying the F-35 to replace "
        "its F-16s. End\nsummary.\n\nOSLO 00000629 002 OF 002\n\n2. (U) The decision is final.\n\nWHITNEY\n",
        encoding="utf-8",
    )
    doc = read_document(cable, print)
    assert doc is not None and doc.id == "08OSLO629"
    assert doc.metadata["origin"] == "Embassy Oslo" and doc.metadata["classification"] == "CONFIDENTIAL"
    assert doc.labels[:3] == ("subject", "¶1", "¶2")
    assert doc.paragraphs[1] == (
        "(C) Summary: On November 20 the government announced that it recommends buying "
        "the F-35 to replace its F-16s. End summary."
    )
    assert not any("RUEH" in p or "002 OF 002" in p for p in doc.paragraphs)


def test_bad_pages_are_indexed_as_well_as_possible_or_skipped(cables: Path) -> None:
    page = (cables / "09MEXICO3061.html").read_text(encoding="utf-8")
    (cables / "09MEXICO3061.html").unlink()
    (cables / "truncated.html").write_text(page[: page.index("id='par4'")], encoding="utf-8")
    (cables / "no-table.html").write_text(page.replace("<table class='cable'>", "<table>"), encoding="utf-8")
    (cables / "latin1.html").write_bytes(
        page.replace("09MEXICO3061", "09MEXICO9999").encode("utf-8").replace(b"Calderon", b"Calder\xf3n")
    )
    (cables / "empty.html").write_bytes(b"")
    (cables / "binary.html").write_bytes(b"\x00\x01\x02\x03" * 100)
    shutil.copy(cables / "72TEHRAN1164.html", cables / "copy-of-tehran.html")
    warnings: list[str] = []
    loaded = load_documents([cables], warnings.append)
    ids = {d.id for d in loaded.documents}
    truncated = next(d for d in loaded.documents if d.id == "09MEXICO3061")  # still yields its first paragraphs
    assert truncated.labels[:4] == ("subject", "¶1", "¶2", "¶3")
    assert "09MEXICO9999" in ids  # non-UTF-8: read with a warning
    assert loaded.skipped == 3 and loaded.failed == 0  # empty, binary, duplicate reference ID
    joined = "\n".join(warnings)
    assert "empty.html: no text" in joined and "binary.html: binary file" in joined
    assert "same reference ID 72TEHRAN1164" in joined and "latin1.html: not UTF-8" in joined
    no_table = next(d for d in loaded.documents if d.path.endswith("no-table.html"))
    assert not no_table.is_cable and any("Calderon" in p for p in no_table.paragraphs)


def test_reindexing_embeds_only_added_and_changed_cables(cables: Path, tmp_path: Path, fake_embedder) -> None:
    index = tmp_path / "index"
    first = build_index([cables], fake_embedder, index, 100, 30, warn=lambda m: None)
    assert first.documents == len(CABLES) and first.embedded == first.sentences > first.chunks
    again = build_index([cables], fake_embedder, index, 100, 30, warn=lambda m: None)
    assert again.embedded == 0 and again.chunks == first.chunks
    (cables / "09BERLIN1273.html").unlink()
    page = (cables / "72TEHRAN1164.html").read_text(encoding="utf-8")
    (cables / "72TEHRAN1164.html").write_text(page.replace("GENERAL AZIMI", "GENERAL AZIMI (CHANGED)"), "utf-8")
    extra = tmp_path / "extra"
    extra.mkdir()
    shutil.copy(cables / "09MEXICO3061.html", extra / "09MEXICO3061-copy.html")
    (extra / "note.txt").write_text("A new note about the F-4E deliveries.", encoding="utf-8")
    fake_embedder.embedded.clear()
    third = build_index([cables, extra], fake_embedder, index, 100, 30, warn=lambda m: None)
    assert third.removed == 1 and third.skipped == 1  # BERLIN deleted; the copy repeats a reference ID
    loaded = Index.load(index)
    changed = {s for c in loaded.chunks if c.doc_id in ("72TEHRAN1164", "note") for s in _sentences(c.text)}
    # Only sentences not seen before are embedded: the edited ones and the new note's.
    assert set(fake_embedder.embedded) <= changed and len(fake_embedder.embedded) == third.embedded
    assert "A new note about the F-4E deliveries." in fake_embedder.embedded
    assert any("(CHANGED)" in text for text in fake_embedder.embedded)
    assert 0 < third.embedded < len(changed) / 2
    assert "09BERLIN1273" not in loaded.documents


def _sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in sentence_spans(text)]


def test_filters(cables: Path, tmp_path: Path, fake_embedder) -> None:
    index = tmp_path / "index"
    build_index([cables], fake_embedder, index, 100, 30, warn=lambda m: None)
    retriever = Retriever(Index.load(index), fake_embedder)

    def docs(where: Filter) -> set[str]:
        return {h.chunk.doc_id for h in retriever.search("embassy meeting", 50, where)}

    assert docs(Filter(origin="mexico")) == {"09MEXICO3061", "09MEXICO3573"}
    assert docs(Filter(since="2009-11", until="2010")) == {"09MEXICO3573", "10ASHGABAT245"}
    assert docs(Filter(until="1988")) == {"72TEHRAN1164", "88BAGHDAD28"}
    assert docs(Filter(classification="unclassified")) == {"72TEHRAN1164"}
    assert docs(Filter(doc="09mexico3061")) == {"09MEXICO3061"}
    assert docs(Filter(origin="Atlantis")) == set()
    assert retriever.named_document("When was 09mexico3061 written?") == "09MEXICO3061"


@pytest.fixture(scope="session")
def cable_bot(cable_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The real model and index over the handful of cables."""
    from cablebot.config import Settings
    from cablebot.core import Cablebot

    settings = Settings(index_dir=tmp_path_factory.mktemp("cable-index") / "index", corpus_paths=(cable_dir,))
    return Cablebot(settings, warn=lambda m: None)


def test_metadata_questions_are_answered_from_the_cable_and_cited(cable_bot) -> None:
    from cablebot.core import Conversation

    chat = Conversation()
    written = cable_bot.ask("When was 09MEXICO3061 written?", chat)
    assert written.text == "Created: 2009-10-23 20:08" and written.markdown == "Created: **2009-10-23 20:08**"
    (c,) = written.citations
    assert (
        c.source == "09MEXICO3061" and c.reference == "09MEXICO3061 metadata — Embassy Mexico, 2009-10-23, SECRET"
    )
    # The metadata is cited, and listed as such, but it is no retrieved passage: none is made up for it.
    assert written.metadata == {"created": "2009-10-23 20:08"}
    assert all(h.chunk.location != "metadata" for h in written.hits)
    assert all(h.sentence_scores for h in written.hits) and [h.rank for h in written.hits][:2] == [1, 2]
    classified = cable_bot.ask("How was it classified?", chat)
    assert classified.text == "Classification: SECRET" and classified.citations[0].source == "09MEXICO3061"
    about = cable_bot.ask("and what is it about?", chat)
    subject = "DIRECTOR OF NATIONAL INTELLIGENCE DENNIS BLAIR'S MEETING WITH PRESIDENT CALDERON, OCTOBER 19"
    assert about.text == f"Subject: {subject}" and about.metadata == {"subject": subject}
    assert cable_bot.ask("What is the subject of 09MEXICO3061?").text == about.text
    sender = cable_bot.ask(
        "Which embassy sent the cable about twelve-step programs and Narcotics Anonymous in Iran?"
    )
    assert sender.text == "Origin: Embassy Ashgabat" and sender.citations[0].source == "10ASHGABAT245"


def test_a_cable_asked_for_as_a_whole_answers_with_its_own_summary(cable_bot) -> None:
    """A cable asked for as a whole ("Summarize 09MEXICO3061", its reference ID alone): the first sentence of
    the summary it opens with, verbatim and cited to its paragraph; a cable without one: its subject line."""
    summary = "DNI Dennis Blair met with President Calderon for about forty minutes at the Presidential Palace on "
    summary += "October 19."
    for question in (
        "Summarize 09MEXICO3061",
        "tell me about 09MEXICO3061",
        "09MEXICO3061?",
        "what does 09MEXICO3061 say?",
    ):
        answer = cable_bot.ask(question)
        assert answer.text == summary and answer.metadata is None
        (c,) = answer.citations
        assert (c.source, c.location, c.quote) == ("09MEXICO3061", "¶1", summary)
        # The passage quoted leads the passages, as for any answer.
        assert summary in answer.hits[0].chunk.text and [h.rank for h in answer.hits[:3]] == [1, 2, 3]
    assert cable_bot.ask("give me the gist of 10ASHGABAT245").metadata == {
        "subject": "DRUG ADDICTION IN IRAN: THE SUCCESS OF TWELVE-STEP PROGRAMS"
    }
    # What a cable says about something is a question about its text.
    assert cable_bot.ask("what does 09MEXICO3061 say about Chavez?").text != summary


def test_a_question_about_no_document_in_particular_asks_which_one(cable_bot) -> None:
    """Over a collection, "this cable" with nothing asked before means no cable: another cable's metadata
    would be an unrelated answer, given with full confidence."""
    from cablebot.answering import WHICH_DOCUMENT_TEXT
    from cablebot.core import Conversation

    for question in (
        "Who wrote this cable?",
        "How was it classified?",
        "What is this cable about?",
        "summarize it",
    ):
        answer = cable_bot.ask(question)
        assert answer.abstained and answer.text == WHICH_DOCUMENT_TEXT and answer.citations == ()
    # After an abstention, "this cable" is the one whose passage it showed first as the closest.
    chat = Conversation()
    near_miss = cable_bot.ask("How many guards did the DNI bring to the Presidential Palace?", chat)
    assert near_miss.abstained and near_miss.hits
    written = cable_bot.ask("When was this cable written?", chat)
    (c,) = written.citations
    assert c.source == near_miss.hits[0].chunk.doc_id and written.metadata and not written.abstained
    # A cable named that is not there has no metadata to give, nor has any other in its place.
    for question in ("When was 09MEXICO9999 written?", "summarize 09MEXICO9999"):
        answer = cable_bot.ask(question)
        assert (
            answer.abstained
            and answer.text == "The index holds no document 09MEXICO9999."
            and not answer.citations
        )


def test_content_answers_cite_the_cable_paragraph(cable_bot) -> None:
    answer = cable_bot.ask("In which city did Mexican Navy forces kill Arturo Beltran Leyva?")
    assert "Cuernavaca" in answer.text
    (c,) = answer.citations
    assert c.source == "09MEXICO3573" and c.reference.startswith("09MEXICO3573 ¶")
    assert c.reference.endswith("— Embassy Mexico, 2009-12-17, SECRET")
    only_1972 = cable_bot.ask("What did the Shah ask for?", where=Filter(until="1980"))
    assert {h.chunk.doc_id for h in only_1972.hits} == {"72TEHRAN1164"}


def test_a_question_naming_a_cable_is_answered_from_it_alone(cable_bot) -> None:
    """Naming a cable by reference ID narrows the search to it, as a filter down to one would: the answer
    reports the reader's calibration for one document."""
    import dataclasses
    import math

    from cablebot.core import Cablebot

    sure = dataclasses.replace(cable_bot.reader, alone=(0.0, 0.0, 3.0))  # 0.953, whatever the score
    bot = Cablebot(cable_bot.settings, lambda m: None, sure)
    question = "In which city did Mexican Navy forces kill Arturo Beltran Leyva"
    named = bot.ask(f"{question}, according to 09MEXICO3573?")
    assert {h.chunk.doc_id for h in named.hits} == {"09MEXICO3573"} and "Cuernavaca" in named.text
    assert named.confidence == pytest.approx(1 / (1 + math.exp(-3.0)))
    among_all = bot.ask(f"{question}?")
    assert "Cuernavaca" in among_all.text and among_all.confidence != pytest.approx(named.confidence)


def test_paragraph_numbers_without_a_space(tmp_path: Path) -> None:
    """Some cables write "14.(C)": that paragraph keeps its own number instead of running on into the one
    before, so its sentences are cited as ¶14."""
    cable = tmp_path / "cable.txt"
    cable.write_text(
        "Reference ID: 10BEIJING999\n\nTAGS: ECON CH\nSUBJECT: JOBS\n\n"
        "13.(C) We propose the U.S. consider more student visas.\n\n"
        "DANGLING CARROTS\n---------------- \n\n"
        "14.(C) Where China is already seeking assistance, we should capitalize on that interest.\n\n"
        "15. (C) Whereas 2009 was a year to build the relationship, 2010 will test it. Classified by 1.4(b).\n",
        encoding="utf-8",
    )
    doc = read_document(cable, print)
    assert doc is not None and doc.labels == ("subject", "¶13", "¶14", "¶15")
    assert doc.paragraphs[2] == (
        "(C) Where China is already seeking assistance, we should capitalize on that interest."
    )
    assert doc.paragraphs[3].endswith("2010 will test it. Classified by 1.4(b).")
