"""Timed transcripts from any recognizer: segments (one per window of long audio, or one per
clip) and, when asked, words.

A recognizer that times its own words (`transcribe_words`: LaCT from its CTC frames,
faster-whisper from its decoder) does so; every other one (whose transcribe_words gives None)
has its text aligned to the audio by Whisper's cross-attention (tiny_audio.model.alignment),
window by window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tiny_audio.audio import duration_seconds
from tiny_audio.model.alignment import Word, load_aligner
from tiny_audio.model.windows import Segment

if TYPE_CHECKING:
    from tiny_audio.recognizer import Recognizer


@dataclass
class Timed:
    segments: list[Segment]
    words: list[Word] | None  # None: not asked for

    @property
    def text(self) -> str:
        return " ".join(segment.text for segment in self.segments if segment.text)


def transcribe_timed(
    recognizer: Recognizer,
    waveforms: list[np.ndarray],
    batch_size: int,
    word_timestamps: bool = False,
    **options: Any,
) -> list[Timed]:
    """Segments (and words, with `word_timestamps`) of each 16 kHz waveform; `options` go to
    the recognizer."""
    own_words = (
        recognizer.transcribe_words(waveforms, batch_size=batch_size, **options)
        if word_timestamps
        else None
    )
    if own_words is not None:
        return [
            Timed([Segment(0.0, duration_seconds(wave), " ".join(w.word for w in words))], words)
            for wave, words in zip(waveforms, own_words, strict=True)
        ]
    segments = recognizer.transcribe_segments(waveforms, batch_size=batch_size, **options)
    if not word_timestamps:
        return [Timed(clip, None) for clip in segments]
    aligner = load_aligner()
    return [
        Timed(clip, aligner.align_segments(wave, clip))
        for wave, clip in zip(waveforms, segments, strict=True)
    ]
