from cablebot.answering import ABSTAIN_TEXT, Answer
from cablebot.chunking import Chunk
from cablebot.rendering import distinct_passages, to_text
from cablebot.retrieval import Hit

PARAGRAPH = "First sentence here. Second sentence there. Third sentence at last. Fourth one ends it."


def _hit(doc: str, start: int, end: int, rank: int) -> Hit:
    return Hit(Chunk(doc, 1, start, end, PARAGRAPH[start:end], "¶1"), 0.5, rank, (0.5,), rank, rank)


def test_overlapping_chunks_are_shown_once_each_sentence() -> None:
    second, third = PARAGRAPH.index("Second"), PARAGRAPH.index("Third")
    hits = [
        _hit("a", second, len(PARAGRAPH), 1),  # the best chunk: from the second sentence on
        _hit("a", 0, third, 2),  # the chunk before it, which repeats the second sentence
        _hit("b", 0, third, 3),  # the same words in another document are another passage
        _hit("a", third, len(PARAGRAPH), 4),  # wholly inside the first passage shown
    ]
    shown = distinct_passages(hits, 3)
    assert [(h.chunk.doc_id, text) for h, text in shown] == [
        ("a", PARAGRAPH[second:]),
        ("b", PARAGRAPH[:third]),
    ]
    answer = Answer("q", ABSTAIN_TEXT, True, (), tuple(hits))
    assert to_text(answer).count("Second sentence there.") == 2  # once for each document


def test_a_chunk_continuing_a_shown_one_extends_it() -> None:
    second, fourth = PARAGRAPH.index("Second"), PARAGRAPH.index("Fourth")
    hits = [_hit("a", 0, fourth, 1), _hit("a", second, len(PARAGRAPH), 2)]
    assert [text for _, text in distinct_passages(hits, 3)] == [PARAGRAPH]
