"""CTC decoding, the character LM fused into beam search, and the character vocabulary, on
hand-made log-probabilities."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from tiny_audio.lact.decoding import beam_search_decode, greedy_decode
from tiny_audio.lact.lm import BOUNDARY, CharLM
from tiny_audio.lact.tokenizer import CharTokenizer


def frames(*rows: list[float]) -> torch.Tensor:
    """Probabilities per frame (blank first) -> log-probabilities."""
    probabilities = torch.tensor(rows, dtype=torch.float64)
    return (probabilities / probabilities.sum(-1, keepdim=True)).log()


def test_greedy_merges_repeats_and_drops_blanks() -> None:
    # best path: a a - b b - b  ->  a b b
    log_probs = frames(
        [0.1, 0.8, 0.1],
        [0.1, 0.8, 0.1],
        [0.8, 0.1, 0.1],
        [0.1, 0.1, 0.8],
        [0.1, 0.1, 0.8],
        [0.8, 0.1, 0.1],
        [0.1, 0.1, 0.8],
    )
    assert greedy_decode(log_probs) == [1, 2, 2]


def test_beam_search_sums_alignments_where_greedy_cannot() -> None:
    # Each frame alone prefers blank (0.6), but "a" has three alignments (a-, -a, aa) with
    # 0.24 + 0.24 + 0.16 = 0.64 > 0.36 for the empty text.
    log_probs = frames([0.6, 0.4], [0.6, 0.4])
    assert greedy_decode(log_probs) == []
    assert beam_search_decode(log_probs, num_beams=4) == [1]


def brute_force_best(log_probs: torch.Tensor, fuse=None) -> tuple[int, ...]:
    """The label sequence with the highest probability summed over all its alignments, times
    its language-model weight when `fuse` scores one."""
    totals: dict[tuple[int, ...], float] = {}
    length, vocab = log_probs.shape
    for path in itertools.product(range(vocab), repeat=length):
        labels = tuple(label for label, _ in itertools.groupby(path) if label != 0)
        probability = math.exp(sum(log_probs[t, label].item() for t, label in enumerate(path)))
        totals[labels] = totals.get(labels, 0.0) + probability

    def score(labels: tuple[int, ...]) -> float:
        if fuse is None:
            return totals[labels]
        lm = sum(fuse(labels[:i], label) for i, label in enumerate(labels)) + fuse(labels, None)
        return math.log(totals[labels]) + lm

    return max(totals, key=score)


@pytest.mark.parametrize("seed", range(6))
def test_wide_beam_finds_the_most_probable_labelling(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    log_probs = (torch.randn(5, 3, generator=generator, dtype=torch.float64) * 1.5).log_softmax(-1)
    assert tuple(beam_search_decode(log_probs, num_beams=64)) == brute_force_best(log_probs)


def test_beam_of_one_on_a_peaked_sequence_agrees_with_greedy() -> None:
    generator = torch.Generator().manual_seed(0)
    log_probs = (torch.randn(40, 29, generator=generator) * 8).log_softmax(-1)
    assert beam_search_decode(log_probs, num_beams=1) == greedy_decode(log_probs)


def test_character_lm_is_a_distribution_for_every_history() -> None:
    lm = CharLM.fit(["a cab", "a bad cab", "abba"], "abcde ", order=3)  # "e" is never seen
    for history in ["", BOUNDARY, BOUNDARY + "a", "ab", "ca", "dd", "zz"]:
        total = sum(lm.probability(history, char) for char in "abcde " + BOUNDARY)
        assert total == pytest.approx(1.0), history
    assert lm.probability("ca", "e") > 0
    assert lm.probability("ca", "b") > 0.5 > lm.probability("ca", "a") > 0  # "cab" was seen


@pytest.mark.parametrize("seed", range(8))
def test_fused_wide_beam_finds_the_best_acoustic_plus_lm_labelling(seed: int) -> None:
    lm = CharLM.fit(["ab", "aab", "b", "abab"], "ab", order=3)
    fuse = lm.fusion(["<blank>", "a", "b"], weight=0.8, bonus=0.3)
    generator = torch.Generator().manual_seed(seed)
    log_probs = (torch.randn(7, 3, generator=generator, dtype=torch.float64) * 1.5).log_softmax(-1)
    best = brute_force_best(log_probs, fuse)
    assert tuple(beam_search_decode(log_probs, num_beams=64, fuse=fuse)) == best


def test_lm_spells_what_the_acoustics_leave_open() -> None:
    tokenizer = CharTokenizer()
    c, k, a, t = (tokenizer.encode(char)[0] for char in "ckat")
    # "?at": the first sound is as likely "c" as "k" (k slightly ahead), then a clear "a t".
    rows = []
    for label, probability in [(k, 0.46), (a, 0.9), (t, 0.9)]:
        row = torch.full((len(tokenizer),), 0.001, dtype=torch.float64)
        row[label], row[0] = probability, 0.05
        if label == k:
            row[c] = 0.44
        rows.append(row / row.sum())
    log_probs = torch.stack(rows).log()
    assert tokenizer.decode(beam_search_decode(log_probs, num_beams=8)) == "kat"
    lm = CharLM.fit(["the cat sat", "a cat", "cats and cars"], tokenizer.characters, 4)
    fuse = lm.fusion(tokenizer.vocab, weight=0.5, bonus=0.0)
    assert tokenizer.decode(beam_search_decode(log_probs, num_beams=8, fuse=fuse)) == "cat"


def test_tokenizer_round_trip_and_normalisation(tmp_path) -> None:
    tokenizer = CharTokenizer()
    assert tokenizer.vocab[0] == "<blank>" and len(tokenizer) == 29
    assert tokenizer.normalize("  Héllo,  WORLD’s end!\n") == "hello world's end"
    ids = tokenizer.encode("It's 4 o'clock")
    assert tokenizer.decode(ids) == "it's o'clock"
    tokenizer.save(tmp_path)
    assert CharTokenizer.load(tmp_path).vocab == tokenizer.vocab
