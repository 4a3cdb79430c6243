"""Retraining the reader: deterministic, honest about held-out figures, and able to learn from feedback."""

import dataclasses
import json
import math
from pathlib import Path

import pytest

from cablebot.config import Settings
from cablebot.core import Cablebot
from cablebot.evaluation import load_conversations
from cablebot.feedback import load_feedback, record
from cablebot.reading import FEATURES, Reader
from cablebot.retrieval import Filter
from cablebot.training import best_of, collect, collect_alone, cross_validate, run, train

FACTS = {
    "harbour": "The harbour of Port Elin handles 40 ships a week. Its director, Maria Vance, took office in 2007. "
    "Dredging stopped because the budget ran out.",
    "mine": "The Korvat copper mine employs 1,200 workers. It is owned by Ostra Metals. "
    "Production fell in March after a strike over pay.",
    "school": "Greenfield school teaches 300 pupils in two languages. Its headmaster is Tom Hale. "
    "A new library opened on 4 May.",
    "bridge": "The Lenna bridge is 2 kilometres long. It was built by the firm Castel Works. "
    "Trucks are banned at night to protect it.",
}
QUESTIONS = [
    ("how many ships does the harbour handle?", "40", "harbour"),
    ("who runs the port?", "Maria Vance", "harbour"),
    ("why was the dredging halted?", "the budget ran out", "harbour"),
    ("how many people work at the copper mine?", "1,200", "mine"),
    ("which company owns the mine?", "Ostra Metals", "mine"),
    ("when did output drop?", "March", "mine"),
    ("how many pupils does greenfield have?", "300", "school"),
    ("who is the headmaster?", "Tom Hale", "school"),
    ("when did the library open?", "4 May", "school"),
    ("how long is the bridge?", "2 kilometres", "bridge"),
    ("who built the bridge?", "Castel Works", "bridge"),
    ("why can't trucks cross at night?", "to protect it", "bridge"),
]
TRAIN_CHATS = Path(__file__).resolve().parent.parent / "eval" / "train-chats.jsonl"
UNANSWERABLE = ["how deep is the harbour?", "what is the price of copper?", "how old is tom hale?"]


@pytest.fixture(scope="module")
def small_bot(tmp_path_factory: pytest.TempPathFactory) -> Cablebot:
    root = tmp_path_factory.mktemp("small")
    docs = root / "docs"
    docs.mkdir()
    for name, text in FACTS.items():
        (docs / f"{name}.txt").write_text(text, encoding="utf-8")
    return Cablebot(Settings(index_dir=root / "index", corpus_paths=(docs,)), lambda m: None, Reader.untrained())


@pytest.fixture(scope="module")
def slice_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("slice") / "train.jsonl"
    rows = [
        {"id": f"T{i}", "question": q, "answers": [a], "support": FACTS[d], "doc": d, "type": "other"}
        for i, (q, a, d) in enumerate(QUESTIONS)
    ] + [
        {"id": f"U{i}", "question": q, "answers": [], "support": "", "doc": "", "type": "unanswerable"}
        for i, q in enumerate(UNANSWERABLE)
    ]
    rows.append(
        {
            "id": "C1",
            "turns": [
                {
                    "id": "C1.1",
                    "question": "who owns the copper mine?",
                    "answers": ["Ostra Metals"],
                    "doc": "mine",
                },
                {
                    "id": "C1.2",
                    "question": "and how many workers does it have?",
                    "answers": ["1,200"],
                    "doc": "mine",
                },
            ],
        }
    )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_retraining_on_a_fixed_slice_is_deterministic(small_bot: Cablebot, slice_file: Path) -> None:
    conversations = load_conversations(slice_file)
    assert [len(c) for c in conversations][-1] == 2  # the conversation line keeps its turns together
    # Each run collects its questions anew, as a retraining does.
    first, second = (
        train(
            collect(small_bot, conversations), small_bot.match, alone=collect_alone(small_bot, conversations)
        ).to_json()
        for _ in range(2)
    )
    assert first == second
    assert first["features"] == list(FEATURES) and 0.0 <= first["threshold"] <= 1.0
    assert len(first["calibration"]) == 3  # the pick's logit and its weakest_match, and a bias
    assert len(first["alone"]) == 3  # a calibration of its own for answers from one document


def test_the_learned_weights_pick_the_answering_sentence(small_bot: Cablebot, slice_file: Path) -> None:
    examples = collect(small_bot, load_conversations(slice_file))
    reader = train(examples, small_bot.match)
    answered = [e for e in examples if e.case.answerable]
    _, right, matches, _ = best_of(answered, reader, small_bot.match)
    assert right.sum() >= 0.75 * len(answered)  # on its own training data: far above the 1-in-12 of chance
    assert ((matches > 0.0) & (matches <= 1.0))[right].all()  # every right pick says something the question asks
    # The follow-up was read with the earlier question as context.
    follow_up = next(e for e in examples if e.case.id == "C1.2")
    assert follow_up.labels.any()


def test_cross_validation_reports_held_out_figures_and_calibration(small_bot: Cablebot, slice_file: Path) -> None:
    conversations = load_conversations(slice_file)
    alone = collect_alone(small_bot, conversations)
    # Each single question, asked of one document: an answerable one of its own, the others of the first found.
    assert len(alone) == len(QUESTIONS) + len(UNANSWERABLE)
    assert all(e.labels.any() == e.case.answerable for e in alone)
    report = cross_validate(collect(small_bot, conversations), small_bot.match, alone=alone)
    lines = report.lines()
    assert lines[0].startswith("cross-validated (5 folds): n=14+3 answer=")
    assert lines[1].startswith("answerable, held out: the right sentence among the candidates ")
    assert report.answered_right <= report.picked_right <= report.reachable <= report.answerable
    # Counted as score.py counts answers, an answer from another document than the question's counts too.
    assert report.answered_right <= report.answered_anywhere <= report.answerable
    assert "(from any document, as score.py counts answers: " in lines[1]
    assert "calibration" in lines[2] and len(lines) > 3
    assert all(0.0 <= c <= 1.0 for c in report.confidence)
    assert "asked of one document alone (answerable ones of their own): n=12+3 answer=" in "\n".join(lines)
    assert len(report.alone_confidence) == len(alone)


def test_training_over_several_fold_seeds_reports_each_and_their_mean(
    small_bot: Cablebot, slice_file: Path, tmp_path: Path
) -> None:
    said: list[str] = []
    out = tmp_path / "reader.json"
    run(small_bot, [slice_file], out, say=said.append, seeds=3)
    seeds = [line for line in said if line.startswith("fold seed ")]
    assert [line.split(":")[0] for line in seeds] == ["fold seed 13", "fold seed 14", "fold seed 15"]
    answers = [float(line.split("answer=")[1].split()[0]) for line in seeds]
    mean = next(line for line in said if line.startswith("mean of 3 fold seeds: "))
    assert float(mean.split("answer=")[1].split()[0]) == pytest.approx(sum(answers) / 3, abs=0.0006)
    # The first seed's figures are those of the single cross-validation printed above them.
    assert said[1].split("answer=")[1].split()[0] == seeds[0].split("answer=")[1].split()[0]
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["questions"] == len(QUESTIONS) + len(UNANSWERABLE) + 2
    assert data["packages"]["numpy"][0].isdigit()  # the versions the weights were fitted with


def test_an_answer_from_one_document_reports_that_calibration(small_bot: Cablebot) -> None:
    """Over one document (a filter down to one, or an index of one) the confidence is the reader's
    calibration for one document; over several, the usual one."""
    from cablebot.reading import load_reader

    sure = dataclasses.replace(load_reader(), alone=(0.0, 0.0, 3.0))  # 0.953, whatever the score
    bot = Cablebot(small_bot.settings, lambda m: None, sure)
    alone = bot.ask("how many ships does the harbour handle?", where=Filter(doc="harbour"))
    assert not alone.abstained and alone.confidence == pytest.approx(1 / (1 + math.exp(-3.0)))
    assert not alone.unsure
    among_four = bot.ask("how many ships does the harbour handle?")
    assert among_four.text == alone.text and among_four.confidence != pytest.approx(alone.confidence)


def test_feedback_becomes_training_questions(small_bot: Cablebot, tmp_path: Path) -> None:
    from cablebot.reading import load_reader

    bot = Cablebot(small_bot.settings, lambda m: None, load_reader())
    path = tmp_path / "feedback.jsonl"
    good = bot.ask("how many ships does the harbour handle?")
    assert not good.abstained
    bad = dataclasses.replace(good, question="how deep is the harbour?")  # a quote that does not answer
    record(path, good, "good", 1234, "chat")
    record(path, bad, "bad", 1234, "chat")
    record(path, bad, "bad", 1234, "chat")  # the same verdict twice counts once
    text = path.read_text(encoding="utf-8")
    assert "1234" not in text and (path.parent / "feedback.jsonl.salt").stat().st_mode & 0o077 == 0
    questions = [c[0] for c in load_feedback(path)]
    assert [q.type for q in questions] == ["feedback", "unanswerable"]
    assert questions[0].answers[0] in good.text and questions[0].doc == good.citations[0].source
    examples = collect(small_bot, load_feedback(path))
    assert examples[0].labels.any() and not examples[1].labels.any()


def test_the_follow_up_detector_on_the_training_conversations() -> None:
    from cablebot.core import is_follow_up

    turns = [t for line in TRAIN_CHATS.read_text(encoding="utf-8").splitlines() for t in json.loads(line)["turns"]]
    assert len(turns) >= 30
    right = sum(is_follow_up(t["question"]) == t["follow_up"] for t in turns)
    assert right / len(turns) >= 0.95  # 35 of 36: "what time did the plane take off?" has no word pointing back
