"""The real model, the real index (FAISS, and Milvus Lite), the bundled article: what a user sees."""

import dataclasses
import json
from pathlib import Path

import pytest
from conftest import run_cli

from cablebot.config import Settings
from cablebot.core import Conversation
from cablebot.rendering import to_json

DESIGN_QUESTION = "How many Mexican officials guard the southern border?"
BACKENDS = ["faiss", "milvus"]


def _settings(seed_settings: Settings, backend: str, tmp_path_factory, cli: bool = False) -> Settings:
    """The seed index with its vectors in `backend` (a rebuild that re-embeds nothing), built in-process or,
    with `cli`, by `cablebot index` (Milvus Lite's folder stays locked by the process that opened it)."""
    import shutil

    from cablebot.core import build

    if backend == "faiss":
        return seed_settings
    directory = tmp_path_factory.mktemp(backend) / "index"
    shutil.copytree(seed_settings.index_dir, directory)
    settings = dataclasses.replace(seed_settings, index_dir=directory, index_backend=backend)
    if cli:
        out = run_cli("index", "--index", str(directory), env={"CABLEBOT_INDEX_BACKEND": backend})
        assert out.returncode == 0 and "0 embedded" in out.stderr, out.stderr
    else:
        assert build(settings, warn=lambda m: None).embedded == 0
    assert json.loads((directory / "manifest.json").read_text())["vectors"]["backend"] == backend
    return settings


@pytest.fixture(scope="module", params=BACKENDS)
def settings(request, seed_settings: Settings, tmp_path_factory) -> Settings:
    """An index for the CLI tests: a new process opens it for each command."""
    return _settings(seed_settings, request.param, tmp_path_factory, cli=True)


@pytest.fixture(scope="module", params=BACKENDS)
def bot(request, seed_settings: Settings, tmp_path_factory):
    """A loaded bot over its own copy of the index (Milvus Lite lets one process at a time open a folder)."""
    from cablebot.core import Cablebot

    return Cablebot(_settings(seed_settings, request.param, tmp_path_factory), warn=lambda m: None)


def test_design_question_is_answered_verbatim_and_cited(bot) -> None:
    answer = bot.ask(DESIGN_QUESTION)
    assert not answer.abstained
    assert "125" in answer.text and "**125**" in answer.markdown
    (citation,) = answer.citations
    assert "125 Mexican immigration officials" in citation.quote
    assert citation.source == "wikileaks-xix-guatemalan-concerns"
    assert citation.title.startswith("WikiLeaks XIX") and citation.location == "¶9"
    assert citation.url and "ips-dc.org" in citation.url
    # Verbatim: the quote is a span of the indexed paragraph.
    assert any(citation.quote in h.chunk.text for h in answer.hits)
    assert len(answer.text) <= 400


def test_every_retrieved_sentence_is_also_scored_against_the_question_without_its_names(bot) -> None:
    _, hits = bot.retrieve(DESIGN_QUESTION)
    assert hits and all(len(h.relation_scores) == len(h.sentence_scores) for h in hits)
    # The design question's names ("Mexican") leave what it asks of them, a closer match for other sentences.
    assert any(h.relation_scores != h.sentence_scores for h in hits)
    best = max(hits, key=lambda h: max(h.relation_scores))
    assert "officials" in best.chunk.text


def test_unrelated_question_abstains_and_shows_closest_passages(bot) -> None:
    answer = bot.ask("What is the capital of Honduras?")
    assert answer.abstained and answer.citations == ()
    assert "do not answer" in answer.text
    assert len(answer.hits) >= 5


def test_who_wrote_the_article_is_answered_from_its_byline(bot) -> None:
    """A question about the document, not its text: the article's front matter names the author."""
    for question in ("who wrote this?", "Who is the author of the article?", "the author of the article?"):
        answer = bot.ask(question)
        assert answer.text == "Author: Michael Busch (Focal Points, Foreign Policy In Focus)"
        assert answer.metadata == {"author": "Michael Busch (Focal Points, Foreign Policy In Focus)"}
        (citation,) = answer.citations
        assert citation.source == "wikileaks-xix-guatemalan-concerns" and citation.location == "metadata"
    # Asking what the author says is a question about the text.
    assert bot.ask("what does the author say about the border with Guatemala?").metadata is None
    # What the one document is about: its title, not any of its sentences.
    title = (
        "WikiLeaks XIX: Guatemalan Concerns Get Short Shrift in Cables About Illegal Border Crossings Into Mexico"
    )
    for question in ("what is this article about?", "whats it about?", "What is the title of the article?"):
        assert bot.ask(question).metadata == {"title": title}


def test_a_name_typed_without_its_accent_finds_the_same_answer(bot) -> None:
    plain, accented = bot.ask("where is peten?"), bot.ask("where is petén?")
    assert "Petén, in Northern Guatemala" in plain.text and not plain.abstained
    assert (plain.text, plain.confidence) == (accented.text, accented.confidence)


def test_a_question_typed_as_in_a_chat_gets_the_same_answer(bot) -> None:
    full = bot.ask("what is the most densely trafficked crossing?")
    assert "Ciudad Hidalgo" in full.text and not full.abstained
    for typed in (
        "what's the most densely trafficked crossing?",
        "whats the most densely trafficked crossing",
        "hey, can you tell me what's the most densely trafficked crossing according to the article?",
        "the most densely trafficked crossing?",
        "the most densely trafficked crossing is what?",
    ):
        short = bot.ask(typed)
        assert (short.text, short.confidence) == (full.text, full.confidence)
        assert short.question == typed  # the answer repeats the question as it was typed


def test_a_question_with_typos_is_read_as_the_one_meant(bot) -> None:
    """Typos are respelt as the article's words; words the encoder knows as English stay as typed."""
    assert "president" in bot.embedder.words and "presiednt" not in bot.embedder.words
    full = bot.ask("which crossing is the most densely trafficked?")
    typed = bot.ask("whcih crossing is the most densly traficked?")
    assert "Ciudad Hidalgo" in full.text and (typed.text, typed.confidence) == (full.text, full.confidence)
    assert typed.question == "whcih crossing is the most densly traficked?"
    design = bot.ask("Hwo many Mexican oficials guard the southren border?")
    assert "**125**" in design.markdown and design.citations[0].location == "¶9"


def test_follow_up_keeps_the_conversation_context(bot) -> None:
    chat = Conversation()
    bot.ask(DESIGN_QUESTION, chat)
    follow = bot.ask("And how long is that border?", chat)
    assert "577" in follow.text and "**577**" in follow.markdown


def test_json_schema(bot) -> None:
    row = to_json(bot.ask(DESIGN_QUESTION))
    assert {"question", "answer", "abstained", "citations", "passages"} <= row.keys()
    assert set(row["citations"][0]) >= {"n", "source", "title", "location", "quote", "url"}
    assert len(row["passages"]) >= 5
    assert [p["rank"] for p in row["passages"]] == list(range(1, len(row["passages"]) + 1))
    assert "125" in row["passages"][0]["text"]


def test_cli_batch_protocol_answers_in_order(settings) -> None:
    questions = [
        DESIGN_QUESTION,
        "",
        "Who argued that Guatemala's condition challenges efforts against organized crime?",
    ]
    out = run_cli("ask", "--json", "--index", str(settings.index_dir), stdin="".join(q + "\n" for q in questions))
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["question"] for r in rows] == questions
    assert "125" in rows[0]["answer"] and "error" in rows[1] and "Casas-Zamora" in rows[2]["answer"]


def test_cli_human_answer(settings) -> None:
    out = run_cli("ask", "--index", str(settings.index_dir), DESIGN_QUESTION)
    assert out.returncode == 0, out.stderr
    assert "125 Mexican immigration officials" in out.stdout and "**" not in out.stdout  # piped: plain text
    assert "WikiLeaks XIX" in out.stdout and "¶9" in out.stdout


def test_both_backends_give_the_same_answers_to_the_development_questions(seed_settings, tmp_path_factory) -> None:
    from cablebot.core import Cablebot
    from cablebot.evaluation import load_conversations

    dev = Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev-seed.jsonl"
    if not dev.is_file():
        pytest.skip(f"the development questions are not at {dev}")
    questions = [q.question for c in load_conversations(dev) for q in c]
    assert len(questions) >= 20
    answers = {}
    for backend in BACKENDS:
        bot = Cablebot(_settings(seed_settings, backend, tmp_path_factory), warn=lambda m: None)
        answers[backend] = [(a.text, a.abstained, a.citations) for a in map(bot.ask, questions)]
        del bot
    assert answers["faiss"] == answers["milvus"]


def test_bad_questions_are_one_line_errors(seed_settings) -> None:
    for question, code in (("   ", 2), ("x" * 2001, 2)):
        out = run_cli("ask", "--index", str(seed_settings.index_dir), question)
        assert out.returncode == code
        assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "empty" in run_cli("ask", "").stderr


def test_corrupt_index_is_a_one_line_error(index_copy: Path) -> None:
    manifest = json.loads((index_copy / "manifest.json").read_text())
    chunks = index_copy / manifest["files"]["chunks"]
    chunks.write_text(chunks.read_text()[:100])
    out = run_cli("ask", "--index", str(index_copy), DESIGN_QUESTION)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0
    assert chunks.name in out.stderr and "cablebot index" in out.stderr


def test_index_warns_about_bad_files_and_indexes_the_rest(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.txt").write_text("The embassy counted 42 trucks at the crossing.", encoding="utf-8")
    (docs / "image.html").write_bytes(b"\x89PNG\x00\x00\x00")
    (docs / "old.txt").write_bytes("Se\xf1or Garc\xeda met 7 officials.".encode("latin-1"))
    index = tmp_path / "index"
    out = run_cli("index", "--index", str(index), str(docs), str(docs / "gone.txt"))
    assert out.returncode == 0, out.stderr
    assert "image.html: binary file" in out.stderr and "gone.txt: no such file" in out.stderr
    assert "old.txt: not UTF-8" in out.stderr and "indexed 2 documents" in out.stderr
    answer = run_cli("ask", "--json", "--index", str(index), "How many trucks did the embassy count?")
    row = json.loads(answer.stdout)
    assert "42" in row["answer"] and row["citations"][0]["source"] == "notes"


def test_fresh_clone_builds_the_default_index_on_first_ask(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[index]\ndir = "{tmp_path / "index"}"\n', encoding="utf-8")
    out = run_cli("ask", "--config", str(config), DESIGN_QUESTION)
    assert out.returncode == 0, out.stderr
    assert "indexing" in out.stderr and "125" in out.stdout
    again = run_cli("ask", "--config", str(config), DESIGN_QUESTION)
    assert "indexing" not in again.stderr and "125" in again.stdout


def test_an_index_from_another_encoder_is_explained(index_copy: Path) -> None:
    manifest = json.loads((index_copy / "manifest.json").read_text())
    manifest.update(model="some-other-encoder", sources=["/elsewhere"])
    (index_copy / "manifest.json").write_text(json.dumps(manifest))
    out = run_cli("ask", "--index", str(index_copy), DESIGN_QUESTION)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "encoder some-other-encoder" in out.stderr and "rebuild it with: cablebot index" in out.stderr


def test_batch_protocol_carries_conversations(settings) -> None:
    follow_up = "And how long is that border?"
    lines = [
        json.dumps({"question": DESIGN_QUESTION, "conversation": "a"}),
        json.dumps({"question": "What percentage of GDP is Guatemala's tax revenue?", "conversation": "b"}),
        json.dumps({"question": follow_up, "conversation": "a"}),
        json.dumps({"conversation": "a"}),  # an object without a question: an error line, not a question
    ]
    out = run_cli("ask", "--json", "--index", str(settings.index_dir), stdin="".join(x + "\n" for x in lines))
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["question"] for r in rows] == [DESIGN_QUESTION, rows[1]["question"], follow_up, lines[3]]
    assert "125" in rows[0]["answer"] and "**577**" in rows[2]["answer_markdown"]
    assert 0.0 <= rows[2]["confidence"] <= 1.0
    assert rows[3] == {"question": lines[3], "error": 'a JSON line needs a "question" string'}


def test_eval_scores_conversations(seed_settings, tmp_path: Path) -> None:
    turns = [
        {"id": "c.1", "question": DESIGN_QUESTION, "answers": ["125"], "doc": "seed", "type": "number"},
        {
            "id": "c.2",
            "question": "And how long is that border?",
            "answers": ["577"],
            "doc": "seed",
            "type": "number",
        },
    ]
    questions = tmp_path / "chats.jsonl"
    questions.write_text(json.dumps({"id": "c", "turns": turns}) + "\n", encoding="utf-8")
    out = run_cli("eval", "--index", str(seed_settings.index_dir), str(questions))
    assert out.returncode == 0, out.stderr
    assert "n=2+0" in out.stdout and "answer=1.000" in out.stdout


def test_chat_feedback_is_recorded_without_the_user_name(seed_settings, tmp_path: Path) -> None:
    feedback = tmp_path / "feedback.jsonl"
    out = run_cli(
        "chat",
        "--index",
        str(seed_settings.index_dir),
        stdin=f"{DESIGN_QUESTION}\n:goood\n:good\n:quit\nwho wrote this?\n",
        env={"CABLEBOT_FEEDBACK_PATH": str(feedback), "USER": "alice-the-reader"},
    )
    assert out.returncode == 0, out.stderr
    assert "cablebot: unknown command :goood (:good or :bad rates the last answer, :quit quits)" in out.stdout
    assert "Michael Busch" not in out.stdout  # :quit ended the chat before the last question
    (row,) = [json.loads(line) for line in feedback.read_text(encoding="utf-8").splitlines()]
    assert row["verdict"] == "good" and row["via"] == "chat" and "125" in row["answer"]
    assert "alice" not in feedback.read_text(encoding="utf-8") and len(row["user"]) == 32
