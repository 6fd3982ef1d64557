"""CTC decoding of one utterance's (tokens, vocab) log-probabilities into label ids."""

from __future__ import annotations

import math
from collections import defaultdict

import torch
from torch import Tensor

NEG_INF = -math.inf


def greedy_decode(log_probs: Tensor, blank: int = 0) -> list[int]:
    """Best label per frame, repeats merged, blanks dropped."""
    best = torch.unique_consecutive(log_probs.argmax(dim=-1))
    return [index for index in best.tolist() if index != blank]


def _log_add(a: float, b: float) -> float:
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    high = max(a, b)
    return high + math.log1p(math.exp(-abs(a - b)))


def beam_search_decode(log_probs: Tensor, num_beams: int, blank: int = 0) -> list[int]:
    """CTC prefix beam search (no language model): keeps the `num_beams` label prefixes with the
    highest probability summed over all their alignments, tracked separately for alignments
    ending in a blank and in a label (so "aa" and "a-a" are told apart)."""
    rows = log_probs.tolist()
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, NEG_INF)}
    for row in rows:
        grown: dict[tuple[int, ...], list[float]] = defaultdict(lambda: [NEG_INF, NEG_INF])
        for prefix, (ends_blank, ends_label) in beams.items():
            total = _log_add(ends_blank, ends_label)
            same = grown[prefix]
            same[0] = _log_add(same[0], total + row[blank])
            last = prefix[-1] if prefix else None
            for label, score in enumerate(row):
                if label == blank:
                    continue
                extended = grown[(*prefix, label)]
                if label == last:
                    # A repeat only extends the prefix after a blank; otherwise it merges.
                    same[1] = _log_add(same[1], ends_label + score)
                    extended[1] = _log_add(extended[1], ends_blank + score)
                else:
                    extended[1] = _log_add(extended[1], total + score)
        ranked = sorted(grown.items(), key=lambda item: _log_add(*item[1]), reverse=True)
        beams = {prefix: (scores[0], scores[1]) for prefix, scores in ranked[:num_beams]}
    return list(max(beams.items(), key=lambda item: _log_add(*item[1]))[0])
