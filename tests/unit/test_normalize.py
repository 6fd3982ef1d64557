"""The scoring normalizer must match the Open ASR Leaderboard's behaviour, and the label
normalizer must only do what it is asked."""

from __future__ import annotations

import pytest

from tiny_audio.normalize import english_normalizer, english_spelling_map, normalize_label


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # numbers become digits, with currency, percent, ordinals and "one oh one"
        ("twenty five dollars", "$25"),
        ("one hundred and one percent", "101%"),
        ("two thousand and twenty", "2020"),
        ("one oh one", "101"),
        ("the first and the third", "the 1st and the 3rd"),
        ("It cost 1,000,000 pounds.", "it cost £1000000"),
        ("the 1960s", "the 1960s"),
        ("three point five", "3.5"),
        # British spellings become American
        ("The colour of the theatre", "the color of the theater"),
        ("they organised a programme", "they organized a program"),
        # contractions expand
        ("I won't go, I can't.", "i will not go i can not"),
        ("He's been there and she'd gone", "he has been there and she had gone"),
        ("we're sure they'll come", "we are sure they will come"),
        # fillers disappear
        ("Um, uh, hmm, hello", "hello"),
        # titles are spelled out, punctuation and bracketed/parenthesized notes removed
        ("Mr. Smith met Dr. Jones.", "mister smith met doctor jones"),
        ("[noise] hello (laughs) world <unk>", "hello world"),
        # the leaderboard's extra steps: ellipses and dotted abbreviations
        ("Well... I think so...", "well i think so"),
        ("The U.S.A. and the U.K.", "the usa and the uk"),
        ("A. B. C. news", "abc news"),
        ("Café naïve", "cafe naive"),
    ],
)
def test_english_normalizer_matches_leaderboard(text: str, expected: str) -> None:
    assert english_normalizer()(text) == expected


def test_reference_and_hypothesis_forms_meet() -> None:
    normalize = english_normalizer()
    reference = "Mr. Brown paid twenty-five dollars for the colour TV, didn't he?"
    hypothesis = "mister brown paid $25 for the color tv did not he"
    assert normalize(reference) == normalize(hypothesis)


def test_spelling_map_is_openai_english_json() -> None:
    mapping = english_spelling_map()
    assert len(mapping) == 1739
    assert mapping["colour"] == "color"
    assert mapping["aeroplane"] == "airplane"


def test_normalize_label_defaults_keep_case_and_punctuation() -> None:
    assert normalize_label("  “Don’t”   stop,\tnow!  ") == '"Don\'t" stop, now!'


def test_normalize_label_lowercase_without_punctuation() -> None:
    text = "Hello, World! Don’t x-ray — the U.S.A.?"
    assert normalize_label(text, lowercase=True, keep_punctuation=False) == (
        "hello world don't x-ray the u s a"
    )


def test_normalize_label_unicode_compatibility_forms() -> None:
    # NFKC folds the "ﬁ" ligature and full-width letters into plain ones.
    assert normalize_label("ﬁne ＡＢＣ") == "fine ABC"
