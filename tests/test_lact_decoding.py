"""CTC decoding and the character vocabulary, on hand-made log-probabilities."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from tiny_audio.lact.decoding import beam_search_decode, greedy_decode
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


def brute_force_best(log_probs: torch.Tensor) -> tuple[int, ...]:
    """The label sequence with the highest probability summed over all its alignments."""
    totals: dict[tuple[int, ...], float] = {}
    length, vocab = log_probs.shape
    for path in itertools.product(range(vocab), repeat=length):
        labels = tuple(label for label, _ in itertools.groupby(path) if label != 0)
        probability = math.exp(sum(log_probs[t, label].item() for t, label in enumerate(path)))
        totals[labels] = totals.get(labels, 0.0) + probability
    return max(totals, key=totals.__getitem__)


@pytest.mark.parametrize("seed", range(6))
def test_wide_beam_finds_the_most_probable_labelling(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    log_probs = (torch.randn(5, 3, generator=generator, dtype=torch.float64) * 1.5).log_softmax(-1)
    assert tuple(beam_search_decode(log_probs, num_beams=64)) == brute_force_best(log_probs)


def test_beam_of_one_on_a_peaked_sequence_agrees_with_greedy() -> None:
    generator = torch.Generator().manual_seed(0)
    log_probs = (torch.randn(40, 29, generator=generator) * 8).log_softmax(-1)
    assert beam_search_decode(log_probs, num_beams=1) == greedy_decode(log_probs)


def test_tokenizer_round_trip_and_normalisation(tmp_path) -> None:
    tokenizer = CharTokenizer()
    assert tokenizer.vocab[0] == "<blank>" and len(tokenizer) == 29
    assert tokenizer.normalize("  Héllo,  WORLD’s end!\n") == "hello world's end"
    ids = tokenizer.encode("It's 4 o'clock")
    assert tokenizer.decode(ids) == "it's o'clock"
    tokenizer.save(tmp_path)
    assert CharTokenizer.load(tmp_path).vocab == tokenizer.vocab
