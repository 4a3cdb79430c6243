"""The core: `Cablebot.ask(question) -> Answer`. The CLI and the Discord bot only call this."""

from __future__ import annotations

import dataclasses
import functools
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cablebot.answering import Answer, choose_answer, understand
from cablebot.config import Settings
from cablebot.errors import CablebotError
from cablebot.reading import weakest_match

if TYPE_CHECKING:
    from cablebot.embedding import Embedder
    from cablebot.index import BuildReport
    from cablebot.reading import Question, Reader
    from cablebot.retrieval import Filter, Hit

MAX_QUESTION_CHARS = 2000
EXPAND = 30  # chunks of the best passage's document also weighed as answers


def check_question(question: str) -> str:
    """The question, stripped; a one-line error for empty or over-long questions."""
    q = " ".join((question or "").split())
    if not q:
        raise CablebotError("the question is empty", exit_code=2)
    if len(q) > MAX_QUESTION_CHARS:
        raise CablebotError(f"the question is {len(q)} characters long; the limit is {MAX_QUESTION_CHARS}", 2)
    return q


def _stderr(message: str) -> None:
    print(f"cablebot: {message}", file=sys.stderr)


_REFERS_BACK = re.compile(r"\b(that|this|those|these|it|its|they|them|their|he|she|his|her|him|there)\b")
_EXISTENTIAL = re.compile(r"\b(is|are|was|were) there\b|\bthere (is|are|was|were)\b")


def is_follow_up(question: str) -> bool:
    """Does the question lean on an earlier one ("And how long is that border?", "when?", "who said that?")?

    A leading conjunction, an ellipsis of three words or fewer, or a short
    question with a pronoun or demonstrative that points back ("there" as in
    "are there" points nowhere). Checked on the turns of eval/train-chats.jsonl.
    """
    q = _EXISTENTIAL.sub(" ", question.lower())
    words = re.findall(r"[\w'’-]+", q)
    return bool(
        re.match(r"^\s*(and|but|also|what about|how about|so|then)\b", q)
        or len(words) <= 3
        or (_REFERS_BACK.search(q) and len(words) <= 10)
    )


@dataclass
class Conversation:
    """A chat: the previous question and answer give a follow-up its context."""

    questions: list[str] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)

    def context_for(self, question: str) -> tuple[str, Answer | None]:
        if self.questions and is_follow_up(question):
            return self.questions[-1], self.answers[-1]
        return "", None

    def add(self, answer: Answer) -> None:
        self.questions.append(answer.question)
        self.answers.append(answer)


def build(
    settings: Settings,
    paths: Sequence[Path] | None = None,
    embedder: Embedder | None = None,
    warn: Callable[[str], None] = _stderr,
    progress=None,
    remove: Sequence[str] = (),
) -> BuildReport:
    """Add `paths` to the index in the configured directory, or re-scan what it was built from.

    The index keeps every source (file or folder) it was ever given: `paths`
    are added to them (or updated), and with no `paths` all of them are
    scanned again, so files deleted since drop out. The first build of an
    index with no `paths` indexes the configured corpus. `remove` drops
    recorded sources, or documents by id (their files are then left out of
    later scans until a path holding them is indexed again). Only documents
    whose content changed are parsed and embedded again.
    """
    from cablebot.embedding import load_embedder
    from cablebot.index import MANIFEST, build_index, indexed_document, read_json_object

    manifest = read_json_object(settings.index_dir / MANIFEST)
    recorded = [Path(p) for p in manifest.get("sources", []) if isinstance(p, str)]
    excluded = [Path(p) for p in manifest.get("excluded", []) if isinstance(p, str)]
    dropped = set()
    for item in remove:
        if Path(item).resolve() in recorded:
            dropped.add(Path(item).resolve())
        elif doc := indexed_document(settings.index_dir, item):
            excluded.append(Path(doc.path))
        else:
            listed = ", ".join(map(str, recorded)) or "none"
            raise CablebotError(
                f"{item} is neither a source nor a document of {settings.index_dir} (its sources: {listed})"
            )
    sources = [p for p in recorded if p not in dropped]
    if paths:
        added = [Path(x).resolve() for x in paths]
        sources += [p for p in added if p not in sources]
        excluded = [e for e in excluded if not any(e == a or a in e.parents for a in added)]
    elif not recorded:
        sources = [Path(p).resolve() for p in settings.corpus_paths]
    if not sources:
        raise CablebotError(f"no sources left in {settings.index_dir}; add some with: cablebot index PATH...")
    embedder = embedder or load_embedder(
        settings.embedding_model, settings.embedding_backend, settings.embedding_quantize
    )
    s = settings
    return build_index(
        sources,
        embedder,
        s.index_dir,
        s.chunking_tokens,
        s.chunking_overlap,
        s.embedding_batch_size,
        warn,
        progress,
        s.index_approximate_above,
        s.index_follow_links,
        int(s.index_max_file_mb * 1_000_000),
        excluded,
        s.index_backend,
        s.index_uri,
    )


class Cablebot:
    """The loaded model and index; answers questions in milliseconds once loaded."""

    def __init__(
        self,
        settings: Settings,
        warn: Callable[[str], None] = _stderr,
        reader: Reader | None = None,
        build_missing: bool = True,
    ) -> None:
        """Load the model and the index; with `build_missing`, build a missing index of the configured corpus.

        The CLI builds a missing index only for the default index of the bundled article: an explicit
        `--index DIR` that holds none is an error naming the command that builds it.
        """
        from concurrent.futures import ThreadPoolExecutor

        from cablebot.embedding import load_embedder
        from cablebot.index import Index, IndexMissing, IndexOutdated, chunker_settings
        from cablebot.reading import load_reader
        from cablebot.retrieval import Retriever

        self.settings = settings
        # The index's files are read (and checked) while the model loads: at 7 M chunks that saved 0.1 s
        # of a 1.1 s cold ask, 0.2 s from an empty page cache. Statting the indexed files (0.02 s over the
        # 1,295 cables) happens there too, off the path of a cold ask.
        with ThreadPoolExecutor(1, thread_name_prefix="cablebot-load") as pool:
            loading = pool.submit(Index.load, settings.index_dir)
            checking = pool.submit(lambda: loading.result().stale_documents())
            self.embedder = load_embedder(
                settings.embedding_model, settings.embedding_backend, settings.embedding_quantize
            )
        configured = [str(p.resolve()) for p in settings.corpus_paths]
        stale: list[str] = []  # an index built just now is up to date
        try:
            index = loading.result()
            stale = checking.result()
        except IndexMissing:
            if not build_missing:
                raise
            warn(f"no index in {settings.index_dir} yet; indexing {', '.join(configured)} (once)…")
            build(settings, embedder=self.embedder, warn=warn)
            index = Index.load(settings.index_dir)
        except IndexOutdated as e:
            if e.manifest.get("sources") != configured:
                raise
            warn(f"{e.args[0].split(';')[0]}; rebuilding it…")
            build(settings, embedder=self.embedder, warn=warn)
            index = Index.load(settings.index_dir)
        rebuild = f"cablebot index --index {settings.index_dir} PATH..."
        chunker = chunker_settings(settings.chunking_tokens, settings.chunking_overlap)
        changed = "the parser, the chunking settings or the term rules changed"
        outdated = index.model_mismatch(self.embedder.name, self.embedder.dim) or (
            "" if index.manifest.get("chunker") == chunker else changed
        )
        if stale and not outdated:
            outdated = f"{len(stale)} indexed file(s) changed (e.g. {stale[0]})"
        if outdated and index.manifest.get("sources") == configured:
            warn(f"{outdated}; updating {settings.index_dir}…")
            build(settings, embedder=self.embedder, warn=warn)
            index = Index.load(settings.index_dir)
        elif outdated and not stale:
            raise CablebotError(
                f"index in {settings.index_dir} is out of date: {outdated}; rebuild it with: {rebuild}"
            )
        elif outdated:
            warn(f"{outdated} since indexing; update the index with: {rebuild}")
        self.retriever = Retriever(index, self.embedder)
        self.reader = reader or load_reader()

    @property
    def index(self):
        return self.retriever.index

    def scope(self, question: str, context: str = "", where: Filter | None = None) -> Filter | None:
        """`where`, narrowed to the cable the question (or the earlier one) names by reference ID, if any."""
        from cablebot.retrieval import Filter

        if where and where.doc:  # already one cable (a filter, or a scope worked out before)
            return where
        named = self.retriever.named_document(question) or self.retriever.named_document(context)
        if named:  # a question naming a cable searches that cable
            return dataclasses.replace(where or Filter(), doc=named)
        return where

    def retrieve(
        self, question: str, context: str = "", where: Filter | None = None, previous: Answer | None = None
    ) -> tuple[Question, list[Hit]]:
        """`question` as it is read (the earlier question `context` and its answer `previous` with it), and
        the passages an answer to it is looked for in."""
        q = understand(question, self.retriever, context, previous)
        scope = self.scope(question, context, where)
        return q, self.retriever.search(q.searched, self.settings.answer_k, scope, expand=EXPAND, question=q.text)

    def match(self, query: str, sentence: str) -> float:
        """`weakest_match` of `sentence` with the question as searched (`query`: with its context)."""
        tokens = self.embedder.token_vectors
        return weakest_match(query, tokens(query), tokens(sentence))

    def ask(self, question: str, conversation: Conversation | None = None, where: Filter | None = None) -> Answer:
        """Answer `question` verbatim from the documents `where` allows, or abstain."""
        question = check_question(question)
        matched = self.retriever.matching_documents(where) if where else None
        if matched == 0:  # not an abstention: the filters left nothing to answer from
            return Answer(question, f"No documents match {where}.", True, (), (), filter_matched=0)
        context, previous = conversation.context_for(question) if conversation else ("", None)
        scope = self.scope(question, context, where)
        # One document: an index of one, or a filter (or a reference ID in the question) that leaves one.
        alone = len(self.index.documents) == 1 or bool(scope and self.retriever.matching_documents(scope) == 1)
        q, hits = self.retrieve(question, context, scope, previous)
        s = self.settings
        match = functools.partial(self.match, q.searched)
        answer = choose_answer(
            question,
            q,
            hits,
            self.index.documents,
            self.reader,
            match,
            s.answer_k,
            s.answer_max_chars,
            previous,
            alone,
        )
        answer = dataclasses.replace(answer, hits=answer.hits[: s.answer_k], filter_matched=matched)
        if conversation is not None:
            conversation.add(answer)
        return answer
