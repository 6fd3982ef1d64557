"""WER, CER and RTFx against cases counted by hand."""

from __future__ import annotations

import pytest

from tiny_audio.evaluate.metrics import (
    ErrorCounts,
    align_words,
    char_errors,
    corpus_counts,
    rtfx,
    word_errors,
)


def test_word_errors_one_of_each_kind() -> None:
    # the cat sat on the mat -> the bat sat the mat today
    # cat->bat (S), "on" deleted (D), "today" inserted (I): 3 errors / 6 words; every other
    # alignment costs more (all substitutions: 4).
    counts = word_errors("the cat sat on the mat", "the bat sat the mat today")
    assert counts == ErrorCounts(hits=4, substitutions=1, insertions=1, deletions=1)
    assert counts.rate == pytest.approx(3 / 6)


def test_word_errors_identical_and_empty_sides() -> None:
    assert word_errors("a b c", "a b c").rate == 0.0
    assert word_errors("a b c", "") == ErrorCounts(deletions=3)
    assert word_errors("", "uh oh") == ErrorCounts(insertions=2)
    assert word_errors("", "").rate == 0.0
    # an empty reference counts as one word, so k inserted words score k
    assert word_errors("", "uh oh").rate == 2.0


def test_wer_can_exceed_one() -> None:
    counts = word_errors("hi", "hello there my friend")
    assert counts == ErrorCounts(substitutions=1, insertions=3)
    assert counts.rate == 4.0


def test_char_errors_count_spaces() -> None:
    # "kitten" -> "sitting": k->s, e->i, +g = 3 edits over 6 characters
    assert char_errors("kitten", "sitting") == ErrorCounts(hits=4, substitutions=2, insertions=1)
    # a lost space between words is one deletion over 5 characters ("ab cd")
    assert char_errors("ab cd", "abcd") == ErrorCounts(hits=4, deletions=1)
    assert char_errors("ab  cd", "ab cd").rate == 0.0  # whitespace runs are one space


def test_corpus_wer_is_pooled_not_averaged() -> None:
    pairs = [("a", "b"), ("a b c d e f g h i j", "a b c d e f g h i j")]
    total = corpus_counts(pairs)
    # one error over 11 reference words; the mean of per-utterance rates would be 0.5
    assert total.errors == 1
    assert total.reference_length == 11
    assert total.rate == pytest.approx(1 / 11)
    assert corpus_counts(pairs, unit="char").rate == pytest.approx(1 / 20)


def test_align_words_pairs_substitutions_and_marks_gaps() -> None:
    steps = align_words("the cat sat on the mat", "the bat sat the mat today")
    assert ("substitute", "cat", "bat") in steps
    assert [s for s in steps if s[0] == "delete"] == [("delete", "on", "")]
    assert [s for s in steps if s[0] == "insert"] == [("insert", "", "today")]
    assert [s[1] for s in steps if s[0] != "insert"] == ["the", "cat", "sat", "on", "the", "mat"]


def test_align_words_with_empty_side() -> None:
    assert align_words("", "oh no") == [("insert", "", "oh"), ("insert", "", "no")]
    assert align_words("yes", "") == [("delete", "yes", "")]


def test_rtfx() -> None:
    assert rtfx(120.0, 4.0) == 30.0
    assert rtfx(10.0, 0.0) == 0.0
