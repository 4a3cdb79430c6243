"""The reader: question analysis, candidate features, and the shipped model file."""

import json
import math
from collections.abc import Callable

import pytest

from cablebot.chunking import Chunk
from cablebot.errors import CablebotError
from cablebot.reading import (
    FEATURES,
    MODEL_PATH,
    Reader,
    _capitals,
    analyse,
    asked_terms,
    candidate_spans,
    candidates,
    focus,
    load_reader,
    plain_question,
    question_kind,
)
from cablebot.retrieval import Hit, without_names


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("how many cars cross every day?", "number"),
        ("what share of french jobs are short term?", "number"),
        ("when did zardari meet the ambassador?", "date"),
        ("who wrote this?", "person"),
        ("which party might neves switch to?", "organization"),
        ("where is the donors conference?", "place"),
        ("why did the uighur cases worry germany?", "reason"),
        ("what is the name of nato's plan?", "other"),
        # The noun asked for may follow a word or two that describe it, or a possessive.
        ("which polling firm did the survey?", "organization"),
        ("what did the party say?", "other"),
        ("which judge ruled on the warrants?", "person"),
        ("which of kim's sons might beijing back?", "person"),
        ("what is qazi hussain's age?", "number"),
        ("what were the two plots of land worth?", "number"),
        ("which banks got the money?", "organization"),
        # Any other "which" chooses among named things, and "called" asks for the name.
        ("which group's co-chair is it?", "name"),
        ("which rifle does the army use?", "name"),
        ("what is the new plan called?", "name"),
        # "what is" a named thing asks for a name when the noun ends the phrase, not when it owns another.
        ("what is lebanon's foreign minister?", "person"),
        ("what is the mayor of tapachula?", "person"),
        ("what is the capital of honduras?", "place"),
        ("what is the minister's view?", "other"),
        ("what is the president doing?", "other"),
        # Everyday ways of asking for a quantity, a date or a reason.
        ("what was the death toll?", "number"),
        ("what is the distance between the cities?", "number"),
        ("which month did the protests start?", "date"),
        ("what was the date of the attack?", "date"),
        ("what is the reason the cable was not shared?", "reason"),
        ("what motivated the decision?", "reason"),
        ("what was the main issue?", "other"),
    ],
)
def test_question_kinds(question: str, kind: str) -> None:
    assert question_kind(question) == kind


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("what's the population of chiapas?", "what is the population of chiapas?"),
        ("whos the president?", "who is the president?"),
        ("Where’s the summit?", "Where is the summit?"),
        ("why can't mexico police its border?", "why can not mexico police its border?"),
        ("why didnt they go?", "why did not they go?"),
        ("why won't serbia agree?", "why will not serbia agree?"),
        # Chat shorthand is written in full: "ppl" and "govt" are words no passage holds.
        ("how many ppl died?", "how many people died?"),
        ("what did the govt say w/o the pres?", "what did the government say without the president?"),
        ("is the site on a .org domain?", "is the site on a .org domain?"),
        ("who'll replace him?", "who will replace him?"),
        # A possessive, and words that only look like contractions, stay as typed.
        ("who is dubai's crown prince?", "who is dubai's crown prince?"),
        ("whose plan is it?", "whose plan is it?"),
        ("who is o'neill?", "who is o'neill?"),
        # What chat wraps around a question goes; a question mark is added where it was left out.
        ("hey, can you tell me who's the president", "who is the president?"),
        ("do you know when the vote is?", "when the vote is?"),
        ("I'd like to know who won, thanks!", "who won!"),
        ("who won according to the cables?", "who won?"),
        ("in the article, who is quoted?", "who is quoted?"),
        ("who is in the cables?", "who is in the cables?"),
        ("what did the minister tell me?", "what did the minister tell me?"),
        ("thanks!", "thanks!"),
        # A noun phrase alone asks what it names; a yes/no question, a command or a follow-up does not.
        ("lebanon's foreign minister?", "what is lebanon's foreign minister?"),
        ("population of chiapas", "what is population of chiapas?"),
        ("did they meet?", "did they meet?"),
        ("list the ministers", "list the ministers?"),
        ("and his sister?", "and his sister?"),
        # A question word left at the end asks what it asks at the front.
        ("the guatemala border is how long?", "how long is the guatemala border?"),
        ("his sister was who", "who was his sister?"),
        ("added to the plan were which countries?", "which countries were added to the plan?"),
        ("who is it?", "who is it?"),
    ],
)
def test_a_question_is_read_plain(typed: str, meant: str) -> None:
    assert plain_question(typed) == meant


def test_a_contracted_question_is_analysed_as_the_full_one() -> None:
    for typed, meant in [
        ("whats the population of chiapas?", "what is the population of chiapas?"),
        ("why didn't the us help?", "why did not the us help?"),
    ]:
        short, full = (analyse(q, lambda t: 1.0, 1.0) for q in (typed, meant))
        assert (short.kind, short.weights, short.asked) == (full.kind, full.weights, full.asked)
    assert analyse("whats the population of chiapas?", lambda t: 1.0, 1.0).kind == "number"
    # An auxiliary after the question word, a modal or a negation too, is not what is asked about.
    assert asked_terms("why can not mexico police its border?") == ("mexico", "polic")


def test_asked_terms_are_what_the_question_is_about() -> None:
    assert asked_terms("which hospital treated the president?") == ("hospit", "treat")
    assert asked_terms("How many Mexican officials guard the border?") == ("mexican", "offici")
    assert asked_terms("who designed the airfield?") == ("design",)
    assert asked_terms("tell me more") == ()
    # After a possessive the question asks about what is owned, not the owner.
    assert asked_terms("who is dubai's crown prince?") == ("crown", "princ")
    assert asked_terms("who is the conservatives’ shadow chancellor?") == ("shadow", "chancellor")


def test_a_title_inside_the_name_counts_as_close_to_it() -> None:
    question = "who is serbia's foreign minister?"
    qterms = set(analyse(question, lambda t: 1.0, 1.0).weights)
    titled = "In contrast, Foreign Minister Vuk Jeremic, driven by self promotion, said no."
    span, closeness = focus("person", titled, question, qterms)
    assert titled[span[0] : span[1]] == "Foreign Minister Vuk Jeremic"
    assert closeness == pytest.approx(4.0, abs=0.05)  # "foreign" and "minist" inside the name
    _, untitled = focus("person", "Vuk Jeremic said no.", question, qterms)
    assert untitled < 1.0


@pytest.mark.parametrize(
    ("question", "marked"),
    [
        ("who did netanyahu meet in moscow?", "President Medvedev"),
        ("who did benjamin netanyahu meet?", "President Medvedev"),
        ("who did medvedev meet?", "PM Netanyahu"),
    ],
)
def test_the_person_the_question_names_is_not_marked_as_the_answer(question: str, marked: str) -> None:
    sentence = "In his first visit to Russia, PM Netanyahu met with President Medvedev in Moscow."
    qterms = set(analyse(question, lambda t: 1.0, 1.0).weights)
    span, _ = focus("person", sentence, question, qterms, mark=True)
    assert sentence[span[0] : span[1]] == marked
    # As a feature the sentence still fits the question through the person it names (the reader learned
    # that as relevance), so without `mark` that person is a candidate span.
    spans = [sentence[a:b] for a, b in candidate_spans("person", sentence, question)]
    assert spans == ["PM Netanyahu", "President Medvedev"]


@pytest.mark.parametrize(
    ("question", "marked"),
    [
        ("how many cbp officers are on the us border?", "30,000"),
        ("how long is the us-mexico border?", "1,926"),
        ("how long is the mexican border with guatemala?", "577"),
    ],
)
def test_a_number_with_a_thousands_separator_keeps_the_words_after_it(question: str, marked: str) -> None:
    # The comma inside "30,000" ends no clause: the words after the number are what it counts.
    sentence = (
        "While there are 30,000 U.S. CBP officers on the 1,926 mile Mexican/U.S. border, only 125 Mexican "
        "immigration officials monitor the 577 mile border with Guatemala."
    )
    qterms = set(analyse(question, lambda t: 1.0, 1.0).weights)
    span, _ = focus("number", sentence, question, qterms)
    assert sentence[span[0] : span[1]] == marked


def _hit(text: str, rank: int, scores: tuple[float, ...]) -> Hit:
    return Hit(Chunk("doc", 1, 0, len(text), text, "¶1"), max(scores), rank, scores, rank, 0)


def test_the_question_without_its_names_keeps_what_it_asks_of_them() -> None:
    passages = ["Talks on Syria. The Syrian border let Hamas fighters transit to Iraq, said Minister Moallem."]
    # Written with a capital after a sentence's first word: a name, whatever its case in the question.
    assert without_names("who does syria let transit to iraq?", passages) == "who does let transit to ?"
    assert without_names("what did moallem's ministry say?", passages) == "what did ministry say ?"
    # "Talks" and "The" open sentences and are no names; "border" is never capitalised.
    assert without_names("what talks on the border?", passages) == "what talks on the border?"
    # A question of names alone is searched whole.
    assert without_names("syria?", passages) == "syria?"


def test_every_sentence_is_a_candidate_with_one_value_per_feature() -> None:
    q = analyse("how many officials guard the border?", lambda t: 2.0, 5.0)
    hits = [
        _hit("Only 125 officials guard the border. The border is long.", 1, (0.8, 0.4)),
        _hit("The border is long. Is it guarded?", 2, (0.4, 0.2)),
    ]
    found = candidates(q, hits, k=8)
    # The repeated sentence counts once, a question is never an answer.
    assert [c.text for c in found] == ["Only 125 officials guard the border.", "The border is long."]
    assert all(len(c.features) == len(FEATURES) for c in found)
    named = dict(zip(FEATURES, found[0].features, strict=True))
    assert named["sentence_cosine"] == 0.8 and named["fits_number"] == 1.0 and named["coverage"] == 1.0
    assert named["sentence_cosine_vs_best"] == 0.0
    assert dict(zip(FEATURES, found[1].features, strict=True))["sentence_cosine_vs_best"] == pytest.approx(-0.4)


def test_a_sentence_is_scored_the_same_whether_or_not_a_heading_shouts_beside_it() -> None:
    """Cables carry subject lines and headings in capitals, an article none: a sentence compared with the
    most-capitalised candidate read about 0.7 logits more likely in a cable than the same sentence in the
    article, so the bundled article's right answers came out unsure."""
    q = analyse("how many officials guard the border?", lambda t: 2.0, 5.0)
    answer = _hit("Only 125 officials guard the border.", 1, (0.8,))
    plain = _hit("The border is long.", 2, (0.4,))
    shouting = _hit("BORDER SECURITY IN CHIAPAS", 2, (0.4,))
    reader = load_reader()
    beside_plain = candidates(q, [answer, plain], k=8)[0]
    beside_heading = candidates(q, [answer, shouting], k=8)[0]
    assert beside_plain.features == beside_heading.features
    assert reader.logits([beside_plain.features]) == reader.logits([beside_heading.features])


def test_the_shipped_model_matches_the_features_and_is_plain_json() -> None:
    data = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    assert data["features"] == list(FEATURES) and len(data["weights"]) == len(FEATURES)
    reader = load_reader()
    assert 0.0 < reader.threshold < 1.0 and 0.0 <= reader.confidence(0.0, 0.5) <= 1.0
    assert Reader.from_json(reader.to_json()) == reader


def test_a_model_for_other_features_says_how_to_retrain(tmp_path) -> None:
    data = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    data["features"] = data["features"][:-1]
    path = tmp_path / "reader.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(CablebotError, match="cablebot train"):
        load_reader(path)


def test_a_model_calibrated_without_the_word_match_says_how_to_retrain(tmp_path) -> None:
    data = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    data["calibration"] = data["calibration"][::2]  # (a, b): the pick's score alone, as before
    path = tmp_path / "reader.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(CablebotError, match=r"older cablebot .*cablebot train"):
        load_reader(path)


def test_an_excerpt_without_a_word_is_never_an_answer() -> None:
    from cablebot.answering import choose_answer
    from cablebot.reading import FEATURES

    dashes = "-" * 500 + " ab."  # cut to 400 characters, the excerpt would be nothing but "…"
    hit = Hit(Chunk("doc", 1, 0, len(dashes), dashes, "¶1"), 0.9, 1, (0.9,), 1, 1)

    always = Reader((0.0,) * len(FEATURES), 10.0, (1.0, 0.0, 0.0), 0.5, 0.6)
    question = analyse("what is it?", lambda t: 1.0, 5.0)
    answer = choose_answer(question.text, question, [hit], {}, always, lambda sentence: 0.5, 8, 400)
    assert answer.abstained and answer.citations == ()


def _spans(kind: str, question: str) -> Callable[[str], list[str]]:
    """The texts of the spans of a sentence that could answer `question`, a question of this kind."""
    return lambda sentence: [sentence[a:b] for a, b in candidate_spans(kind, sentence, question)]


def test_a_person_is_no_organisation() -> None:
    people = _spans("person", "who commands the troops?")

    assert people(
        "The Commander of the U.S. Africa Command, General William Ward, met President Amadou Toure."
    ) == [
        "General William Ward",
        "President Amadou Toure",
    ]
    # After the organisation, the person it names: the Bank's governor.
    assert people("Bank of England Governor Mervyn King spoke.") == ["England Governor Mervyn King"]
    assert people("The Social Democrats lead the Christian Democrats in all polls.") == []
    # An organisation asked for is still one.
    assert _spans("organization", "which party leads?")("The Social Democrats lead in all polls.") == [
        "Social Democrats"
    ]


def test_a_name_at_the_end_of_a_sentence_leaves_the_full_stop() -> None:
    places = _spans("place", "where did he fly?")

    assert places("The minister flew to France.") == ["France"]
    assert places("The minister then flew to the U.S.") == ["U.S."]


def test_a_capitalised_word_opening_a_sentence_is_no_part_of_a_name() -> None:
    people = _spans("person", "who is the president?")

    assert people("While Mexico needs reform, the bigger issues remain.") == []
    assert people("The Minister Felipe Calderon spoke.") == ["Minister Felipe Calderon"]


def test_a_number_joined_to_its_unit_by_a_hyphen_is_a_measure_and_a_code_is_no_number() -> None:
    measures = _spans("number", "how long was the meeting?")

    assert measures("Gordon's 40-minute meeting with the minister covered Iran.") == ["40"]
    assert measures("They flew F-16 jets for 3 hours.") == ["3"]
    assert measures("Between 350-400 shipments cross each day.") == ["350-400"]


def test_how_much_asks_for_an_amount_not_a_count() -> None:
    amounts = _spans("number", "how much did the deal cost?")
    counts = _spans("number", "how many trucks were there?")
    sentence = "The three contracts, for 40 trucks, cost $95 million, 2 million euros and 12 percent of it."

    assert amounts(sentence) == ["$95 million", "2 million", "12 percent"]
    assert counts(sentence) == ["three", "40", "$95 million", "2 million", "12 percent"]
    # A count is no amount: a sentence holding only counts holds nothing "how much" asks for.
    assert amounts("Of more than ten seizures, none were prosecuted.") == []
    assert counts("Of more than ten seizures, none were prosecuted.") == ["ten"]
    assert amounts("The drugs weighed 40 kilograms.") == ["40"]


def test_the_day_of_a_date_is_no_quantity() -> None:
    amounts = _spans("number", "what price did magna pay?")

    assert amounts("On November 3, GM canceled its sale of Opel to Magna.") == []
    assert amounts("On 3 November GM sold 3 plants for $500 million.") == ["3", "$500 million"]


def test_a_year_is_no_count_but_a_number_of_things_is() -> None:
    counts = _spans("number", "how many soldiers are there?")

    assert counts("Eritrean troops attacked the outpost in 1994, at the same time.") == []
    assert counts("He coached the 1998 World Cup team.") == []
    assert counts("They sent 2000 troops and 300 tanks.") == ["2000", "300"]
    assert counts("In 2009 the army had 5 brigades.") == ["5"]


@pytest.mark.parametrize(
    "text",
    [
        "CHANCELLOR DARLING ON BANKERS’ BONUSES",
        "Zapatero’s “faithful ally” in Élysée talks",
        "plain ascii, Mostly",
        "",
        "’…",
    ],
)
def test_the_share_of_capitals_counts_every_letter_once(text: str) -> None:
    """Counted by bytes for ASCII and one by one for the rest: the same as counting every character."""
    letters = [ch for ch in text if ch.isalpha()]
    expected = sum(ch.isupper() for ch in letters) / len(letters) if letters else 0.0
    assert _capitals(text) == pytest.approx(expected)


def test_the_reader_scores_candidates_as_its_weights_say() -> None:
    reader = Reader(tuple(float(i % 3) for i in range(len(FEATURES))), -1.0, (1.0, 0.0, 0.0), 0.5, 0.6)
    rows = [[1.0] * len(FEATURES), [0.0] * len(FEATURES)]
    assert reader.logits(rows) == pytest.approx([sum(reader.weights) - 1.0, -1.0])
    assert reader.logits([]) == []


def test_the_second_look_picks_among_the_best_first_scores_only() -> None:
    """The first model ranks; the second chooses among its `rivals` best, never below them."""
    n = len(FEATURES)
    first = [1.0] + [0.0] * (n - 1)  # the first model reads feature 0
    second = [0.0, 1.0] + [0.0] * (n - 2)  # the second, feature 1
    reader = Reader(tuple(first), 0.0, (1.0, 0.0, 0.0), 0.5, 0.6, 2, tuple(second), 0.0)
    rows = [
        [3.0, 0.0] + [0.0] * (n - 2),  # best first score
        [2.0, 5.0] + [0.0] * (n - 2),  # second best: the second look prefers it
        [1.0, 9.0] + [0.0] * (n - 2),  # third: outside the rivals, however the second look likes it
    ]
    assert reader.choose(rows, reader.logits(rows)) == 1
    assert Reader(tuple(first), 0.0, (1.0, 0.0, 0.0), 0.5, 0.6).choose(rows, reader.logits(rows)) == 0
    assert Reader.from_json(reader.to_json()) == reader


def test_one_document_has_its_own_calibration_but_the_same_line_between_answering_and_abstaining() -> None:
    n = len(FEATURES)
    reader = Reader((0.0,) * n, 0.0, (1.0, 2.0, -1.0), 0.5, 0.6, alone=(1.0, 2.0, 0.0))
    assert reader.judge(0.0, 0.5) == (pytest.approx(0.5), True)
    confidence, answers = reader.judge(-0.5, 0.5, alone=True)
    assert confidence == pytest.approx(1 / (1 + math.exp(-0.5))) and not answers  # 0.62, yet below the line
    assert reader.judge(0.0, 0.5, alone=True) == (pytest.approx(1 / (1 + math.exp(-1.0))), True)
    # The pick's weakest_match weighs as the calibration says: a word of the question unmatched, less sure.
    assert reader.judge(0.0, 0.25) == (pytest.approx(1 / (1 + math.exp(0.5))), False)
    assert Reader.from_json(reader.to_json()) == reader
    plain = Reader((0.0,) * n, 0.0, (1.0, 0.0, 0.0), 0.5, 0.6)
    assert plain.judge(0.3, 0.5, alone=True) == plain.judge(0.3, 0.5)  # no calibration of its own: the usual one
    assert Reader.from_json(plain.to_json()) == plain


@pytest.mark.parametrize(("runner_up", "order"), [(0.52, ["A", "B"]), (0.6, ["B", "A"])])
def test_listed_passages_weigh_their_best_sentence_by_their_retrieval_rank(
    runner_up: float, order: list[str]
) -> None:
    from cablebot.answering import choose_answer

    def hit(name: str, rank: int, cosine: float) -> Hit:
        text = f"Passage {name} says something."
        return Hit(Chunk(name, 1, 0, len(text), text, "¶1"), cosine, rank, (cosine,), rank, rank)

    weights = [0.0] * len(FEATURES)
    weights[FEATURES.index("sentence_cosine")] = 10.0
    reader = Reader(tuple(weights), 0.0, (1.0, 0.0, 0.0), 0.5, 0.6)
    question = analyse("what was said?", lambda t: 1.0, 5.0)
    hits = [hit("A", 1, 0.5), hit("B", 2, runner_up), hit("C", 3, 0.9)]
    answer = choose_answer(question.text, question, hits, {}, reader, lambda sentence: 0.5, 8, 400)
    # C holds the answer and comes first; then A's score 5.0 at rank 1 against B's 5.2 or 6.0 at rank 2,
    # less log 2 (0.69): 4.5 or 5.3.
    assert [h.chunk.doc_id for h in answer.hits] == ["C", *order]
    assert [h.rank for h in answer.hits] == [1, 2, 3]


def test_a_question_word_the_sentence_has_nothing_like_lowers_its_weakest_match(seed_bot) -> None:
    """The confidence weighs how well the question's least matched content word is matched in the sentence
    answered with, read in context by the real encoder: a paraphrase keeps it high, a near miss does not."""
    sentence = "The harbour of Port Elin handles 40 ships a week."
    same = seed_bot.match("how many ships does the harbour handle?", sentence)
    paraphrase = seed_bot.match("how many vessels does the port handle?", sentence)
    near_misses = [
        seed_bot.match(q, sentence)
        for q in ("how many tourists visit the harbour?", "how many ships does the airport handle?")
    ]
    assert min(same, paraphrase) > max(near_misses) + 0.2
    assert seed_bot.match("how many?", sentence) == 0.0  # question words alone: nothing asked of the sentence


def test_a_cable_asked_for_as_a_whole_quotes_the_summary_after_its_heading() -> None:
    """Cables write their summary as a paragraph ("1. (C) SUMMARY: ...") or under a heading; the quote is its
    first sentence of words, without the paragraph's classification marking."""
    from cablebot.answering import choose_answer
    from cablebot.documents import Document

    texts = ["A SUBJECT LINE", "------- SUMMARY -------", "- - -", "1. (C) The minister met the envoy. Then more."]
    chunks, start = [], 0
    for n, text in enumerate(texts):
        chunks.append(Chunk("09XX1", n, start, start + len(text), text, f"¶{n}"))
        start += len(text) + 2
    hits = [Hit(c, 0.5, rank) for rank, c in enumerate(reversed(chunks), 1)]  # in any order of rank
    cable = {"reference_id": "09XX1", "subject": "A SUBJECT LINE"}
    documents = {"09XX1": Document("09XX1", "A SUBJECT LINE", metadata=cable)}
    question = analyse("summarize 09XX1", lambda t: 1.0, 5.0)
    reader = Reader((0.0,) * len(FEATURES), 0.0, (1.0, 0.0, 0.0), 0.5, 0.6)
    answer = choose_answer(question.text, question, hits, documents, reader, lambda s: 0.5, 8, 400, alone=True)
    assert answer.text == "The minister met the envoy." and answer.citations[0].location == "¶3"
    # With no summary (no heading before the paragraph): what the cable is about, its subject line.
    unheaded = [hits[0], hits[3]]
    answer = choose_answer(question.text, question, unheaded, documents, reader, lambda s: 0.5, 8, 400, alone=True)
    assert answer.text == "Subject: A SUBJECT LINE" and answer.citations[0].location == "metadata"


@pytest.mark.parametrize(
    ("question", "fields"),
    [
        ("what is 09MEXICO3061 about?", ["subject"]),
        ("what is the subject of this cable?", ["subject"]),
        ("summarize 09MEXICO3061", ["summary"]),
        ("tell me about this cable", ["summary"]),
        ("09MEXICO3061", ["summary"]),
        ("what does it say?", ["summary"]),
        ("what's the title?", ["subject"]),
        # Questions about what the text says.
        ("what is the ambassador's title?", []),
        ("what was the title of the conference?", []),
        ("what is the subject of the talks in this cable?", []),
        ("what does the cable say about Mexico?", []),
        ("tell me about the border crossings in this article", []),
        ("what is qatar's conference about?", []),
    ],
)
def test_questions_about_a_document_as_a_whole_are_told_from_questions_about_its_text(
    question: str, fields: list[str]
) -> None:
    from cablebot.answering import metadata_fields

    assert metadata_fields(plain_question(question)) == fields
