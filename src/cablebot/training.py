"""`cablebot train`: learn the reader's weights from a question set, and say how well they generalise.

Every candidate sentence of every training question (run through the real
retrieval) is an example, labelled by whether it holds a gold answer from the
right document. A logistic regression (scikit-learn, fixed seed) learns the
weights; the best candidate's score, with its `weakest_match` to the
question, is then calibrated (Platt scaling) into the probability that the
answer is right, on folds the weights were not fitted on, and the
abstention threshold is the lowest confidence at which at most `max_false`
of the unanswerable questions get an answer, again on held-out folds.

All figures reported are on held-out folds (5-fold cross-validation, split by
question and conversation, never by sentence).

A second look is learned the same way, on the RIVALS best-scored candidates of
each training question whose right and wrong answers are that close: it picks
among them (see `Reader`).

Answers from one document get a calibration of their own, fitted the same way
on the training questions asked of one cable alone (`collect_alone`).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

import numpy as np

from cablebot.answering import Answer, Citation
from cablebot.core import Cablebot, Conversation
from cablebot.evaluation import Case, holds_answer, load_conversations, right_document
from cablebot.reading import FEATURES, Candidate, Question, Reader, best_few, candidates

FOLDS = 5
SEED = 13
MAX_FALSE = 0.20  # target share of questions the documents do not answer that get an answer anyway
UNSURE = 0.6  # below this probability of being right, an answer says it is not sure
# Inverse regularisation strength of the logistic regression. C 0.01 to 1 cross-validate alike, but the
# weights of weaker regularisation move more from one training sample to the next, and so do the
# confidences of a one-document collection, which no training question resembles (docs/answer-quality.md).
C = 0.01
# Candidates the second look picks among: 2 to 8 all cross-validated about equally (answer 0.432-0.440
# against 0.427 without it, abstain the same); 3 put the right sentence first most often (docs/answer-quality.md).
RIVALS = 3


@dataclass(frozen=True)
class Example:
    """One training question (or conversation turn): its candidates' features and labels."""

    group: int  # questions of one conversation share a group, so they land in one fold
    case: Case
    features: np.ndarray  # (candidates, FEATURES)
    labels: np.ndarray  # (candidates,) 1 = holds a gold answer from the right document
    searched: str  # the question as searched (Question.searched), for the pick's weakest_match
    texts: tuple[str, ...]  # the candidates' sentences, in the order of `features`


# A sentence's weakest_match with a question (as searched): `Cablebot.match`.
Match = Callable[[str, str], float]


def collect(bot: Cablebot, conversations: Sequence[Sequence[Case]]) -> list[Example]:
    """Examples for every turn, retrieved and read exactly as `Cablebot.ask` would."""
    examples = []
    for group, turns in enumerate(conversations):
        conversation = Conversation()
        for q in turns:
            context, previous = conversation.context_for(q.question)
            question, hits = bot.retrieve(q.question, context, previous=previous)
            cands = candidates(question, hits, bot.settings.answer_k)
            right = [
                q.answerable and holds_answer(c.text, q.answers) and right_document(c.hit.chunk.doc_id, q.doc)
                for c in cands
            ]
            examples.append(_example(group, q, question, cands, right))
            conversation.add(_gold(q))
    return examples


def collect_alone(bot: Cablebot, conversations: Sequence[Sequence[Case]]) -> list[Example]:
    """Examples for each single question asked of one document alone, as over a collection of one (the
    bundled article), for the calibration of answers from one document: an answerable question is asked of
    its own document, one the documents do not answer of the document retrieval finds first for it (a near
    miss is about that document's people and places). Groups match `collect`'s."""
    from cablebot.retrieval import Filter

    examples = []
    for group, turns in enumerate(conversations):
        if len(turns) > 1:
            continue
        q = turns[0]
        doc = q.doc if q.answerable else next((h.chunk.doc_id for h in bot.retrieve(q.question)[1]), "")
        if doc not in bot.index.documents:
            continue
        question, hits = bot.retrieve(q.question, where=Filter(doc=doc))
        cands = candidates(question, hits, bot.settings.answer_k)
        right = [q.answerable and holds_answer(c.text, q.answers) for c in cands]
        examples.append(_example(group, q, question, cands, right))
    return examples


def _example(group: int, case: Case, question: Question, cands: Sequence[Candidate], right: list[bool]) -> Example:
    """The Example of one question read as `question`, its candidates labelled `right`."""
    labels = np.array(right, dtype=np.int8)
    return Example(group, case, _matrix(cands), labels, question.searched, tuple(c.text for c in cands))


def _matrix(cands: Sequence[Candidate]) -> np.ndarray:
    """The candidates' features, one row each (no rows, FEATURES columns, when there are none)."""
    return np.array([c.features for c in cands], dtype=np.float64).reshape(-1, len(FEATURES))


def _gold(q: Case) -> Answer:
    """What a conversation remembers of a training turn: its right answer, the sentence that supports it."""
    if not (q.answerable and q.support):
        return Answer(q.question, "", True, (), ())
    citation = Citation(1, q.doc, q.doc, "", q.support)
    return Answer(q.question, q.support, False, (citation,), ())


# --- Fitting ---------------------------------------------------------------------------


def fit_weights(examples: Sequence[Example]) -> tuple[np.ndarray, float]:
    """Logistic regression over all candidates of `examples`; weights in raw feature units."""
    from sklearn.linear_model import LogisticRegression

    x = np.vstack([e.features for e in examples])
    y = np.concatenate([e.labels for e in examples])
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=C, max_iter=2000, random_state=SEED)
    model.fit((x - mean) / scale, y)
    weights = model.coef_[0] / scale
    return weights, float(model.intercept_[0] - (model.coef_[0] * mean / scale).sum())


def fit_reader(examples: Sequence[Example]) -> Reader:
    """Both models of the reader, not yet calibrated: the first on every candidate, the second on the
    RIVALS best-scored candidates of the questions where those hold both right and wrong answers."""
    weights, bias = fit_weights(examples)
    first = Reader(tuple(float(w) for w in weights), bias, (1.0, 0.0, 0.0), 0.5, UNSURE)
    close = []
    for e in examples:
        top = best_few(first.logits(e.features), RIVALS)
        if e.labels[top].any() and not e.labels[top].all():
            texts = tuple(e.texts[i] for i in top)
            close.append(Example(e.group, e.case, e.features[top], e.labels[top], e.searched, texts))
    if not close:
        return first
    second, second_bias = fit_weights(close)
    return replace(first, rivals=RIVALS, second_weights=tuple(float(w) for w in second), second_bias=second_bias)


def best_of(
    examples: Sequence[Example], reader: Reader, match: Match
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per question: the first logit of the candidate the reader picks, whether it is a right answer, its
    weakest_match with the question, and its index among the question's candidates (-1: none)."""
    logits, right, matches, picks = [], [], [], []
    for e in examples:
        if len(e.labels) == 0:
            logits.append(-10.0)
            right.append(False)
            matches.append(0.0)
            picks.append(-1)
            continue
        scores = reader.logits(e.features)
        i = reader.choose(e.features, scores)
        logits.append(scores[i])
        right.append(bool(e.labels[i]))
        matches.append(match(e.searched, e.texts[i]))
        picks.append(i)
    return np.array(logits), np.array(right), np.array(matches), np.array(picks, dtype=np.int64)


def fit_calibration(logits: np.ndarray, matches: np.ndarray, right: np.ndarray) -> tuple[float, float, float]:
    """Platt scaling with the pick's weakest_match beside its logit: P(right) = sigmoid(a * logit + b * match
    + c), fitted on held-out picks."""
    from sklearn.linear_model import LogisticRegression

    if right.all() or not right.any():
        return 1.0, 0.0, 0.0
    model = LogisticRegression(C=100.0, random_state=SEED).fit(np.column_stack([logits, matches]), right)
    a, b = model.coef_[0]
    return float(a), float(b), float(model.intercept_[0])


def choose_threshold(confidence: np.ndarray, unanswerable: np.ndarray, max_false: float) -> float:
    """The lowest confidence at which at most `max_false` of the unanswerable questions get an answer.

    Lower thresholds answer more of the answerable questions; the target bounds
    how often a question the documents do not answer gets a quote anyway.
    """
    if not unanswerable.any():
        return 0.5
    for t in np.unique(np.round(confidence, 3)):
        if (confidence[unanswerable] >= t).mean() <= max_false:
            return float(t)
    return 1.0


def _folds(examples: Sequence[Example], n: int, seed: int) -> dict[int, int]:
    """The fold of each group of questions (a conversation's turns stay together)."""
    groups = sorted({e.group for e in examples})
    random.Random(seed).shuffle(groups)
    return {g: i % n for i, g in enumerate(groups)}


def _held_out_picks(
    examples: Sequence[Example], match: Match, n: int, seed: int, alone: Sequence[Example] = ()
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """`best_of` each of `examples` and of those of `alone` (the same questions asked of one document)
    among them, each scored by a reader fitted on the folds without it."""
    fold_of = _folds(examples, n, seed)
    alone = [e for e in alone if e.group in fold_of]

    def columns(size: int) -> tuple[np.ndarray, ...]:
        return np.zeros(size), np.zeros(size, dtype=bool), np.zeros(size), np.zeros(size, dtype=np.int64)

    many, one = columns(len(examples)), columns(len(alone))
    for f in range(n):
        reader = fit_reader([e for e in examples if fold_of[e.group] != f])
        for picks, questions in ((many, examples), (one, alone)):
            test = [i for i, e in enumerate(questions) if fold_of[e.group] == f]
            for column, values in zip(picks, best_of([questions[i] for i in test], reader, match), strict=True):
                column[test] = values
    return many, one


def train(
    examples: Sequence[Example],
    match: Match,
    max_false: float = MAX_FALSE,
    alone: Sequence[Example] = (),
    seed: int = SEED,
) -> Reader:
    """The reader for `examples`: weights on all of them, calibration and threshold from held-out folds
    (assigned by `seed`), and a calibration of its own for `alone` (questions asked of one document), if given."""
    (logits, right, matches, _), (alone_logits, alone_right, alone_matches, _) = _held_out_picks(
        examples, match, FOLDS, seed, alone
    )
    reader = replace(fit_reader(examples), calibration=fit_calibration(logits, matches, right))
    # The threshold is chosen on the confidence exactly as answering computes it (`Reader.confidence`).
    confidence = np.array([reader.confidence(lg, m) for lg, m in zip(logits, matches, strict=True)])
    unanswerable = np.array([not e.case.answerable for e in examples])
    threshold = choose_threshold(confidence, unanswerable, max_false)
    one = fit_calibration(alone_logits, alone_matches, alone_right) if len(alone_logits) else None
    return replace(reader, threshold=threshold, alone=one)


# --- Honest figures --------------------------------------------------------------------


@dataclass
class Report:
    """Cross-validated figures: every number is on questions the model was not fitted on."""

    answered_right: int = 0
    answerable: int = 0
    unanswerable: int = 0
    abstained_right: int = 0  # abstentions on unanswerable questions
    false_abstained: int = 0
    reachable: int = 0  # answerable questions with a right answer among the candidates
    picked_right: int = 0  # ... and the reader picks it, whatever its confidence
    # Answers holding a gold answer from any document, as ../shared/eval/score.py counts an answer ("answered" is
    # from the question's own document, as it counts a citation): another cable may say the same.
    answered_anywhere: int = 0
    confidence: list[float] = field(default_factory=list)
    right: list[bool] = field(default_factory=list)
    alone_confidence: list[float] = field(default_factory=list)  # questions asked of one document alone
    alone_right: list[bool] = field(default_factory=list)
    alone_answerable: list[bool] = field(default_factory=list)
    alone_answered: list[bool] = field(default_factory=list)

    def figures(self) -> tuple[float, float, float]:
        """answer, abstain, false_abstain."""
        n, u = max(self.answerable, 1), max(self.unanswerable, 1)
        return self.answered_right / n, self.abstained_right / u, self.false_abstained / n

    def furthest_decile(self) -> float:
        """How far the furthest confidence decile's share of right answers is from its mean confidence."""
        conf, right = np.array(self.confidence), np.array(self.right, dtype=bool)
        gaps = [abs(conf[sel].mean() - right[sel].mean()) for _, sel in _decile_masks(conf)]
        return max(gaps, default=0.0)

    def lines(self) -> list[str]:
        n, u = self.answerable, self.unanswerable
        out = [
            f"cross-validated ({FOLDS} folds): n={n}+{u} {_figures(*self.figures())}",
            # Where answers are lost: retrieval (not among the candidates), choice (not picked), abstention.
            f"answerable, held out: the right sentence among the candidates {self.reachable / max(n, 1):.3f}, "
            f"picked {self.picked_right / max(n, 1):.3f}, answered {self.answered_right / max(n, 1):.3f} "
            f"(from any document, as score.py counts answers: {self.answered_anywhere / max(n, 1):.3f})",
            "calibration (confidence decile: questions, mean confidence, share right):",
            *_deciles(self.confidence, self.right),
        ]
        if self.alone_confidence:
            ok, answered = np.array(self.alone_answerable), np.array(self.alone_answered)
            right = np.array(self.alone_right) & answered
            out.append(
                f"asked of one document alone (answerable ones of their own): n={ok.sum()}+{(~ok).sum()} "
                f"answer={_rate(right[ok])} abstain={_rate(~answered[~ok])} "
                f"false_abstain={_rate(~answered[ok])}; calibration:"
            )
            out += _deciles(self.alone_confidence, self.alone_right)
        return out


def _figures(answer: float, abstain: float, false_abstain: float) -> str:
    return f"answer={answer:.3f} abstain={abstain:.3f} false_abstain={false_abstain:.3f}"


def _rate(hits: np.ndarray) -> str:
    return f"{hits.mean() if len(hits) else 0.0:.3f}"


def _decile_masks(conf: np.ndarray) -> list[tuple[float, np.ndarray]]:
    """The lower bound and members of each of [0, 0.1), [0.1, 0.2), ... [0.9, 1.0] that holds any confidence."""
    masks = [
        (lo, (conf >= lo) & (conf < lo + 0.1 if lo < 0.85 else conf <= 1.0)) for lo in np.arange(0.0, 1.0, 0.1)
    ]
    return [(lo, m) for lo, m in masks if m.any()]


def _deciles(confidence: list[float], right: list[bool]) -> list[str]:
    conf, rt = np.array(confidence), np.array(right, dtype=bool)
    return [
        f"  [{lo:.1f}, {lo + 0.1:.1f}): {int(sel.sum()):4d}  {conf[sel].mean():.3f}  {rt[sel].mean():.3f}"
        for lo, sel in _decile_masks(conf)
    ]


def cross_validate(
    examples: Sequence[Example],
    match: Match,
    max_false: float = MAX_FALSE,
    alone: Sequence[Example] = (),
    seed: int = SEED,
) -> Report:
    """Nested: each outer fold is scored by a reader (weights, calibrations, threshold) trained without it.
    `seed` assigns the questions to folds, outer and inner."""
    fold_of = _folds(examples, FOLDS, seed + 1)
    report = Report()
    for f in range(FOLDS):
        train_set = [e for e in examples if fold_of[e.group] != f]
        test = [e for e in examples if fold_of[e.group] == f]
        reader = train(train_set, match, max_false, alone, seed)
        held_out = [e for e in alone if fold_of.get(e.group) == f]
        for e, lg, rt, m, _ in zip(held_out, *best_of(held_out, reader, match), strict=True):
            conf, answers = reader.judge(float(lg), float(m), alone=True)
            report.alone_confidence.append(conf)
            report.alone_right.append(bool(rt))
            report.alone_answerable.append(e.case.answerable)
            report.alone_answered.append(answers)
        for e, lg, rt, m, i in zip(test, *best_of(test, reader, match), strict=True):
            conf, answers = reader.judge(float(lg), float(m))
            report.confidence.append(conf)
            report.right.append(bool(rt))
            if e.case.answerable:
                report.answerable += 1
                report.reachable += bool(e.labels.any())
                report.picked_right += bool(rt)
                report.answered_right += answers and rt
                report.answered_anywhere += answers and i >= 0 and holds_answer(e.texts[i], e.case.answers)
                report.false_abstained += not answers
            else:
                report.unanswerable += 1
                report.abstained_right += not answers
    return report


# What retrieval and fitting depend on: the same questions give slightly different weights under other versions
# of these (the 734 training questions moved the threshold from 0.469 to 0.465 between two days' installs).
_PACKAGES = ("numpy", "scikit-learn", "sentence-transformers", "transformers", "torch", "faiss-cpu", "tantivy")


def _versions() -> dict[str, str]:
    """The installed versions of _PACKAGES, recorded beside the weights fitted with them."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in _PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def run(
    bot: Cablebot,
    paths: Sequence[Path],
    out: Path,
    feedback: Sequence[Path] = (),
    say: Callable[[str], None] = print,
    seeds: int = 1,
) -> Reader:
    """Collect examples from `paths` (and feedback files), cross-validate, train on all, write to `out`.

    With `seeds` > 1, cross-validation is repeated over that many assignments of questions to folds: one
    split's figures move by about 0.01, as much as many a change measured against them."""
    from cablebot.feedback import load_feedback

    conversations = [c for p in paths for c in load_conversations(p)]
    conversations += [c for p in feedback for c in load_feedback(p)]
    say(f"reading {sum(len(c) for c in conversations)} training questions…")
    examples = collect(bot, conversations)
    alone = collect_alone(bot, conversations)
    match = cache(bot.match)  # each fold seed's readers pick mostly the same sentences
    reports = [
        cross_validate(examples, match, alone=alone, seed=seed) for seed in range(SEED, SEED + max(seeds, 1))
    ]
    for line in reports[0].lines():
        say(line)
    if len(reports) > 1:
        for seed, report in enumerate(reports, SEED):
            worst = report.furthest_decile()
            say(f"fold seed {seed}: {_figures(*report.figures())} furthest calibration decile {worst:.3f}")
        say(f"mean of {len(reports)} fold seeds: {_figures(*np.mean([r.figures() for r in reports], axis=0))}")
    reader = train(examples, match, alone=alone)
    data = reader.to_json() | {
        "trained_on": [p.name for p in (*paths, *feedback)],
        "questions": len(examples),
        "packages": _versions(),
    }
    out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    say(
        f"wrote {out}: abstains below confidence {reader.threshold:.3f} (on held-out folds, at most "
        f"{MAX_FALSE:.0%} of the questions the documents do not answer get an answer)"
    )
    return reader
