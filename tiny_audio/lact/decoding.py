"""CTC decoding of one utterance's (tokens, vocab) log-probabilities into label ids, greedy or by
prefix beam search with an optional character language model."""

from __future__ import annotations

import math
from collections import defaultdict

import torch
from torch import Tensor

from .lm import Fusion

NEG_INF = -math.inf
# Labels this much less likely than a frame's best are not tried there: they would fall out of
# any beam, and trying all of them on every frame makes beam search 2-3x slower.
PRUNE_LOG_PROB = 10.0


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


def beam_search_decode(
    log_probs: Tensor, num_beams: int, blank: int = 0, fuse: Fusion | None = None
) -> list[int]:
    """CTC prefix beam search: keeps the `num_beams` label prefixes with the highest probability
    summed over all their alignments, tracked separately for alignments ending in a blank and in
    a label (so "aa" and "a-a" are told apart). With `fuse` (shallow fusion, see lm.py) each
    prefix also carries a language-model score, which ranks it alongside the acoustic one."""
    rows = log_probs.tolist()
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, NEG_INF)}
    lm_scores: dict[tuple[int, ...], float] = {(): 0.0}
    for row in rows:
        floor = max(row) - PRUNE_LOG_PROB
        candidates = [(label, score) for label, score in enumerate(row) if score >= floor]
        grown: dict[tuple[int, ...], list[float]] = defaultdict(lambda: [NEG_INF, NEG_INF])
        for prefix, (ends_blank, ends_label) in beams.items():
            total = _log_add(ends_blank, ends_label)
            same = grown[prefix]
            same[0] = _log_add(same[0], total + row[blank])
            last = prefix[-1] if prefix else None
            for label, score in candidates:
                if label == blank:
                    continue
                longer = (*prefix, label)
                extended = grown[longer]
                if fuse is not None and longer not in lm_scores:
                    lm_scores[longer] = lm_scores[prefix] + fuse(prefix, label)
                if label == last:
                    # A repeat only extends the prefix after a blank; otherwise it merges.
                    same[1] = _log_add(same[1], ends_label + score)
                    extended[1] = _log_add(extended[1], ends_blank + score)
                else:
                    extended[1] = _log_add(extended[1], total + score)
        ranked = sorted(
            grown.items(),
            key=lambda item: _log_add(*item[1]) + lm_scores.get(item[0], 0.0),
            reverse=True,
        )
        beams = {prefix: (scores[0], scores[1]) for prefix, scores in ranked[:num_beams]}

    def final(prefix: tuple[int, ...]) -> float:
        end = fuse(prefix, None) if fuse is not None else 0.0
        return _log_add(*beams[prefix]) + lm_scores.get(prefix, 0.0) + end

    best: tuple[int, ...] = max(beams, key=final)
    return list(best)
