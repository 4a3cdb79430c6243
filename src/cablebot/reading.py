"""Reading: which retrieved sentence answers the question, scored by a learned model.

Every sentence of the retrieved passages is a candidate. Each gets a vector
of general features (how similar its passage is to the question, how many of
the question's rare words it holds, whether it holds the kind of span asked
for, ...). A logistic regression trained on `eval/train.jsonl` (see
`training.py`) turns them into the probability that the sentence answers the
question. A second logistic regression, trained only on the few best-scored
candidates of questions where right and wrong ones are that close, takes a
second look at those rivals and picks among them; a calibration learned on
held-out folds turns the pick's first score, with how well the question's
least matched word is matched in it (`weakest_match`), into the answer's
confidence. The weights ship as plain JSON in `data/reader.json`.

The regular expressions here are general knowledge of English questions and
of how cables write numbers, dates and names; nothing is tuned to a question.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

from cablebot.chunking import sentence_spans
from cablebot.errors import CablebotError
from cablebot.lexical import HOW_WORDS, QUESTION_WORDS, terms
from cablebot.retrieval import Hit

if TYPE_CHECKING:
    import numpy as np

MODEL_PATH = Path(__file__).parent / "data" / "reader.json"

# --- What the question asks for ---------------------------------------------------------

_NUMBER_WORDS = (
    r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty"
    r"|hundred|thousand|dozen|dozens|hundreds|thousands|twice|half"
)
_CURRENCY_SIGN = r"US\$|USD|\$|DM|€|£|EUR|Rs\.?"
_SHARE_OR_MAGNITUDE = r"%|percent|per cent|million|billion|trillion"
NUMBER = re.compile(
    # A number may qualify a noun through a hyphen ("a 40-minute meeting"), but is no part of a code ("F-16").
    # Each branch first looks ahead for a character it can start with: twice as fast, over every sentence read.
    rf"(?=[UDER$€£\d])(?:(?:{_CURRENCY_SIGN})\s?)?(?<![\w-])\d(?:,?\d)*(?:\.\d+)?(?:\s?-\s?\d(?:,?\d)*(?:\.\d+)?)?"
    rf"(?!\w|-\d)(?:\s?(?:{_SHARE_OR_MAGNITUDE}|thousand))?"
    rf"|\b(?=[otfsenhdw])(?:{_NUMBER_WORDS})\b",
    re.IGNORECASE,
)
_MONTHS = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
DATE = re.compile(
    rf"\b{_MONTHS}\.? \d{{1,2}}(?:\s?-\s?\d{{1,2}})?(?:, \d{{4}})?\b|\b\d{{1,2}} {_MONTHS}\.?(?: \d{{4}})?\b"
    rf"|\b{_MONTHS}(?: of)? \d{{4}}\b|\b\d{{4}}-\d{{2}}-\d{{2}}\b|\b(?:19|20)\d{{2}}s?\b|\b\d{{1,2}}/\d{{1,2}}\b"
    r"|\b(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)\b|\b\d{1,2}:\d{2}\b|\b[0-2]\d[0-5]\d\b"
    rf"|\b(?:early|mid|late)[- ](?:{_MONTHS}|(?:19|20)\d{{2}}s?)\b",
)
# The day of a date ("November 3", "3 November"): a date, not a quantity.
_DAY = re.compile(rf"\b{_MONTHS}\.? \d{{1,2}}\b|\b\d{{1,2}} {_MONTHS}\b")
# A year: after a preposition or a month ("in 1994", "May 2009"), or not counting the word after it ("the
# 1998 World Cup", "in 2011."); "2000 troops" counts troops.
_YEAR = re.compile(r"\b(?:19|20)\d{2}\b(?!,\d)")
_BEFORE_YEAR = re.compile(rf"\b(?i:in|since|by|until|during|before|after|from|of|through|{_MONTHS}\.?),?\s+$")
_WORD_AFTER = re.compile(r"\s+[a-z]")
# A run of capitalised words, allowing the particles names carry ("Ali Reza", "bin Zayid Al-Nahyan").
NAME = re.compile(r"\b[A-Z][\w'’.-]*(?:\s+(?:(?:de|del|la|van|von|bin|al|el|of|the|for|zu|y)\s+)?[A-Z][\w'’.-]*)*")
_HOW_WORD = "|".join(HOW_WORDS)
_HOW = rf"\bhow ({_HOW_WORD})\b"
_WH_PHRASE = re.compile(
    _HOW + r"|\b(what|which) (percentage|percent|share|proportion|number|amount|date|day|week|month|year|time"
    r"|kind|type|sort)\b",
    re.IGNORECASE,
)
_NUMBER_NOUNS = (
    r"percentage|percent|share|proportion|number|amount|price|sum|fraction|rank|age|population|budget|salary"
    r"|cost|value|size|score|rate|total|toll|turnout|distance|length|duration|height|weight"
)
_ORGANIZATION_NOUNS = (
    r"party|company|firm|organi[sz]ation|agency|bank|group|paper|newspaper|association|ministry|university"
    r"|committee|body|channel|team|union|council|court|network|institution|office|movement|coalition|service"
)
_PLACE_NOUNS = r"city|country|countries|town|province|region|state|place|border crossing|district|village|capital"
_PERSON_NOUNS = (
    r"minister|official|ambassador|president|leader|spokes\w*|envoy|diplomat|politician|person|man|woman|son"
    r"|daughter|brother|sister|wife|husband|king|queen|prince|candidate|general|commander|governor|mayor|judge"
    r"|senator|secretary|director|chief|head|journalist|activist|author|writer|reporter|editor|ceo|chairman"
    r"|founder|owner|advis[eo]r|deputy|representative|negotiator|lawyer|prosecutor|officer|chancellor|premier"
    r"|attach[eé]|consul|speaker|emir|sheikh|cleric|imam|bishop|coordinator"
)
# Up to two words describing the noun asked for ("which *polling* firm", "what *oil services* company"); an
# auxiliary or an article starts a clause instead ("what did the party say" asks no organisation).
_MODIFIERS = (
    r"(?:(?!(?:is|are|was|were|did|does|do|has|had|have|will|would|can|could|should|the|a|an)\b)[\w'’-]+\s+){0,2}"
)
NAMED = ("person", "place", "organization", "name")  # the kinds answered by a name


# Contractions, and the apostrophe-less forms chat types them in, spelled out: "what's the population" asks
# what the population is, and "didn't" is two function words, not a rare term every passage lacks.
_NEGATED = r"do|does|did|is|are|was|were|has|have|had|could|would|should|must|need"
_SPELLED = {"ll": "will", "re": "are", "ve": "have", "d": "would"}
_CONTRACTIONS = (
    (re.compile(r"\b(what|who|where|when|how|why|which|that|there|it|he|she)['’]s\b", re.I), r"\1 is"),
    (re.compile(r"\b(what|who|where|when|how)s\b", re.I), r"\1 is"),
    (re.compile(r"\bcan['’]?t\b|\bcannot\b", re.I), "can not"),
    (re.compile(r"\bwon['’]?t\b", re.I), "will not"),
    (re.compile(rf"\b({_NEGATED})n['’]?t\b", re.I), r"\1 not"),
    (re.compile(r"\bi['’]m\b", re.I), "i am"),
    (re.compile(r"\b(\w+)['’](ll|re|ve|d)\b", re.I), lambda m: f"{m[1]} {_SPELLED[m[2].lower()]}"),
)


# What chat wraps around a question without adding to it: a greeting or a request ("hey, can you tell me who
# ...", "do you know when ...") before it, thanks or "please" after it. Left in, "please" and "hey" are rare
# terms that no passage holds, and "tell" makes a question about what someone told.
_GREETING = r"(?:hey|hi|hello|ok|okay|please)(?:[,!.]+\s*|\s+)"
_REQUEST = (
    r"(?:(?:can|could|would|will) you (?:please )?(?:tell|show|give) me|please (?:tell|show|give) me|tell me"
    r"|(?:do|does) (?:you|anyone|anybody) know|i (?:would|'d|’d|want to|wanna|need to) (?:like to )?know"
    r"|i wonder|let me know)\b[,:]?\s*"
)
# "according to the cables", "in the article,": where to look, which every question of the collection shares
# ("who is in the cables?" keeps its "in").
_DOCUMENTS = r"(?:the|these|this|your) (?:cables?|documents?|articles?|texts?|leaks?)\b"
_SOURCE = rf"(?:according to|based on) {_DOCUMENTS},?\s*|(?:in|from) {_DOCUMENTS},\s*"
_WRAPPING = (
    re.compile(rf"^\s*(?:{_GREETING})*(?:{_REQUEST})?(?:{_SOURCE})?", re.I),
    re.compile(rf",?\s*\b(?:according to|based on) {_DOCUMENTS}(?=\W*$)", re.I),
    re.compile(r"(?:[,\s]+(?:please|pls|plz|thanks|thank you|thx))+(?=\W*$)", re.I),
)


# A question of a noun phrase alone ("lebanon's foreign minister?", "population of chiapas?") asks what it
# names. One that starts with a verb, a pronoun or a linking word asks something else (a yes/no question, a
# command, a follow-up: "did they meet?", "list the ministers", "and his sister?").
_QUESTION_WORDS = "|".join(QUESTION_WORDS)
_QUESTION_WORD = re.compile(rf"\b(?:{_QUESTION_WORDS})\b", re.I)
_NOT_A_NOUN_PHRASE = re.compile(
    r"^\W*(?:is|are|was|were|am|be|do|does|did|has|have|had|can|could|will|would|shall|should|may|might|must"
    r"|i|you|we|they|he|she|it|there|that|this|and|or|but|so|also|then|in|on|at|for|from|about|with|by|to|of"
    r"|if|not|no|yes|list|name|give|show|tell|explain|describe|summari[sz]e|find|compare|any|anything|more"
    r"|thanks|thank)\b",
    re.I,
)


# A question word left in place at the end ("the border is how long?", "his sister was who?") asks what it
# would ask at the front.
_IN_PLACE = re.compile(
    rf"^(?!\W*(?:{_QUESTION_WORDS})\b)(?P<rest>.+?)\s+(?P<verb>is|are|was|were)\s+"
    rf"(?P<asked>who|whom|what|where|when|which \w+|how (?:{_HOW_WORD}))\W*$",
    re.I,
)


# Chat shorthand for everyday words: "ppl" and "govt" are terms almost no passage holds.
_SHORTHAND = {
    "govt": "government", "gov't": "government", "govts": "governments", "dept": "department",
    "intl": "international", "ppl": "people", "yr": "year", "yrs": "years", "info": "information",
    "pres": "president", "amb": "ambassador", "b/c": "because", "cuz": "because", "bn": "billion",
    "mln": "million", "approx": "approximately", "pct": "percent", "w/o": "without", "w/": "with",
    "abt": "about", "thru": "through", "org": "organization", "orgs": "organizations",
}  # fmt: skip
_SHORTHAND_WORD = re.compile(rf"(?<![\w/'’.])({'|'.join(map(re.escape, _SHORTHAND))})(?![\w/'’])", re.I)


def spelled_out(question: str) -> str:
    """`question` with its contractions and chat shorthand written in full ("who's" -> "who is", "didnt" ->
    "did not", "ppl" -> "people")."""
    for pattern, replacement in _CONTRACTIONS:
        question = pattern.sub(replacement, question)
    return _SHORTHAND_WORD.sub(lambda m: _SHORTHAND[m[1].lower()], question)


def plain_question(question: str) -> str:
    """`question` as the reader reads it: spelled out, the greeting, request or thanks around it dropped, a
    question word left at the end read at the front, a noun phrase read as "what is" it, and ending in a
    question mark."""
    question = spelled_out(question)
    plain = question
    for pattern in _WRAPPING:
        plain = pattern.sub("", plain)
    if not re.search(r"\w", plain):
        return question  # "thanks!" alone stays as it is
    plain = _IN_PLACE.sub(r"\g<asked> \g<verb> \g<rest>?", plain)
    if not _QUESTION_WORD.search(plain) and not _NOT_A_NOUN_PHRASE.search(plain):
        plain = f"what is {plain.strip()}"
    # Typed without its question mark, a question is read with one, as the training questions are written.
    return plain if re.search(r"[?.!]\W*$", plain) else f"{plain.rstrip()}?"


def _named(nouns: str) -> str:
    """Questions asking for one of `nouns`: "which (polling) firm ...", or "what is the (foreign) minister"
    where the noun ends the phrase ("what is the minister's view" asks for a view)."""
    return (
        rf"\b(?:which|what) {_MODIFIERS}(?:{nouns})s?\b(?![-'’])"
        rf"|\bwhat (?:is|are|was|were) (?:the |a |an )?{_MODIFIERS}(?:{nouns})s?\b(?![-'’])"
        r"(?=\W*$|\s+(?:of|in|at|for|to|from|on|with|who|that)\b)"
    )


def question_kind(question: str) -> str:
    """number | date | person | place | organization | name | reason | other: what an answer should contain."""
    q = question.lower()
    if re.search(
        # "what is (the) (X's) (death) toll"
        rf"{_HOW}|\bwhat (?:(?:is|was|are|were) (?:the )?(?:(?:[\w-]+ )?[\w-]+['’]s )?(?:[a-z]+ )?)?"
        rf"({_NUMBER_NOUNS})\b"
        r"|\bhow [a-z]+ (a|an) (stake|share|sum)\b|\bworth\W*$",
        q,
    ):
        return "number"
    if re.search(
        r"\b(when|(what|which) (date|day|month|year|time)|what (is|was) the date|since when|until when)\b", q
    ):
        return "date"
    if re.search(_named(_ORGANIZATION_NOUNS), q):
        return "organization"
    if re.search(rf"\bwhere\b|{_named(_PLACE_NOUNS)}", q):
        return "place"
    if re.search(rf"\b(?:who|whom|whose)\b|{_named(_PERSON_NOUNS)}", q):
        return "person"
    if re.search(
        r"\b(why|what (caused|led to|prompted|made|motivated|drove|triggered|sparked)|what (is|was) the reason"
        r"|for what reason|how come)\b",
        q,
    ):
        return "reason"
    # "which pipeline ...", "what is his party called?": a choice among named things, or the name itself.
    if re.search(r"\bwhich\b|\b(?:called|named)\W*$", q):
        return "name"
    return "other"


def question_terms(question: str) -> list[str]:
    """Content terms of a question, without its question words ("how long" asks, it does not match)."""
    return terms(_WH_PHRASE.sub(" ", question))


_WORD = re.compile(r"[\w][\w'’.-]*[\w]|\w")


def weakest_match(
    question: str, question_tokens: tuple[np.ndarray, np.ndarray], sentence_tokens: tuple[np.ndarray, np.ndarray]
) -> float:
    """How well the question's least matched word is matched in a sentence: over the tokens of its content
    words (`question_terms`), the smallest of each one's best cosine with a token of the sentence, both read in
    context by the encoder (`Embedder.token_vectors`). A near miss asks about something its closest sentence
    does not say ("which hospital treated berlusconi's scarlet fever?" against the sentence on how he caught it):
    one word of the question finds nothing like it there, though the sentence's vector is close to the
    question's. 0 when the question has no content word."""
    blanked = _WH_PHRASE.sub(lambda m: " " * len(m[0]), question)
    words = [m.span() for m in _WORD.finditer(blanked) if terms(m[0])]
    vectors, offsets = question_tokens
    keep = [i for i, (a, b) in enumerate(offsets.tolist()) if any(s <= a and b <= e for s, e in words)]
    sentence = sentence_tokens[0]
    if not keep or not len(sentence):
        return 0.0
    return float((vectors[keep] @ sentence.T).max(axis=1).min())


_ASKED = re.compile(
    rf"\b(?:how (?:{_HOW_WORD})|which|what|whose|who|whom|where|when|why)\b"
    r"(?:\s+(?:is|was|are|were|did|does|do|has|had|have|will|would|can|could|should|may|might|must|not|the|a|an"
    r"|kind of|type of|sort of|name of|number of))*"
    r"\s+(.*)",
    re.IGNORECASE,
)


def asked_terms(question: str) -> tuple[str, ...]:
    """The first content words after the question word: what is asked about ("which *hospital*",
    "how many IT *specialists*", "who *designed*"). A passage that never mentions them is a near miss."""
    m = _ASKED.search(question)
    if not m:
        return ()
    out: list[str] = []
    for word in re.findall(r"[\w'’-]+", m.group(1)):
        found = terms(word)
        if not found:
            break  # a function word ends the phrase
        if re.search(r"['’]s?$", word):
            out.clear()  # "dubai's crown prince" asks about the prince, not Dubai
            continue
        out.append(found[0])
        if len(out) == 2:
            break
    return tuple(out)


_CAUSE = re.compile(
    r"\b(because|since|due to|owing to|as a result|reason|so that|in order to|danger|risk|fear|concern|worr|"
    r"caus|led to|prompt|motivat|result|therefore|thus|given that|would)",
    re.IGNORECASE,
)
_UNIT = re.compile(
    r"\s?-?(mile|kilo|km|kg|meter|metre|centimet|gram|feet|foot|yard|inch|acre|hectare|square|cubic|barrel|liter"
    r"|litre|gallon|megawatt|day|week|month|year|hour|minute|second|millisecond|ton)",
    re.IGNORECASE,
)
_MEASURE_QUESTION = re.compile(r"\bhow (long|far|high|old|fast|soon)\b", re.IGNORECASE)
_AMOUNT_QUESTION = re.compile(r"\bhow much\b", re.IGNORECASE)
_SPEECH = re.compile(r"\b(say|said|says|tell|told|think|thinks|describe|call)\b", re.IGNORECASE)
_SPEECH_VERBS = re.compile(
    r"\b(said|says|told|confirmed|stated|noted|argued|claimed|complained|warned|reported|explained|described"
    r"|acknowledged|admitted|insisted|asserted|stressed|emphasized|added|replied|called|believes?|thinks?)\b",
    re.IGNORECASE,
)
_PLACE_CUE = re.compile(r"\b(in|at|near|outside|from|to|into|like|city of|town of)\s+((the|a|an)\s+)?$", re.I)
_TITLE_CUE = re.compile(
    r"\b(Mr|Mrs|Ms|Dr|President|Minister|Ambassador|General|Gen|Governor|Prince|King|Queen|Sheikh|Senator|"
    r"Director|Chairman|Secretary|Judge|Colonel|Col|Captain|Commissioner|Mayor|spokesman|MP|PM|FM|leader|"
    r"Chief|Commander|Admiral|Speaker|Deputy|Counselor|Attache|DCM|Professor)\.?\s+$"
)
_ORGANISATION = re.compile(
    r"\b(?:Command|Party|Ministry|Council|Committee|Commission|Bank|Embassy|Government|Union|Organi[sz]ation"
    r"|Agency|Forces|Army|Court|Parliament|Assembly|University|Company|Corporation|Group|Democrats|Republicans"
    r"|Front|Movement|Office|Department|Service|Police|Association|Institute|Fund|Coalition|Alliance|League"
    r"|Federation|Authority|Board|Center|Centre|Congress|Senate|Navy|Brigade|Battalion|Division|Network"
    r"|Foundation|Inc|Ltd)\b"
)
_AFTER_ORGANISATION = re.compile(r"\s*(?:[a-z]+\s+)*")


def _after_organisation(name: str) -> int | None:
    """Where the person begins in a run of capitalised words that names an organisation first (None: nowhere)."""
    ends = [m.end() for m in _ORGANISATION.finditer(name)]
    if not ends:
        return 0
    cut = _AFTER_ORGANISATION.match(name, ends[-1]).end()
    return cut if name[cut : cut + 1].isupper() else None


_COMMON_STARTS = frozenset(
    "the a an this that these those it he she they we but while although "
    "here there in at on as when if and".split()
)


def candidate_spans(kind: str, sentence: str, question: str, mark: bool = False) -> list[tuple[int, int]]:
    """Spans of `sentence` that could be the answer of this kind and are not already in the question.

    With `mark` (the span shown as the answer), a person the question names under a title or first name
    ("PM Netanyahu" for "who did netanyahu meet?") is no answer either. Read as a feature, a sentence that
    names them still fits the question: the reader learned that as a sign of relevance.
    """
    asked = set(terms(question))
    if kind == "number":
        spans = [m.span() for m in NUMBER.finditer(sentence)]
        if spans:  # only a sentence holding numbers needs its dates, measures and amounts told apart
            dates = _date_parts(sentence)
            spans = [(a, b) for a, b in spans if not _within(a, b, dates)]
            if _MEASURE_QUESTION.search(question):  # a measure: needs a unit
                spans = [(a, b) for a, b in spans if _UNIT.match(sentence, b)] or spans
            elif _AMOUNT_QUESTION.search(question):  # an amount, not a count
                spans = [(a, b) for a, b in spans if _amount(sentence, a, b)]
    elif kind == "date":
        spans = [m.span() for m in DATE.finditer(sentence)]
    elif kind in NAMED:
        spans = []
        for m in NAME.finditer(sentence):
            start, name = m.start(), m.group(0)
            # A capital at sentence start is not evidence of a name: "While Mexico" is Mexico, "The" nothing.
            if start == 0:
                first = name.split(maxsplit=1)
                if first[0].lower() in _COMMON_STARTS:
                    if len(first) == 1:
                        continue
                    start, name = m.end() - len(first[1]), first[1]
            before = sentence[max(0, start - 25) : start]
            if kind == "place" and not _PLACE_CUE.search(before):
                continue  # a place is "in Cuernavaca", "near Magd", "to France"
            if kind == "person":
                cut = _after_organisation(name)  # a person is no organisation: "Africa Command"
                if cut is None:
                    continue
                if cut:  # "Bank of England Governor King": the person after it
                    start, name = start + cut, name[cut:]
                    before = sentence[max(0, start - 25) : start]
                if " " not in name.strip() and not _TITLE_CUE.search(before):
                    continue  # a person has a full name ("Crispus Kiyonga") or a title ("Minister Kiyonga")
                if mark and asked.intersection(terms(name.split()[-1])):
                    continue
            end = m.end()
            if name.endswith(".") and not re.search(r"(?:\b[A-Z]\.)+$", name):
                end -= 1  # the sentence's full stop, not part of "France" (initials like "U.S." keep theirs)
            spans.append((start, end))
    else:
        return []
    return [(a, b) for a, b in spans if not set(terms(sentence[a:b])) <= asked]


_CURRENCY = re.compile(
    r"\s?(euros?|dollars?|riyals?|rials?|rupees?|yen|pounds?|dinars?|dirhams?|rubles?|roubles?|yuan|pesos?"
    r"|francs?|USD|EUR|AED|GBP)\b",
    re.IGNORECASE,
)
# A currency before the number, or a share or magnitude after it (not "thousand": "5 thousand troops").
_MONEY_OR_SHARE = re.compile(rf"(?:{_CURRENCY_SIGN}).*|.*(?:{_SHARE_OR_MAGNITUDE})", re.IGNORECASE)


def _amount(sentence: str, a: int, b: int) -> bool:
    """The number at a:b is money, a share or a measure ("$95 million", "33.8 percent", "40-50 tons")."""
    return bool(
        _MONEY_OR_SHARE.fullmatch(sentence, a, b) or _UNIT.match(sentence, b) or _CURRENCY.match(sentence, b)
    )


def _date_parts(sentence: str) -> list[tuple[int, int]]:
    """Spans of `sentence` that are part of a date, not a quantity."""
    years = [
        m.span()
        for m in _YEAR.finditer(sentence)
        if _BEFORE_YEAR.search(sentence, max(0, m.start() - 14), m.start())
        or not _WORD_AFTER.match(sentence, m.end())
    ]
    return [m.span() for m in _DAY.finditer(sentence)] + years


def _within(a: int, b: int, spans: list[tuple[int, int]]) -> bool:
    return any(x <= a and b <= y for x, y in spans)


# Where a clause ends: a comma (not one between digits: "30,000", "March 11, 2004"), semicolon, colon,
# dash or bracket.
_CLAUSE_END = re.compile(r"(?:(?<!\d),|,(?!\s?\d)|[;:—–()])\s*|\s-{1,2}\s")


def _clause_cuts(sentence: str) -> list[int]:
    """Where the clauses of `sentence` begin, and its end."""
    return [0] + [m.end() for m in _CLAUSE_END.finditer(sentence)] + [len(sentence)]


def _clause(cuts: list[int], pos: int) -> tuple[int, int]:
    """The clause around `pos`, between two of a sentence's `_clause_cuts`."""
    return max(c for c in cuts if c <= pos), min((c for c in cuts if c > pos), default=cuts[-1])


def focus(
    kind: str,
    sentence: str,
    question: str,
    qterms: set[str],
    anchor: tuple[int, int] | None = None,
    mark: bool = False,
) -> tuple[tuple[int, int] | None, float]:
    """The candidate span whose neighbourhood shares most words with the question, and that closeness.

    `anchor` is the previous answer's key span in this same sentence: a
    follow-up ("and how long is that border?") asks about its own clause.
    `mark`: the span is the one shown as the answer (see `candidate_spans`).
    """
    best, best_score = None, -1.0
    cuts = _clause_cuts(sentence)  # once a sentence, not once a span
    anchor_clause = _clause(cuts, anchor[0]) if anchor else None
    for a, b in candidate_spans(kind, sentence, question, mark):
        if anchor and (a, b) == anchor:
            continue
        # Question words right after the span ("125 Mexican immigration officials") count most.
        start, end = _clause(cuts, a)
        after = terms(sentence[b : max(b, end)])[:6]
        before = terms(sentence[start:a])[-4:]
        score = sum(2 / (1 + i) for i, t in enumerate(after) if t in qterms)
        # A title inside a name ("Foreign Minister Vuk Jeremic") is as close as words can be.
        score += 2 * len(qterms.intersection(terms(sentence[a:b])))
        score += sum(1 / (1 + i) for i, t in enumerate(reversed(before)) if t in qterms) - 0.001 * a
        if anchor_clause and (start, end) == anchor_clause:
            score += 3
        if score > best_score:
            best, best_score = (a, b), score
    return best, max(best_score, 0.0)


# --- Candidates and their features -----------------------------------------------------

FEATURES = (
    "sentence_cosine",  # the sentence's own dense similarity to the question
    "passage_cosine",  # the passage's (its closest sentence's) dense similarity to the question
    "relation_cosine",  # the sentence's dense similarity to the question without its names (Hit.relation_scores)
    "passage_rank",  # 1 / fused rank of the passage
    "dense_rank",  # 1 / its rank by vectors alone (0 when not among the candidates)
    "lexical_rank",  # 1 / its rank by BM25 alone (0 when not among the candidates)
    "retrieved",  # the passage was retrieved for the question, not only added from its document
    "main_document",  # the passage is from the document the top passages point at
    "coverage",  # IDF-weighted share of the question's terms in the sentence
    "coverage_with_previous",  # ... in the sentence and the one before it
    "coverage_passage",  # ... in the whole passage
    "coverage_document",  # ... anywhere in the retrieved passages of its document
    "rarest_missing",  # IDF of the rarest question term the passage lacks, over the largest IDF
    "bigrams",  # share of the question's word pairs in the sentence
    "context_coverage",  # share of the earlier question's terms (follow-ups) in the sentence
    "previous_sentence",  # a follow-up, and this sentence is the one the earlier answer quoted
    "previous_document",  # a follow-up, and this sentence is from the document the earlier answer quoted
    "asked_in_sentence",  # share of the words right after the question word in the sentence or the one before
    "asked_in_passage",  # ... in the passage
    "fits",  # the sentence holds a span of the kind asked for
    "fits_number",
    "fits_date",
    "fits_name",  # a person, place or organisation
    "has_cause",  # a reason question, and the sentence gives a cause
    "focus",  # how close the question's words are to that span
    "speech",  # a "what did X say" question, and the sentence reports speech
    "length",  # log of the sentence length in characters, up to FRAGMENT
    "capitals",  # share of letters in capitals: headings and subject lines shout
    "kind_number",
    "kind_date",
    "kind_name",
    "kind_reason",
    "kind_other",
)
# Shorter sentences are mostly fragments (headings, list items, subject lines); beyond this many characters a
# sentence's length says nothing of whether it answers. Uncapped, the reader learned to abstain on a file of one
# short, complete sentence; capped, cross-validated answer + abstain is the same (0.444 + 0.793 against
# 0.431 + 0.805, five fold seeds).
FRAGMENT = 60
# Features also given relative to the best value among the question's candidates: a pointwise
# model then sees how a sentence compares with its rivals, not only how good it is on its own. Not the share of
# capitals: its best is a cable's subject line or heading, which an article lacks, so the same sentence scored
# about 0.7 logits lower in an article than in a cable (docs/answer-quality.md).
RELATIVE = tuple(name for name in FEATURES if not name.startswith("kind_") and name != "capitals")
FEATURES = (*FEATURES, *(f"{name}_vs_best" for name in RELATIVE))
_RELATIVE_COLUMNS = [FEATURES.index(name) for name in RELATIVE]


@dataclass(frozen=True)
class Candidate:
    """One sentence of a retrieved passage, as a possible answer."""

    hit: Hit
    start: int  # span of the sentence in hit.chunk.text
    end: int
    features: tuple[float, ...]

    @property
    def text(self) -> str:
        return self.hit.chunk.text[self.start : self.end]


@dataclass(frozen=True)
class Question:
    """What reading needs to know about a question, worked out once."""

    text: str
    kind: str
    weights: dict[str, float]  # question term -> IDF weight
    context: dict[str, float]  # the earlier question's terms (follow-ups) -> weight
    pairs: frozenset[tuple[str, str]]
    asked: tuple[str, ...]  # what the question asks about (asked_terms)
    speech: bool
    max_weight: float
    previous_source: str = ""  # a follow-up: the document the earlier answer quoted
    previous_quote: str = ""  # ... and the longest verbatim piece of that quote
    context_text: str = ""  # the earlier question, read plain: searched for with this one

    @property
    def searched(self) -> str:
        """What is searched for: the earlier question (of a follow-up) with this one."""
        return f"{self.context_text} {self.text}".strip()


def analyse(
    question: str,
    weight: Callable[[str], float],
    max_weight: float,
    context: str = "",
    previous: tuple[str, str] = ("", ""),
) -> Question:
    """`question` as typed (it is read plain here); `context` is the earlier question of a conversation,
    `previous` its answer (document id, quote)."""
    question, context = plain_question(question), plain_question(context)
    qterms = question_terms(question)
    weights = {t: weight(t) for t in qterms}
    ctx = {t: weight(t) for t in terms(context) if t not in weights}
    return Question(
        question,
        question_kind(question),
        weights,
        ctx,
        frozenset(pairwise(qterms)),
        asked_terms(question),
        bool(_SPEECH.search(question)),
        max_weight,
        previous[0],
        max(previous[1].split("…"), key=len).strip(),
        context,
    )


def _share(weights: dict[str, float], present: set[str] | frozenset[str]) -> float:
    total = sum(weights.values())
    return sum(w for t, w in weights.items() if t in present) / total if total else 0.0


def candidates(q: Question, hits: Sequence[Hit], k: int) -> list[Candidate]:
    """Every sentence of `hits` with its features (FEATURES order).

    A sentence in two passages (chunks overlap) is one candidate, from the better-ranked passage.
    """
    doc_weight: dict[str, float] = {}
    for h in hits[:k]:
        doc_weight[h.chunk.doc_id] = doc_weight.get(h.chunk.doc_id, 0.0) + 1.0 / h.rank
    main_doc = max(doc_weight, key=doc_weight.__getitem__) if doc_weight else None
    doc_terms: dict[str, set[str]] = {}
    for h in hits:
        doc_terms.setdefault(h.chunk.doc_id, set()).update(terms(h.chunk.text))
    kind_flags = (
        float(q.kind == "number"),
        float(q.kind == "date"),
        float(q.kind in NAMED),
        float(q.kind == "reason"),
        float(q.kind == "other"),
    )
    qset = set(q.weights)
    seen: set[tuple[str, str]] = set()
    out: list[tuple[Hit, int, int, tuple[float, ...]]] = []
    for hit in hits:
        text = hit.chunk.text
        spans = sentence_spans(text)
        passage_terms = set(terms(text))
        doc_cov = _share(q.weights, doc_terms[hit.chunk.doc_id])
        missing = [w for t, w in q.weights.items() if t not in passage_terms]
        rarest_missing = max(missing, default=0.0) / q.max_weight if q.max_weight else 0.0
        asked_passage = _present(q.asked, passage_terms)
        previous: set[str] = set()
        for j, (a, b) in enumerate(spans):
            sentence = text[a:b]
            sentence_terms = terms(sentence)
            words = set(sentence_terms)
            key = (hit.chunk.doc_id, sentence)
            if sentence.endswith("?") or key in seen or not words:
                previous = words
                continue  # "The bone of contention?" announces the answer; the next sentence gives it
            seen.add(key)
            span, closeness = focus(q.kind, sentence, q.text, qset)
            fits = span is not None
            cause = q.kind == "reason" and bool(_CAUSE.search(sentence))
            pairs = len(q.pairs & set(pairwise(sentence_terms))) / len(q.pairs) if q.pairs else 0.0
            cosine = hit.sentence_scores[j] if j < len(hit.sentence_scores) else hit.score
            features = (
                cosine,
                hit.score,
                hit.relation_scores[j] if j < len(hit.relation_scores) else cosine,
                1.0 / hit.rank,
                1.0 / hit.dense_rank if hit.dense_rank else 0.0,
                1.0 / hit.lexical_rank if hit.lexical_rank else 0.0,
                float(hit.rank <= k),
                float(hit.chunk.doc_id == main_doc),
                _share(q.weights, words),
                _share(q.weights, words | previous),
                _share(q.weights, passage_terms),
                doc_cov,
                rarest_missing,
                pairs,
                _share(q.context, words),
                float(bool(q.previous_quote) and q.previous_quote in sentence),
                float(bool(q.previous_source) and hit.chunk.doc_id == q.previous_source),
                _present(q.asked, words | previous),
                asked_passage,
                float(fits or cause),
                float(fits and q.kind == "number"),
                float(fits and q.kind == "date"),
                float(fits and q.kind in NAMED),
                float(cause),
                min(closeness, 3.0) / 3.0,
                float(q.speech and bool(_SPEECH_VERBS.search(sentence))),
                math.log(min(len(sentence), FRAGMENT)) / 6.0,
                _capitals(sentence),
                *kind_flags,
            )
            out.append((hit, a, b, features))
            previous = words
    if not out:
        return []
    import numpy as np

    matrix = np.array([features for *_, features in out])
    relative = matrix[:, _RELATIVE_COLUMNS]
    full = np.hstack([matrix, relative - relative.max(axis=0)]).tolist()
    return [Candidate(hit, a, b, tuple(row)) for (hit, a, b, _), row in zip(out, full, strict=True)]


def _present(wanted: tuple[str, ...], words: set[str]) -> float:
    return sum(w in words for w in wanted) / len(wanted) if wanted else 1.0


_ASCII_UPPER, _ASCII_LETTERS = string.ascii_uppercase.encode(), string.ascii_letters.encode()
_ASCII = re.compile(r"[\x00-\x7f]+")


def _capitals(text: str) -> float:
    """The share of letters that are capitals. The ASCII characters are counted as bytes, 17 times faster
    than a loop over characters; the few others ("’", "é") one by one."""
    raw = text.encode("ascii", "ignore")
    letters = len(raw) - len(raw.translate(None, _ASCII_LETTERS))
    upper = len(raw) - len(raw.translate(None, _ASCII_UPPER))
    if not text.isascii():
        others = _ASCII.sub("", text)
        letters += sum(map(str.isalpha, others))
        upper += sum(ch.isupper() and ch.isalpha() for ch in others)
    return upper / letters if letters else 0.0


# --- The model -------------------------------------------------------------------------


@dataclass(frozen=True)
class Reader:
    """Logistic regression over FEATURES, a second look at the best few, and a calibration of the pick's score
    and its weakest_match.

    Trained on every candidate, the first model mostly learns to tell an answer
    from the many plainly unrelated sentences; the second, trained on the
    `rivals` best-scored candidates of each question alone, learns what sets
    the answer apart from near rivals (the right sentence is first 0.72 of the
    time held out with the first model alone, 0.75 with both; see docs/answer-quality.md).
    """

    weights: tuple[float, ...]
    bias: float
    # confidence = sigmoid(a * the pick's first logit + b * its weakest_match + c), for (a, b, c)
    calibration: tuple[float, float, float]
    threshold: float  # abstain below this confidence
    unsure_below: float  # answers below this confidence are marked "not sure"
    rivals: int = 0  # how many of the best-scored candidates the second look picks among (0: none)
    second_weights: tuple[float, ...] = ()
    second_bias: float = 0.0
    # The calibration when the question is answered from one document (an index of one, or a filter down
    # to one): the pick is right more often there than the same score means among many (None: the same).
    alone: tuple[float, float, float] | None = None

    @classmethod
    def untrained(cls) -> Reader:
        """All-zero weights: for loading the index to train a reader, whatever the shipped one expects."""
        return cls((0.0,) * len(FEATURES), 0.0, (1.0, 0.0, 0.0), 0.5, 0.5)

    def logits(self, features: Sequence[Sequence[float]]) -> list[float]:
        """The score of each candidate (rows of FEATURES), in order."""
        import numpy as np

        if len(features) == 0:
            return []
        return (np.asarray(features) @ np.array(self.weights) + self.bias).tolist()

    def choose(self, features: Sequence[Sequence[float]], logits: Sequence[float]) -> int:
        """The index of the candidate answered with: the best first score, or the second look's pick among
        the `rivals` best first scores."""
        import numpy as np

        if not self.rivals:
            return int(np.argmax(logits))
        top = best_few(logits, self.rivals)
        # Only the rivals' rows become an array: all of a question's candidates would cost 0.6 ms of a warm ask.
        second = np.asarray([features[i] for i in top]) @ np.array(self.second_weights) + self.second_bias
        return int(top[int(np.argmax(second))])

    def confidence(self, logit: float, match: float, alone: bool = False) -> float:
        """The probability that the pick is right, from its first logit and its `weakest_match`."""
        a, b, c = self.alone if alone and self.alone else self.calibration
        return _sigmoid(a * logit + b * match + c)

    def judge(self, logit: float, match: float, alone: bool = False) -> tuple[float, bool]:
        """The pick's confidence, and whether to answer with it. Answering is decided on the calibration
        over many documents, which the threshold was chosen on; one document changes what is reported."""
        return self.confidence(logit, match, alone), self.confidence(logit, match) >= self.threshold

    def to_json(self) -> dict:
        return {
            "features": list(FEATURES),
            "weights": [round(w, 6) for w in self.weights],
            "bias": round(self.bias, 6),
            "calibration": [round(c, 6) for c in self.calibration],
            "alone": [round(c, 6) for c in self.alone] if self.alone else None,
            "threshold": round(self.threshold, 4),
            "unsure_below": round(self.unsure_below, 4),
            "second_look": {
                "rivals": self.rivals,
                "weights": [round(w, 6) for w in self.second_weights],
                "bias": round(self.second_bias, 6),
            },
        }

    @classmethod
    def from_json(cls, data: dict) -> Reader:
        if data.get("features") != list(FEATURES):
            raise CablebotError(
                "the reader model was trained on other features than this cablebot computes; "
                "retrain it with: cablebot train"
            )
        if len(data.get("calibration", ())) != 3 or len(data.get("alone") or (0, 0, 0)) != 3:
            raise CablebotError(
                "the reader model's calibration is of an older cablebot (no word match); retrain it with: "
                "cablebot train"
            )
        second = data.get("second_look", {"rivals": 0, "weights": [], "bias": 0.0})
        if second["rivals"] and len(second["weights"]) != len(FEATURES):
            raise CablebotError(
                "the reader model's second look has the wrong number of weights; retrain it with: cablebot train"
            )
        return cls(
            tuple(data["weights"]),
            float(data["bias"]),
            tuple(data["calibration"]),  # type: ignore[arg-type]
            float(data["threshold"]),
            float(data["unsure_below"]),
            int(second["rivals"]),
            tuple(second["weights"]),
            float(second["bias"]),
            tuple(data["alone"]) if data.get("alone") else None,  # type: ignore[arg-type]
        )


def best_few(logits: Sequence[float], n: int) -> np.ndarray:
    """Indices of the `n` best scores, best first (ties in candidate order)."""
    import numpy as np

    return np.argsort(-np.asarray(logits), kind="stable")[:n]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, x))))


@cache
def load_reader(path: Path = MODEL_PATH) -> Reader:
    try:
        return Reader.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CablebotError(f"cannot read the reader model {path} ({e}); retrain it with: cablebot train") from e
