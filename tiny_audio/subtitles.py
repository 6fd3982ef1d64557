"""Subtitle cues from a timed transcript, written as SRT, WebVTT or timed text lines.

Cues come from words where there are word times (a few words each, never across a long pause),
else from segments. Either way a cue never starts before the previous one ends: windows of long
audio overlap, but the words they share are kept in the earlier one only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # not at run time: `ta transcribe --help` should not wait for torch
    from tiny_audio.model.alignment import TimedText, Word

DEFAULT_WORDS_PER_CUE = 7
CUE_PAUSE_S = 1.0  # a pause this long ends a cue: subtitles should not stay up through silence


@dataclass
class Cue:
    start: float
    end: float
    text: str


def cues_from_segments(segments: Sequence[TimedText]) -> list[Cue]:
    return _in_turn([Cue(s.start, s.end, s.text) for s in segments if s.text])


def cues_from_words(words: Sequence[Word], words_per_cue: int) -> list[Cue]:
    groups: list[list[Word]] = []
    for word in words:
        if (
            groups
            and len(groups[-1]) < words_per_cue
            and word.start - groups[-1][-1].end < CUE_PAUSE_S
        ):
            groups[-1].append(word)
        else:
            groups.append([word])
    return _in_turn([Cue(g[0].start, g[-1].end, " ".join(w.word for w in g)) for g in groups])


def _in_turn(cues: list[Cue]) -> list[Cue]:
    """Each cue starting no earlier than the previous one ends."""
    previous_end = 0.0
    for cue in cues:
        cue.start = max(cue.start, previous_end)
        cue.end = previous_end = max(cue.end, cue.start)
    return cues


def clock(seconds: float, separator: str) -> str:
    """HH:MM:SS<separator>mmm."""
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def to_srt(cues: list[Cue]) -> str:
    return "\n".join(
        f"{i}\n{clock(c.start, ',')} --> {clock(c.end, ',')}\n{c.text}\n"
        for i, c in enumerate(cues, start=1)
    )


def to_vtt(cues: list[Cue]) -> str:
    blocks = [f"{clock(c.start, '.')} --> {clock(c.end, '.')}\n{c.text}\n" for c in cues]
    return "\n".join(["WEBVTT\n", *blocks])


def to_timed_lines(cues: list[Cue]) -> str:
    """One "[start --> end] text" line per cue."""
    return "".join(f"[{clock(c.start, '.')} --> {clock(c.end, '.')}] {c.text}\n" for c in cues)
