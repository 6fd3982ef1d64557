"""Word times from a CTC model's own frames: the most likely CTC path that spells a given text
(Viterbi over the text's labels with blanks between), read off frame by frame.

A text decoded from the same frames (greedy or by beam search) always has such a path. A word
lasts from the first frame of its first character to the last frame of its last one.
"""

from __future__ import annotations

import itertools
import re

import numpy as np

from tiny_audio.model.alignment import Word

# Pauses at least this long cut a clip into pieces decoded and aligned one by one.
MIN_PAUSE_S = 0.4


def label_frames(log_probs: np.ndarray, labels: list[int], blank: int) -> list[tuple[int, int]]:
    """(first frame, last frame) of each label on the best path through (frames, vocab)
    `log_probs` that spells `labels`."""
    if not labels:
        return []
    states = np.full(2 * len(labels) + 1, blank)
    states[1::2] = labels
    # A label may follow the label before it directly unless the two are the same.
    can_skip = np.zeros(len(states), dtype=bool)
    can_skip[3::2] = states[3::2] != states[1:-2:2]
    score = np.full(len(states), -np.inf)
    score[:2] = log_probs[0, states[:2]]
    moves = np.zeros((len(log_probs), len(states)), dtype=np.int8)
    for frame in range(1, len(log_probs)):
        step = np.concatenate([[-np.inf], score[:-1]])
        skip = np.where(can_skip, np.concatenate([[-np.inf, -np.inf], score[:-2]]), -np.inf)
        # A state is reached by staying, from the state before, or from two before (skipping a
        # blank): the choice's index is also how many states back it came from.
        choices = np.stack([score, step, skip])
        moves[frame] = choices.argmax(axis=0)
        score = choices.max(axis=0) + log_probs[frame, states]
    state = len(states) - 1 if score[-1] >= score[-2] else len(states) - 2
    path = np.empty(len(log_probs), dtype=np.int64)
    for frame in range(len(log_probs) - 1, -1, -1):
        path[frame] = state
        state -= moves[frame, state]
    spans = []
    for index in range(len(labels)):
        frames = np.flatnonzero(path == 2 * index + 1)
        spans.append((int(frames[0]), int(frames[-1])))
    return spans


def ctc_words(
    log_probs: np.ndarray,
    text: str,
    labels: list[int],
    blank: int,
    frame_seconds: float,
    offset_s: float = 0.0,
) -> list[Word]:
    """The words of `text`, spelt by `labels` (one per character), timed on `log_probs`
    whose first frame is at `offset_s`."""
    spans = label_frames(log_probs, labels, blank)
    return [
        Word(
            match.group(),
            offset_s + spans[match.start()][0] * frame_seconds,
            offset_s + (spans[match.end() - 1][1] + 1) * frame_seconds,
        )
        for match in re.finditer(r"\S+", text)
    ]


def pause_cuts(log_probs: np.ndarray, blank: int, frame_seconds: float) -> list[slice]:
    """Consecutive stretches of all the frames, cut in the middle of every pause (a run of
    MIN_PAUSE_S whose best label is the blank): pieces short enough to align one by one (the
    path's memory grows with frames times characters), and no word is cut."""
    min_frames = round(MIN_PAUSE_S / frame_seconds)
    silent = np.concatenate([[False], log_probs.argmax(axis=1) == blank, [False]])
    edges = np.flatnonzero(np.diff(silent.astype(np.int8)))
    runs = edges.reshape(-1, 2)  # [first, past-last) frame of each blank run
    cuts = [
        (a + b) // 2 for a, b in runs.tolist() if b - a >= min_frames and 0 < a < b < len(log_probs)
    ]
    bounds = [0, *cuts, len(log_probs)]
    return [slice(a, b) for a, b in itertools.pairwise(bounds)]
