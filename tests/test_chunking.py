from itertools import pairwise

from cablebot.chunking import chunk_document, count_tokens, sentence_spans
from cablebot.documents import Document


def split_sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in sentence_spans(text)]


def test_sentences_keep_numbers_abbreviations_and_initials() -> None:
    text = (
        "While there are 30,000 U.S. CBP officers on the 1,926 mile border, only 125 watch. "
        "Dr. J. Smith said so at 3 p.m. on Monday. It cost $1.5 million. See No. 5 below."
    )
    assert split_sentences(text) == [
        "While there are 30,000 U.S. CBP officers on the 1,926 mile border, only 125 watch.",
        "Dr. J. Smith said so at 3 p.m. on Monday.",
        "It cost $1.5 million.",
        "See No. 5 below.",
    ]


def test_chunks_are_sentence_aligned_sized_overlapping_and_located() -> None:
    sentences = [f"Sentence number {i} talks about the border with some more words here." for i in range(30)]
    doc = Document(id="d", title="D", paragraphs=("Short intro.", " ".join(sentences)))
    chunks = list(chunk_document(doc, max_tokens=60, overlap=15))
    assert chunks[0].text == "Short intro." and chunks[0].paragraph == 1
    body = chunks[1:]
    assert all(c.paragraph == 2 for c in body)
    for c in chunks:
        assert doc.text[c.start : c.end] == c.text  # offsets point into the document
        assert count_tokens(c.text) <= 60
        assert c.text.endswith(".")
    for a, b in pairwise(body):
        assert b.start < a.end  # overlap
        assert split_sentences(b.text)[0] == split_sentences(a.text)[-1]
    covered = " ".join(c.text for c in body)
    assert all(s in covered for s in sentences)


def test_every_chunk_respects_the_token_limit_whatever_the_punctuation() -> None:
    words = " ".join(f"word{i}" for i in range(3000))  # no sentence punctuation at all
    giant = "x" * 5000  # one word far over the limit
    doc = Document("d", "D", paragraphs=(words, giant, "A short sentence. Another one."))
    chunks = list(chunk_document(doc, 100, 30))
    assert all(count_tokens(c.text) <= 100 for c in chunks)
    text = doc.text
    assert all(text[c.start : c.end] == c.text for c in chunks)  # still verbatim spans of the document
    assert "".join(c.text for c in chunks if c.paragraph == 2) == giant  # cut, not lost
    assert [c.text for c in chunks if c.paragraph == 3] == ["A short sentence. Another one."]
