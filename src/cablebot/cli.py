"""The `cablebot` command: a thin shell over `Cablebot.ask()`.

Heavy modules (torch, faiss) are imported only once a command needs them, so
`cablebot --help` is instant.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cablebot.errors import CablebotError

if TYPE_CHECKING:
    from cablebot.core import Conversation


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _warn(message: str) -> None:
    print(f"cablebot: {message}", file=sys.stderr)


def _common(default: object) -> argparse.ArgumentParser:
    """--index and --config, defined once. Before the command they default to None; after it they are
    left out unless given, so `cablebot --index cables ask ...` and `cablebot ask --index cables ...` agree."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--index", metavar="DIR", default=default, help="index directory (default: from config.toml)"
    )
    common.add_argument("--config", metavar="FILE", default=default, help="settings file (default: ./config.toml)")
    return common


def _parser() -> argparse.ArgumentParser:
    common = _common(argparse.SUPPRESS)
    parser = argparse.ArgumentParser(
        prog="cablebot",
        description="Answer questions about your documents with verbatim, cited quotes.",
        parents=[_common(None)],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    filters = argparse.ArgumentParser(add_help=False)
    group = filters.add_argument_group("filters (answer only from matching documents)")
    group.add_argument("--origin", help='part of the origin, e.g. "Mexico" for "Embassy Mexico"')
    group.add_argument("--since", metavar="DATE", help="created on or after DATE (2009, 2009-10 or 2009-10-23)")
    group.add_argument("--until", metavar="DATE", help="created on or before DATE")
    group.add_argument("--classification", help="e.g. SECRET (also matches SECRET//NOFORN)")
    group.add_argument("--doc", metavar="ID", help="one document, e.g. the reference ID 09MEXICO3061")

    ask = sub.add_parser(
        "ask", parents=[common, filters], help="answer one question (or a batch from stdin with --json)"
    )
    ask.add_argument("question", nargs="*", help="the question; with --json and none, read one a line from stdin")
    ask.add_argument("--json", action="store_true", help="print one JSON object per question")

    sub.add_parser("chat", parents=[common, filters], help="interactive questions with follow-ups")

    ev = sub.add_parser("eval", parents=[common, filters], help="score answers on a JSONL question set")
    ev.add_argument(
        "questions", type=Path, help="JSONL question set (id, question, answers, support, doc, type; or id, turns)"
    )

    sub.add_parser("discord", parents=[common], help="run the Discord bot (token from DISCORD_TOKEN)")

    tr = sub.add_parser(
        "train",
        parents=[common],
        help="retrain the reader on question sets over an index holding their documents",
        description="Retrain the answer reader (data/reader.json) from question sets, with 5-fold "
        "cross-validated figures. The index must hold the documents the questions ask about, e.g. "
        "cablebot train --index cables eval/train.jsonl eval/train-chats.jsonl",
    )
    tr.add_argument("questions", nargs="+", type=Path, help="JSONL question sets (questions or conversations)")
    tr.add_argument("--out", type=Path, help="where to write the model (default: the packaged reader.json)")
    tr.add_argument(
        "--feedback", type=Path, action="append", default=[], metavar="FILE",
        help="also learn from 👍/👎 verdicts recorded in FILE (see [feedback] in config.toml)",
    )  # fmt: skip
    tr.add_argument(
        "--seeds", type=int, default=1, metavar="N",
        help="cross-validate over N assignments of questions to folds and print each and their mean (default 1)",
    )  # fmt: skip

    index = sub.add_parser(
        "index",
        parents=[common],
        help="add files or folders to the index, or re-scan the ones it holds",
        description="Add PATHs (files or folders) to the index, or update them; the documents already "
        "indexed from other paths stay. With no PATH, every recorded path is scanned again (deleted files "
        "drop out); a new index with no PATH indexes the corpus in config.toml. Only new or changed "
        "documents are embedded.",
    )
    index.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="files or folders to add or update")
    index.add_argument(
        "--follow-links", action="store_true", help="follow symbolic links inside the folders (off: skipped)"
    )
    remove = sub.add_parser(
        "remove",
        parents=[common],
        help="drop files or folders (as given to `cablebot index`), or documents by id, from the index",
    )
    remove.add_argument("paths", nargs="+", metavar="PATH|ID", help="recorded files or folders, or document ids")
    return parser


def _settings(args: argparse.Namespace):
    from cablebot.config import load_settings

    return load_settings(args.config, args.index)


def _bot(args: argparse.Namespace, settings=None, **kwargs):
    """The core for a command. Only the default index of the bundled article is built on first use:
    an explicit --index, or a corpus of the user's own, must be built with `cablebot index`."""
    from cablebot.config import BUNDLED_CORPUS
    from cablebot.core import Cablebot

    settings = settings or _settings(args)
    default = args.index is None and [p.resolve() for p in settings.corpus_paths] == [BUNDLED_CORPUS.resolve()]
    return Cablebot(settings, build_missing=default, **kwargs)


def _filter(args: argparse.Namespace):
    from cablebot.retrieval import Filter

    return Filter(args.origin, args.since, args.until, args.classification, args.doc)


def _progress(total: int, every: float | None = None) -> Callable[[int], None]:
    """Embedding progress on stderr (count, rate, time left).

    Redrawn in place on a terminal (also under `script`, whatever width it
    reports); without one (a service, CI, `2>log`), a line every `every` (10) seconds.
    """
    import time

    terminal = sys.stderr.isatty()
    every = every if every is not None else (0.2 if terminal else 10.0)
    started = last = time.monotonic()
    done = 0

    def tick(n: int) -> None:
        nonlocal done, last
        done += n
        now = time.monotonic()
        if now - last < every and done < total:
            return
        last = now
        rate = done / max(now - started, 1e-9)
        line = (
            f"embedding: {done}/{total} sentences, {rate:.0f}/s, {(total - done) / rate if rate else 0:.0f} s left"
        )
        if terminal:
            sys.stderr.write(f"\r{line}\033[K" + ("\n" if done >= total else ""))
            sys.stderr.flush()
        else:
            _warn(line)

    return tick


def _interruptible() -> None:
    """SIGTERM stops indexing like Ctrl-C; after either, a second one exits at once."""
    import os
    import signal

    def first(signum: int, frame: object) -> None:
        signal.signal(signal.SIGINT, lambda *_: os._exit(130))
        signal.signal(signal.SIGTERM, lambda *_: os._exit(130))
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, first)
    signal.signal(signal.SIGTERM, first)


def cmd_index(args: argparse.Namespace) -> int:
    from cablebot.core import build

    _interruptible()

    settings = _settings(args)
    if getattr(args, "follow_links", False):
        settings = dataclasses.replace(settings, index_follow_links=True)
    removing = args.command == "remove"
    report = build(
        settings,
        None if removing else args.paths,
        warn=_warn,
        progress=_progress,
        remove=args.paths if removing else (),
    )
    print(
        f"indexed {_n(report.documents, 'document')} ({report.skipped} skipped, {report.failed} failed), "
        f"{_n(report.chunks, 'chunk')} in {settings.index_dir} ({_n(report.sentences, 'sentence')}: "
        f"{report.embedded} embedded, {report.sentences - report.embedded} reused; "
        f"{_n(report.removed, 'document')} removed) in {report.seconds:.1f}s",
        file=sys.stderr,
    )
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from cablebot.core import check_question
    from cablebot.rendering import to_json, to_text

    if args.question or not args.json:
        question = check_question(" ".join(args.question))  # fail fast, before loading the model
        where = _filter(args)  # a bad filter, too, fails before the model loads
        answer = _bot(args).ask(question, where=where)
        if args.json:
            print(json.dumps(to_json(answer), ensure_ascii=False))
        else:
            print(to_text(answer, color=sys.stdout.isatty()))
        return 0
    where, bot = _filter(args), _bot(args)
    conversations: dict[str, Conversation] = {}
    stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace", newline="\n")
    for line in stdin:
        question = line.rstrip("\r\n")  # what an error row echoes when the line is no question at all
        try:
            question, conversation = _batch_line(line, conversations)
            row = to_json(bot.ask(question, conversation, where))
        except CablebotError as e:
            row = {"question": question, "error": str(e)}
        except Exception as e:  # one bad line never ends the batch: every line gets its answer line
            row = {"question": question, "error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    return 0


def _batch_line(line: str, conversations: dict[str, Conversation]) -> tuple[str, Conversation | None]:
    """A batch line's question, and its conversation when it is a `{"question", "conversation"}` object.

    A line that is not JSON is a question as typed; a JSON object without a question is an error.
    """
    from cablebot.core import Conversation

    text = line.replace("\x00", "").lstrip("\ufeff").rstrip("\r\n")
    if text.lstrip().startswith("{"):
        try:
            row = json.loads(text)
        except ValueError:
            return text, None
        if not isinstance(row, dict) or not isinstance(row.get("question"), str):
            raise CablebotError('a JSON line needs a "question" string')
        key = row.get("conversation")
        if key is None:
            return row["question"], None
        return row["question"], conversations.setdefault(str(key), Conversation())
    return text, None


def cmd_chat(args: argparse.Namespace) -> int:
    import getpass

    from cablebot.core import Conversation
    from cablebot.feedback import record
    from cablebot.rendering import to_text

    settings = _settings(args)
    where, bot = _filter(args), _bot(args, settings)
    conversation = Conversation()
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401 - gives input() history and line editing
    print(
        "Ask about your documents. Follow-up questions keep their context. "
        ":good or :bad rates the last answer. :quit or Ctrl-D quits."
    )
    while True:
        try:
            question = input("\n? ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not question:
            continue
        if question in (":quit", ":exit", ":q"):
            return 0
        try:
            if question in (":good", ":bad"):
                if not conversation.answers:
                    print("cablebot: no answer to rate yet")
                    continue
                record(settings.feedback_path, conversation.answers[-1], question[1:], getpass.getuser(), "chat")
                print(f"noted in {settings.feedback_path}")
                continue
            if re.fullmatch(r":\w+", question):  # a mistyped command is no question to answer
                print(f"cablebot: unknown command {question} (:good or :bad rates the last answer, :quit quits)")
                continue
            print(to_text(bot.ask(question, conversation, where), color=sys.stdout.isatty()))
        except CablebotError as e:
            print(f"cablebot: {e}")


def cmd_eval(args: argparse.Namespace) -> int:
    from cablebot.evaluation import evaluate, load_conversations

    conversations = load_conversations(args.questions)
    where, bot = _filter(args), _bot(args)
    scores = evaluate(conversations, lambda question, conversation: bot.ask(question, conversation, where))
    for miss in scores.misses:
        print(f"MISS {miss}")
    print(scores.summary())
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from cablebot.reading import MODEL_PATH, Reader
    from cablebot.training import run

    try:
        import sklearn  # noqa: F401 - fitting needs it; answering only reads the JSON it writes
    except ImportError as e:
        raise CablebotError("cablebot train needs scikit-learn: pip install -e '.[train]'") from e
    if args.seeds < 1:
        raise CablebotError(f"--seeds must be at least 1, not {args.seeds}")
    bot = _bot(args, reader=Reader.untrained())
    run(bot, args.questions, args.out or MODEL_PATH, args.feedback, say=_warn, seeds=args.seeds)
    return 0


def cmd_discord(args: argparse.Namespace) -> int:
    settings = _settings(args)
    from cablebot.discord_bot import read_token

    read_token(settings)  # fail in milliseconds, before importing the model, when there is no token
    from cablebot.discord_bot import run

    return run(_bot(args, settings))


COMMANDS = {
    "ask": cmd_ask,
    "chat": cmd_chat,
    "index": cmd_index,
    "remove": cmd_index,
    "eval": cmd_eval,
    "train": cmd_train,
    "discord": cmd_discord,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except CablebotError as e:
        _warn(f"error: {e}")
        return e.exit_code
    except KeyboardInterrupt:
        _warn("interrupted; the previous index, if any, is unchanged")
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
