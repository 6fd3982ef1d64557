"""Texts to synthesize: sentences (WordNet examples, fortunes and templates) or words.

Every sentence is a `Sentence(written, spoken)`. `written` is the label (cased, punctuated,
digits and symbols as people write them); `spoken` is what the TTS engine reads, with numbers,
money, dates and times spelled out so that every engine says them the same, natural way.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

WORDNET_DIR = Path("/usr/share/wordnet")
# Words that are one token in GPT-2's byte-level BPE vocabulary (the one Whisper uses) and are
# in Debian's `wamerican` list: a frequency proxy. Sentences with rarer words are dropped, since
# they test the spelling of lexicographers' rarities more than listening.
COMMON_WORDS_FILE = Path(__file__).with_name("common_words.txt")
FORTUNES_DIR = Path("/usr/share/games/fortunes")
MIN_WORDS, MAX_WORDS = 5, 24  # shorter fragments ("A poor salary.") are guesswork even for people

_ASCII_FOLD = str.maketrans(
    {"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": " - ", "…": "..."}
)
_ALLOWED = re.compile(r"^[A-Za-z][A-Za-z ,.'?!;:-]*$")


@dataclass(frozen=True)
class Sentence:
    written: str
    spoken: str

    @property
    def key(self) -> str:
        """Identity for de-duplication and split assignment: case and punctuation do not count."""
        return " ".join(re.sub(r"[^a-z0-9$%' ]", " ", self.written.lower()).split())


def clean_sentence(text: str) -> str | None:
    """Normalize one sentence for a label, or None when it is not plain speakable English."""
    text = unicodedata.normalize("NFKC", text).translate(_ASCII_FOLD)
    text = " ".join(text.replace('"', " ").split()).strip(" -;:,")
    if not _ALLOWED.match(text) or not MIN_WORDS <= len(text.split()) <= MAX_WORDS:
        return None
    if re.search(r"[A-Z]{2,}", text) or re.search(r"[.!?,;:-]{2,}|'{2,}", text):
        return None  # acronyms and odd punctuation are read differently by each engine
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".?!" else text + "."


@cache
def common_words() -> frozenset[str]:
    return frozenset(COMMON_WORDS_FILE.read_text(encoding="utf-8").split())


def uses_common_words(text: str) -> bool:
    """True when every word (contraction endings aside) is in the common word list."""
    words = re.findall(r"([A-Za-z]+)(?:'[a-z]+)?", text)
    return all(word.lower() in common_words() for word in words)


def wordnet_examples(folder: Path = WORDNET_DIR) -> Iterator[str]:
    """The quoted usage examples in WordNet's glosses ("She choked with emotion...")."""
    for part in ("noun", "verb", "adj", "adv"):
        path = folder / f"data.{part}"
        if path.is_file():
            for line in path.read_text(encoding="latin-1").splitlines():
                gloss = line.partition("| ")[2]
                yield from re.findall(r'"([^"]+)"', gloss)


def fortune_sentences(folder: Path = FORTUNES_DIR) -> Iterator[str]:
    """Single sentences from the fortune cookie files (quotes, attributions and dialogue dropped)."""
    for name in ("fortunes", "literature", "riddles"):
        path = folder / name
        if not path.is_file():
            continue
        for fortune in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            if "--" in fortune or ":" in fortune.split("\n", 1)[0]:
                continue
            yield from re.split(r"(?<=[.!?])\s+", " ".join(fortune.split()))


def number_words(n: int) -> str:
    """English words for 0 <= n < 10**9 ("four thousand eight hundred twenty-one")."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    for size, name in ((10**6, "million"), (1000, "thousand"), (100, "hundred")):
        if n >= size:
            head, rest = divmod(n, size)
            return f"{number_words(head)} {name}" + (f" {number_words(rest)}" if rest else "")
    raise ValueError(n)


_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["", "", *["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]]
_ORDINAL_ENDINGS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


def ordinal_words(n: int) -> str:
    words = number_words(n)
    head, sep, last = words.rpartition("-" if "-" in words.split()[-1] else " ")
    last = _ORDINAL_ENDINGS.get(last, last[:-1] + "ieth" if last.endswith("y") else last + "th")
    return head + sep + last


def year_words(year: int) -> str:
    """How people say a year: 1987 "nineteen eighty-seven", 2005 "two thousand five"."""
    if 2000 <= year < 2010:
        return number_words(year)
    head, tail = divmod(year, 100)
    return (
        number_words(head)
        + " "
        + (number_words(tail) if tail >= 10 else f"oh {number_words(tail)}" if tail else "hundred")
    )


def _numbers(rng: random.Random) -> Sentence:
    n = rng.choice([rng.randint(2, 99), rng.randint(100, 999), rng.randint(1000, 99999)])
    thing = rng.choice(["people", "tickets", "boxes", "miles", "pages", "votes", "steps", "books"])
    frame = rng.choice(
        [
            "There were {} {} in total.",
            "We counted {} {} yesterday.",
            "Please order {} more {}.",
            "The report lists {} {}.",
        ]
    )
    return Sentence(frame.format(f"{n:,}", thing), frame.format(number_words(n), thing))


def _money(rng: random.Random) -> Sentence:
    dollars, cents = rng.randint(1, 9999), rng.choice([0, 0, rng.randint(1, 99)])
    written = f"${dollars:,}" + (f".{cents:02d}" if cents else "")
    spoken = f"{number_words(dollars)} dollar{'s' * (dollars != 1)}" + (
        f" and {number_words(cents)} cent{'s' * (cents != 1)}" if cents else ""
    )
    frame = rng.choice(
        [
            "The total comes to {}.",
            "She paid {} for the tickets.",
            "Revenue grew by {} per share.",
            "It costs {} to ship.",
            "He owes me {}.",
        ]
    )
    return Sentence(frame.format(written), frame.format(spoken))


def _dates(rng: random.Random) -> Sentence:
    month, day, year = rng.choice(_MONTHS), rng.randint(1, 28), rng.randint(1950, 2035)
    frame = rng.choice(
        [
            "The meeting is on {}.",
            "She was born on {}.",
            "The contract ends on {}.",
            "We moved here on {}.",
        ]
    )
    return Sentence(
        frame.format(f"{month} {day}, {year}"),
        frame.format(f"{month} {ordinal_words(day)}, {year_words(year)}"),
    )


def _times(rng: random.Random) -> Sentence:
    hour, minute, half = (
        rng.randint(1, 12),
        rng.choice([0, 15, 30, 45, rng.randint(1, 59)]),
        rng.choice(["AM", "PM"]),
    )
    minute_words = (
        ""
        if minute == 0
        else f" oh {number_words(minute)}"
        if minute < 10
        else f" {number_words(minute)}"
    )
    frame = rng.choice(
        [
            "The train leaves at {}.",
            "Set an alarm for {}.",
            "Let's meet at {} tomorrow.",
            "The store opens at {}.",
        ]
    )
    spoken_half = "a m" if half == "AM" else "p m"
    return Sentence(
        frame.format(f"{hour}:{minute:02d} {half}"),
        frame.format(f"{number_words(hour)}{minute_words} {spoken_half}"),
    )


def _spelled(rng: random.Random) -> Sentence:
    word = rng.choice(
        [
            "KATE",
            "JONES",
            "SMITH",
            "LOPEZ",
            "BROWN",
            "NGUYEN",
            "DAVIS",
            "CLARK",
            "ADAMS",
            "PARK",
            "REED",
            "WOOD",
            "MILLER",
            "HAYES",
        ]
    )
    letters = list(word)
    frame = rng.choice(["My name is spelled {}.", "That is spelled {}.", "The code is {}."])
    return Sentence(frame.format("-".join(letters)), frame.format(", ".join(letters)))


def _commands(rng: random.Random) -> Sentence:
    n = rng.randint(2, 59)
    choices = [
        (f"Set a timer for {n} minutes.", f"Set a timer for {number_words(n)} minutes."),
        (f"Turn the volume up to {n}.", f"Turn the volume up to {number_words(n)}."),
        *[
            (text, text)
            for text in (
                f"Turn {rng.choice(['on', 'off'])} the {rng.choice(['kitchen', 'bedroom', 'porch', 'hallway'])} lights.",
                f"Play some {rng.choice(['jazz', 'classical music', 'rock', 'podcasts'])} in the {rng.choice(['car', 'kitchen', 'living room'])}.",
                f"Call {rng.choice(['mom', 'the office', 'Doctor Smith', 'my brother'])} on speaker.",
                f"What is the weather like in {rng.choice(['Boston', 'Denver', 'Chicago', 'Seattle', 'Austin'])} today?",
                f"Remind me to {rng.choice(['buy milk', 'call the bank', 'water the plants', 'send the report'])} tonight.",
            )
        ],
    ]
    written, spoken = rng.choice(choices)
    return Sentence(written, spoken)


TEMPLATES: dict[str, Callable[[random.Random], Sentence]] = {
    "numbers": _numbers,
    "money": _money,
    "dates": _dates,
    "times": _times,
    "spelled": _spelled,
    "commands": _commands,
}


def wordnet_lemmas(folder: Path = WORDNET_DIR) -> Iterator[str]:
    """WordNet's words of one to three plain words, cased as written ("ball", "Port Arthur")."""
    for part in ("noun", "verb", "adj", "adv"):
        path = folder / f"data.{part}"
        if path.is_file():
            for line in path.read_text(encoding="latin-1").splitlines():
                if line.startswith(" "):  # the licence header
                    continue
                fields = line.split(" ")
                count = int(fields[3], 16)  # then `count` pairs of (word, lexical id)
                for word in fields[4 : 4 + 2 * count : 2]:
                    if re.fullmatch(r"[A-Za-z]+(_[A-Za-z]+){0,2}", word):
                        yield word.replace("_", " ")


@cache
def word_pool(seed: int) -> tuple[Sentence, ...]:
    """Isolated words and short names of things, as in commands, games and keyword lists: the
    sentence pool's five-word minimum leaves a model nothing to learn short answers from."""
    sentences: dict[str, Sentence] = {}
    for lemma in sorted(wordnet_lemmas()):
        if uses_common_words(lemma) and not re.search(r"[A-Z]{2,}", lemma):
            sentence = Sentence(lemma[0].upper() + lemma[1:] + ".", lemma)
            sentences.setdefault(sentence.key, sentence)
    pool = list(sentences.values())
    random.Random(seed).shuffle(pool)
    return tuple(pool)


@cache
def sentence_pool(seed: int, templates_per_kind: int = 800) -> tuple[Sentence, ...]:
    """All de-duplicated sentences in a seed-determined order."""
    rng = random.Random(seed)
    sentences: dict[str, Sentence] = {}
    for raw in (*wordnet_examples(), *fortune_sentences()):
        text = clean_sentence(raw)
        if text is not None and uses_common_words(text):
            sentence = Sentence(text, text)
            sentences.setdefault(sentence.key, sentence)
    for make in TEMPLATES.values():
        for _ in range(templates_per_kind):
            sentence = make(rng)
            sentences.setdefault(sentence.key, sentence)
    pool = sorted(sentences.values(), key=lambda s: s.key)
    rng.shuffle(pool)
    return tuple(pool)


# `ta data synth --texts NAME`: which texts a corpus speaks.
TEXT_POOLS: dict[str, Callable[[int], tuple[Sentence, ...]]] = {
    "sentences": sentence_pool,
    "words": word_pool,
}
