"""What a newcomer's slip must never cost: wrong documents answered silently, indexed documents or
their own files lost. Each test reproduces a report of issue 9 or 11 on the real CLI."""

import json
import re
from pathlib import Path

import pytest
from conftest import run_cli

from cablebot.cli import _parser
from cablebot.errors import CablebotError
from cablebot.index import Index, build_index

QUESTION = "How many Mexican officials guard the southern border?"


@pytest.mark.parametrize(
    "command",
    [
        ["ask", "q"],
        ["chat"],
        ["eval", "q.jsonl"],
        ["discord"],
        ["index", "p"],
        ["remove", "p"],
        ["train", "t.jsonl"],
    ],
)
def test_index_and_config_work_before_and_after_the_command(command: list[str]) -> None:
    parser = _parser()
    for argv in (
        ["--index", "I", "--config", "C", *command],
        [command[0], "--index", "I", "--config", "C", *command[1:]],
        ["--index", "X", "--config", "Y", command[0], "--index", "I", "--config", "C", *command[1:]],
    ):
        args = parser.parse_args(argv)
        assert (args.index, args.config) == ("I", "C"), argv
    args = parser.parse_args(command)
    assert (args.index, args.config) == (None, None)


def test_options_before_the_command_reach_it(seed_settings, tmp_path: Path) -> None:
    out = run_cli("--config", str(tmp_path / "missing.toml"), "ask", QUESTION)
    assert out.returncode == 1 and "config file not found" in out.stderr
    out = run_cli("--index", str(seed_settings.index_dir), "ask", "--json", QUESTION)
    assert out.returncode == 0 and "125" in json.loads(out.stdout)["answer"]


def test_an_explicit_index_that_does_not_exist_is_an_error_not_a_new_index(tmp_path: Path) -> None:
    typo = tmp_path / "nope"
    out = run_cli("ask", "--index", str(typo), QUESTION)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"no index in {typo}" in out.stderr and f"cablebot index --index {typo}" in out.stderr
    assert not typo.exists()


def test_an_index_path_that_is_a_file_says_so(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not an index", encoding="utf-8")
    for args, says in (
        (["ask", "--index", str(notes), QUESTION], "is a file, not an index directory"),
        (["index", "--index", str(notes), str(tmp_path)], "is a file, not an index directory"),
    ):
        out = run_cli(*args)
        assert out.returncode == 1 and "Traceback" not in out.stderr
        assert out.stderr.strip().splitlines()[-1] == f"cablebot: error: {notes} {says}"
    assert notes.read_text(encoding="utf-8") == "not an index"


def test_an_index_without_its_manifest_is_never_overwritten_by_ask(index_copy: Path) -> None:
    (index_copy / "manifest.json").unlink()
    before = sorted(p.name for p in index_copy.iterdir())
    out = run_cli("ask", "--index", str(index_copy), QUESTION)
    assert out.returncode == 1 and "not a usable index" in out.stderr and "NEW_DIR" in out.stderr
    assert sorted(p.name for p in index_copy.iterdir()) == before


def test_indexing_into_a_folder_of_other_files_is_refused_and_deletes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "documents.2019.txt").write_text("a", encoding="utf-8")
    (folder / "chunks.notes.md").write_text("b", encoding="utf-8")
    for command in (["index", "--index", str(folder)], ["ask", "--index", str(folder), QUESTION]):
        out = run_cli(*command)
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["chunks.notes.md", "documents.2019.txt"]


def test_a_rebuild_deletes_only_the_files_it_wrote(tmp_path: Path, fake_embedder) -> None:
    docs, index = tmp_path / "docs", tmp_path / "index"
    docs.mkdir()
    (docs / "a.txt").write_text("Apples grow in orchards.", encoding="utf-8")
    build_index([docs], fake_embedder, index, 100, 30, warn=lambda m: None)
    mine = index / "vectors.notes.txt"  # a user's file that looks like one of ours
    mine.write_text("keep me", encoding="utf-8")
    (docs / "a.txt").write_text("Apples are red.", encoding="utf-8")
    build_index([docs], fake_embedder, index, 100, 30, warn=lambda m: None)
    assert mine.read_text(encoding="utf-8") == "keep me"
    manifest = json.loads((index / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["generation"] == 2 and manifest["retired"] and list(index.glob("*.1.*"))  # kept for readers
    (docs / "a.txt").write_text("Apples are green.", encoding="utf-8")
    build_index([docs], fake_embedder, index, 100, 30, warn=lambda m: None)
    assert not list(index.glob("*.1.*")) and mine.read_text(encoding="utf-8") == "keep me"
    assert not (index / "building.json").exists()


def test_an_interrupted_build_leaves_files_the_next_build_knows_are_its_own(tmp_path: Path, fake_embedder) -> None:
    docs, index = tmp_path / "docs", tmp_path / "index"
    docs.mkdir()
    (docs / "a.txt").write_text("Apples grow in orchards.", encoding="utf-8")
    build_index([docs], fake_embedder, index, 100, 30, warn=lambda m: None)
    (docs / "b.txt").write_text("Bananas grow in the tropics.", encoding="utf-8")

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    original, fake_embedder.embed_documents = fake_embedder.embed_documents, crash
    (index / "building.json").write_text(json.dumps({"files": ["vectors.2.faiss"]}), encoding="utf-8")
    (index / "vectors.2.faiss").write_bytes(b"half-written")
    with pytest.raises(KeyboardInterrupt):
        build_index([docs], fake_embedder, index, 100, 30, warn=lambda m: None)
    assert sorted(Index.load(index).documents) == ["a"]  # the previous index is in force
    fake_embedder.embed_documents = original
    build_index([docs], fake_embedder, index, 100, 30, warn=lambda m: None)
    assert sorted(Index.load(index).documents) == ["a", "b"]
    assert (
        not (index / "vectors.2.faiss").exists()
        or json.loads((index / "manifest.json").read_text(encoding="utf-8"))["files"]["vectors"]
        == "vectors.2.faiss"
    )


def test_indexing_one_more_file_keeps_the_rest_and_remove_drops_a_source(tmp_path: Path) -> None:
    folder, extra, index = tmp_path / "reports", tmp_path / "bikes.txt", tmp_path / "my-index"
    folder.mkdir()
    (folder / "harbour.txt").write_text("The harbour handles 40 ships a week.", encoding="utf-8")
    (folder / "mine.txt").write_text("The mine employs 1,200 workers.", encoding="utf-8")
    extra.write_text("Leiden built 3 bicycle garages.", encoding="utf-8")
    assert run_cli("index", "--index", str(index), str(folder)).returncode == 0
    out = run_cli("index", "--index", str(index), str(extra))
    assert out.returncode == 0 and "indexed 3 documents" in out.stderr and "0 documents removed" in out.stderr
    out = run_cli("remove", "--index", str(index), "harbour")  # a document, by its id
    assert out.returncode == 0 and "indexed 2 documents" in out.stderr
    assert "indexed 2 documents" in run_cli("--index", str(index), "index").stderr  # stays out of rescans
    (folder / "mine.txt").unlink()
    out = run_cli("--index", str(index), "index")  # no path: every recorded source again
    assert "indexed 1 document " in out.stderr and "1 document removed" in out.stderr
    out = run_cli("index", "--index", str(index), str(folder))  # naming its folder again brings it back
    assert sorted(Index.load(index).documents) == ["bikes", "harbour"]
    out = run_cli("remove", "--index", str(index), str(extra))
    assert out.returncode == 0 and "indexed 1 document " in out.stderr
    manifest = json.loads((index / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["sources"] == [str(folder.resolve())] and manifest["excluded"] == []
    out = run_cli("remove", "--index", str(index), str(tmp_path / "never-added"))
    assert out.returncode == 1 and "is neither a source nor a document" in out.stderr


def test_claim_refuses_a_file_in_place_of_a_directory(tmp_path: Path) -> None:
    from cablebot.index import claim

    path = tmp_path / "index"
    path.write_text("x", encoding="utf-8")
    with pytest.raises(CablebotError, match="is a file, not an index directory"):
        claim(path)


def test_links_out_of_the_folder_and_special_files_are_skipped_with_a_warning(tmp_path: Path) -> None:
    import os

    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:root:/root:/bin/bash uses the bash shell.", encoding="utf-8")
    docs = tmp_path / "d"
    docs.mkdir()
    (docs / "memo.txt").write_text("The embassy counted 42 trucks at the crossing.", encoding="utf-8")
    (docs / "passwd.txt").symlink_to(secret)
    (docs / "loop.txt").symlink_to(docs / "loop.txt")
    (docs / "outside").symlink_to(tmp_path)
    os.mkfifo(docs / "pipe.txt")
    index = tmp_path / "i"
    out = run_cli("index", "--index", str(index), str(docs))
    assert out.returncode == 0, out.stderr
    assert f"skipped {docs / 'passwd.txt'}: a symbolic link" in out.stderr
    assert f"skipped {docs / 'loop.txt'}: a symbolic link" in out.stderr
    assert f"skipped {docs / 'outside'}: a symbolic link" in out.stderr
    assert f"skipped {docs / 'pipe.txt'}: not a regular file" in out.stderr
    assert "indexed 1 document " in out.stderr
    chunks = (index / json.loads((index / "manifest.json").read_text())["files"]["chunks"]).read_text()
    assert "root:x:0" not in chunks
    out = run_cli("index", "--index", str(index), "--follow-links", str(docs))  # the user asks for it
    assert out.returncode == 0 and "passwd.txt: a symbolic link" not in out.stderr
    chunks = (index / json.loads((index / "manifest.json").read_text())["files"]["chunks"]).read_text()
    assert "root:x:0" in chunks


def test_a_filter_that_matches_nothing_says_so(seed_settings) -> None:
    out = run_cli("ask", "--json", "--index", str(seed_settings.index_dir), "--origin", "Narnia", QUESTION)
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout)
    assert (
        row["filter_matched"] == 0 and row["abstained"] and row["answer"] == "No documents match --origin Narnia."
    )
    out = run_cli("ask", "--index", str(seed_settings.index_dir), "--origin", "Narnia", QUESTION)
    assert out.stdout.startswith("No documents match --origin Narnia.")
    out = run_cli(
        "ask",
        "--json",
        "--index",
        str(seed_settings.index_dir),
        "--doc",
        "wikileaks-xix-guatemalan-concerns",
        QUESTION,
    )
    assert json.loads(out.stdout)["filter_matched"] == 1


def test_a_date_filter_that_is_no_date_is_one_line_before_anything_loads(tmp_path: Path) -> None:
    # No index there: the date is refused before the index (or the model) is even looked for.
    (tmp_path / "q.jsonl").write_text(json.dumps({"id": "q1", "question": QUESTION, "answers": ["125"]}) + "\n")
    for command in (["ask", "--since", "10/2009", QUESTION], ["eval", "--until", "2009-13", "q.jsonl"]):
        out = run_cli(*command[:1], "--index", str(tmp_path / "none"), *command[1:], cwd=tmp_path)
        assert out.returncode == 1 and out.stdout == ""
        assert out.stderr.strip().splitlines() == [
            f"cablebot: error: {command[1][2:]} {command[2]!r} is not a date: use 2009, 2009-10 or 2009-10-23"
        ]


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        ('{"id": "a", "question": "q", "answers": "125"}', 'line 1: "answers" is not a list of strings'),
        ('{"id": "a", "question": "q"}\n\n{"question": "no id"}', 'line 3: no "id" field'),
        ("[1, 2]", "line 1: not a JSON object"),
        ('{"id": "c", "turns": [{"id": "t", "question": "q"}, 5]}', "line 1: a question is not a JSON object"),
        ('{"id": "c", "turns": []}', 'line 1: "turns" is not a list of questions'),
        ('{"id": "a", "question": "q"}\n{"x":', "line 2: not JSON (Expecting value at column 6)"),
    ],
)
def test_a_bad_question_set_line_is_one_line_saying_where(tmp_path: Path, lines: str, error: str) -> None:
    from cablebot.evaluation import load_conversations

    path = tmp_path / "set.jsonl"
    path.write_text(lines + "\n", encoding="utf-8")
    with pytest.raises(CablebotError, match=f"^{re.escape(f'{path}, {error}')}$"):
        load_conversations(path)


def test_a_bad_feedback_line_is_one_line_saying_where(tmp_path: Path) -> None:
    from cablebot.feedback import load_feedback

    path = tmp_path / "feedback.jsonl"
    path.write_text('{"user": "u", "question": "q", "answer": "a", "verdict": "good"}\n', encoding="utf-8")
    with pytest.raises(CablebotError, match=f'^{re.escape(f"{path}, line 1")}: no "abstained" field$'):
        load_feedback(path)


def test_every_batch_line_gets_one_answer_line_whatever_its_bytes(seed_settings) -> None:
    import subprocess
    import sys

    normal = [f"How many officials guard the border? ({i})".encode() for i in range(996)]
    bad = [
        b"What \xff\xfe is this?",
        b"How many\x00 officials?",
        "\ufeffHow long is the border?".encode(),
        b"Who?\r",
    ]
    lines = normal[:500] + bad + normal[500:]
    out = subprocess.run(
        [sys.executable, "-m", "cablebot.cli", "ask", "--json", "--index", str(seed_settings.index_dir)],
        input=b"\n".join(lines) + b"\n",
        capture_output=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(line) for line in out.stdout.decode().splitlines()]
    assert len(rows) == 1000
    assert rows[500]["question"] == "What \ufffd\ufffd is this?" and rows[501]["question"] == "How many officials?"
    assert rows[502]["question"] == "How long is the border?" and rows[503]["question"] == "Who?"
    assert rows[-1]["question"] == "How many officials guard the border? (995)"
    assert all("answer" in r or "error" in r for r in rows)


def test_progress_without_a_terminal_is_a_line_every_few_seconds(monkeypatch, capsys) -> None:
    from cablebot import cli

    monkeypatch.setattr(cli.sys.stderr, "isatty", lambda: False, raising=False)
    tick = cli._progress(100, every=0.0)
    assert tick is not None
    tick(40)
    tick(60)
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("cablebot: embedding: 40/100 sentences,") and "s left" in err[0]
    assert err[-1].startswith("cablebot: embedding: 100/100 sentences")


def test_two_index_runs_at_once_take_turns(tmp_path: Path) -> None:
    import subprocess
    import sys

    docs, index = tmp_path / "docs", tmp_path / "index"
    docs.mkdir()
    for i in range(3):
        (docs / f"n{i}.txt").write_text(f"Note {i}: the harbour handled {40 + i} ships.", encoding="utf-8")
    command = [sys.executable, "-m", "cablebot.cli", "index", "--index", str(index), str(docs)]
    runs = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errors = [run.communicate(timeout=300)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], errors
    assert sorted(Index.load(index).documents) == ["n0", "n1", "n2"]
    manifest = json.loads((index / "manifest.json").read_text(encoding="utf-8"))
    data = {p.name for p in index.iterdir()} - {"manifest.json", "index.lock"}
    named = {name.split("/")[0] for name in manifest["checksums"]}
    assert data == named | set(manifest["retired"])  # nothing half-written is left


def test_loads_during_rebuilds_never_fail(tmp_path: Path, fake_embedder) -> None:
    import threading

    docs, index = tmp_path / "docs", tmp_path / "index"
    docs.mkdir()
    (docs / "a.txt").write_text("Apples grow in orchards.", encoding="utf-8")
    build_index([docs], fake_embedder, index, 100, 30, warn=lambda m: None)
    done = threading.Event()

    def rebuild() -> None:
        for i in range(40):
            (docs / "a.txt").write_text(f"Apples grow in orchard number {i}.", encoding="utf-8")
            build_index([docs], fake_embedder, index, 100, 30, warn=lambda m: None)
        done.set()

    writer = threading.Thread(target=rebuild)
    writer.start()
    loads = failures = 0
    while loads < 1000 or not done.is_set():
        try:
            Index.load(index)
        except CablebotError:
            failures += 1
        loads += 1
    writer.join()
    assert failures == 0 and loads >= 1000


def test_a_second_writer_waits_for_the_first(tmp_path: Path, fake_embedder) -> None:
    import threading

    from cablebot.index import _writer_lock

    docs, index = tmp_path / "docs", tmp_path / "index"
    docs.mkdir()
    (docs / "a.txt").write_text("Apples grow in orchards.", encoding="utf-8")
    index.mkdir()
    said: list[str] = []
    with _writer_lock(index, said.append):
        second = threading.Thread(
            target=build_index, args=([docs], fake_embedder, index, 100, 30, 64, said.append)
        )
        second.start()
        second.join(timeout=1.0)
        assert second.is_alive() and not (index / "manifest.json").exists()  # waiting, not writing
    second.join(timeout=30)
    assert any("waiting for it to finish" in m for m in said)
    assert sorted(Index.load(index).documents) == ["a"]


def test_oversized_and_binary_looking_files_are_skipped_with_a_warning(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "memo.txt").write_text("The embassy counted 42 trucks.", encoding="utf-8")
    (docs / "big.txt").write_text("word " * 300_000, encoding="utf-8")  # 1.5 MB
    (docs / "blob.txt").write_bytes(bytes(range(1, 32)) * 200)  # control bytes, no NUL
    out = run_cli("index", "--index", str(tmp_path / "i"), str(docs), env={"CABLEBOT_INDEX_MAX_FILE_MB": "1"})
    assert out.returncode == 0, out.stderr
    assert "big.txt: 1.5 MB, over the 1 MB limit" in out.stderr
    assert "blob.txt: binary file" in out.stderr and "indexed 1 document " in out.stderr


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_an_interrupt_while_embedding_stops_at_once_and_keeps_the_index(tmp_path: Path, signum: str) -> None:
    import signal
    import subprocess
    import sys
    import tarfile
    import time

    tarball = Path(__file__).resolve().parents[2] / "shared/corpus/cablegate/cablegate-1295-html.tar.gz"
    if not tarball.is_file():
        pytest.skip(f"the Cablegate tarball is not at {tarball}")
    cables, index = tmp_path / "cables", tmp_path / "index"
    cables.mkdir()
    with tarfile.open(tarball) as tar:
        for n, member in enumerate(m for m in tar if m.name.endswith(".html")):
            if n == 300:
                break
            (cables / Path(member.name).name).write_bytes(tar.extractfile(member).read())  # type: ignore[union-attr]
    first = tmp_path / "first"
    first.mkdir()
    (first / "memo.txt").write_text("The embassy counted 42 trucks.", encoding="utf-8")
    assert run_cli("index", "--index", str(index), str(first)).returncode == 0
    before = {p.relative_to(index): p.read_bytes() for p in index.rglob("*") if p.is_file()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cablebot.cli", "index", "--index", str(index), str(cables)],
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(8)  # the model loads, 300 cables are parsed, embedding their ~15,000 sentences begins
    assert proc.poll() is None, "indexing ended before the signal"
    sent = time.monotonic()
    proc.send_signal(getattr(signal, signum))
    _, err = proc.communicate(timeout=60)
    elapsed = time.monotonic() - sent
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    # Stopped at the signal, not after embedding the rest (minutes): a loose bound, as a loaded machine is slow.
    assert elapsed < 10.0, f"took {elapsed:.1f} s to stop"
    assert {
        p.relative_to(index): p.read_bytes() for p in index.rglob("*") if p.is_file()
    } == before  # exactly as it was
    assert sorted(Index.load(index).documents) == ["memo"]


@pytest.mark.parametrize("damaged", ["lexical", "sentences", "offsets", "vectors", "documents", "chunks"])
def test_every_damaged_index_file_is_one_line_naming_it(index_copy: Path, damaged: str) -> None:
    manifest = json.loads((index_copy / "manifest.json").read_text(encoding="utf-8"))
    name = manifest["files"][damaged]
    if damaged == "lexical":  # a folder: damage its largest file
        name = max(
            (n for n in manifest["checksums"] if n.startswith(f"{name}/")),
            key=lambda n: manifest["checksums"][n][0],
        )
    path = index_copy / name
    data = bytearray(path.read_bytes())
    path.write_bytes(bytes(data[: len(data) // 2]))  # truncated mid-file
    out = run_cli("ask", "--index", str(index_copy), QUESTION)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip().count("\n") == 0 and name in out.stderr and "cablebot index" in out.stderr


def test_a_flipped_byte_in_the_vectors_is_caught_before_answering(index_copy: Path) -> None:
    files = json.loads((index_copy / "manifest.json").read_text(encoding="utf-8"))["files"]
    path = index_copy / files["vectors"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte different
    path.write_bytes(bytes(data))
    out = run_cli("ask", "--index", str(index_copy), QUESTION)
    assert out.returncode == 1 and out.stdout == "" and "Traceback" not in out.stderr
    assert files["vectors"] in out.stderr and "checksum mismatch" in out.stderr and "cablebot index" in out.stderr


def test_a_configured_k_below_five_is_used_as_given(seed_settings) -> None:
    out = run_cli(
        "ask", "--json", "--index", str(seed_settings.index_dir), QUESTION, env={"CABLEBOT_ANSWER_K": "3"}
    )
    assert out.returncode == 0 and len(json.loads(out.stdout)["passages"]) == 3


def test_a_number_with_thousands_separators_is_one_term() -> None:
    from cablebot.lexical import terms

    assert terms("30,000 officers on the 1,926 mile border") == ["30000", "offic", "1926", "mile", "border"]


def test_a_hyphenated_word_is_also_its_parts() -> None:
    from cablebot.lexical import terms

    assert terms("the US-Mexico border") == ["us-mexico", "us", "mexico", "border"]
    assert terms("350-400 shipments") == ["350-400", "350", "400", "shipment"]
    assert terms("the vice-president and an ex-minister") == ["vice-presid", "ex-minist"]


def test_words_match_without_their_accents() -> None:
    from cablebot.lexical import terms

    assert terms("the forests of Petén near São Paulo") == terms("the forests of peten near sao paulo")
    assert terms("Øresund, Łódź, Straße, İstanbul") == ["oresund", "lodz", "strass", "istanbul"]


def test_the_documents_own_names_are_no_terms_in_either_number() -> None:
    from cablebot.lexical import terms

    assert terms("what do the cables say about kosovo?") == terms("what does the cable say about kosovo?")
    assert terms("the articles and documents and reports") == []


def test_british_and_american_spellings_are_the_same_terms() -> None:
    from cablebot.lexical import terms

    british = "the defence programme of the organisation's centre, analysed in the dialogue; labour's favourite"
    american = "the defense program of the organization's center, analyzed in the dialog; labor's favorite"
    assert terms(british) == terms(american)
    # Short words that only look British stay apart: "four" is no "for", "hour" no "hor".
    assert terms("four hours of tours") == ["four", "hour", "tour"]


def test_the_us_is_one_term_however_it_is_written() -> None:
    from cablebot.lexical import terms

    # People type "us" for the U.S.; the cables write "U.S.", "US" and "the United States".
    assert terms("U.S. officials") == terms("US officials") == terms("us officials") == ["us", "offici"]
    assert terms("the United States and the United Nations") == terms("the U.S. and the U.N.")
    assert terms("the U.K. and the European Union") == ["uk", "eu"]
    # Only letters lose their full stops: a decimal stays one number.
    assert terms("3.5 percent") == ["3.5", "percent"]


def test_outside_a_project_the_index_lives_in_the_user_data_directory(tmp_path: Path) -> None:
    elsewhere, data = tmp_path / "elsewhere", tmp_path / "data"
    elsewhere.mkdir()
    env = {"XDG_DATA_HOME": str(data), "CABLEBOT_CONFIG": ""}
    out = run_cli("ask", QUESTION, cwd=elsewhere, env=env)
    assert out.returncode == 0, out.stderr
    assert "125" in out.stdout and list(elsewhere.iterdir()) == []  # nothing made in the current folder
    assert (data / "cablebot" / "index" / "manifest.json").is_file()
