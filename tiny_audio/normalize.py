"""Text normalization: one scoring normalizer and one label normalizer.

`EnglishTextNormalizer` is Whisper's English normalizer as the Open ASR Leaderboard applies it
to references and hypotheses before WER. The rules (numbers to digits, contractions expanded,
fillers dropped, titles spelled out, symbols removed) come from Whisper's implementation that
transformers ships; the British -> American spelling map is OpenAI's `english.json`, read from
the `whisper-normalizer` package, which ships it unchanged. On top, the leaderboard removes
ellipses and joins dotted abbreviations ("U.S.A." -> "usa") first; those two steps live here.

`normalize_label` is the gentler cleanup for training targets: the model should learn case and
punctuation when the data has them, so it only fixes unicode, quotes and whitespace by default.
"""

from __future__ import annotations

import json
import re
import unicodedata
from functools import cache
from importlib.resources import files

# Three or more dots: a trailing run disappears, an inner run becomes one space.
_TRAILING_ELLIPSIS = re.compile(r"\.{3,}\s*$")
_INNER_ELLIPSIS = re.compile(r"\s*\.{3,}\s*")
# Two to four single letters each followed by a dot, spaced ("a. b. c.") or not ("u.s.a"),
# optionally pluralized or possessive ("a.b.c.s", "a.b.c.'s").
_DOTTED_ABBREVIATION = re.compile(
    r"\b[a-z](?:\.[a-z]){1,3}(?:\.'?s\b|\.?\b)|\b[a-z]\.(?:\s+[a-z]\.){1,3}(?=\W|$)"
)
_LABEL_QUOTES = str.maketrans({"‘": "'", "’": "'", "ʼ": "'", "“": '"', "”": '"', "´": "'"})
# Punctuation a label keeps inside words when punctuation is dropped: "don't", "x-ray".
_LABEL_PUNCTUATION = re.compile(r"(?!\b['-]\b)[^\w\s]")


@cache
def english_spelling_map() -> dict[str, str]:
    """OpenAI's British -> American spelling map (1,739 entries)."""
    data = files("whisper_normalizer").joinpath("normalizers/english.json").read_text()
    return json.loads(data)


class EnglishTextNormalizer:
    """Callable text -> normalized text, identical for references and hypotheses."""

    def __init__(self) -> None:
        from transformers.models.whisper.english_normalizer import (
            EnglishTextNormalizer as WhisperEnglishNormalizer,
        )

        self._whisper = WhisperEnglishNormalizer(english_spelling_map())

    def __call__(self, text: str) -> str:
        text = text.lower()
        text = _TRAILING_ELLIPSIS.sub("", text)
        text = _INNER_ELLIPSIS.sub(" ", text)
        text = _DOTTED_ABBREVIATION.sub(_join_letters, text)
        return self._whisper(text).strip()


def _join_letters(match: re.Match[str]) -> str:
    return re.sub(r"[.\s']", "", match.group(0))


@cache
def english_normalizer() -> EnglishTextNormalizer:
    """A shared instance: building the number tables and spelling map once is enough."""
    return EnglishTextNormalizer()


def normalize_label(text: str, lowercase: bool = False, keep_punctuation: bool = True) -> str:
    """Clean a training transcript: NFKC unicode, straight quotes, single spaces; optionally
    lowercase and drop punctuation (apostrophes and hyphens inside words stay)."""
    text = unicodedata.normalize("NFKC", text).translate(_LABEL_QUOTES)
    if lowercase:
        text = text.lower()
    if not keep_punctuation:
        text = _LABEL_PUNCTUATION.sub(" ", text)
    return " ".join(text.split())
