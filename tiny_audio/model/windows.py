"""Long audio as windows a model can take: cut at pauses found by a voice-activity detector
(Silero VAD, the ONNX model inside the faster-whisper wheel), or at fixed lengths with overlap.

A window at a pause needs no overlap, so no words are cut or repeated; a clip in which the
detector finds no speech has no window at all, and a recognizer says nothing for it instead of
inventing text. Fixed windows remain for audio without pauses and where the detector is absent.
"""

from __future__ import annotations

import functools
import logging

import numpy as np

from .processing import SAMPLE_RATE

# A window: (start sample, end sample, overlaps the previous window).
Window = tuple[int, int, bool]
# Speech within this of a window's edge is kept in it: the detector's edges are tight.
SPEECH_PAD_S = 0.2

logger = logging.getLogger("tiny_audio")


@functools.cache
def _vad() -> object | None:
    try:
        from faster_whisper import vad
    except ImportError:
        logger.warning("faster-whisper is not installed: long audio is cut into fixed windows")
        return None
    return vad


def speech_windows(waveform: np.ndarray, max_s: float) -> list[Window] | None:
    """Windows of at most `max_s` seconds, cut at pauses, holding every stretch of speech;
    [] for a clip with no speech; None where no detector is installed."""
    vad = _vad()
    if vad is None:
        return None
    options = vad.VadOptions(  # type: ignore[attr-defined]
        max_speech_duration_s=max_s - 2 * SPEECH_PAD_S,
        min_silence_duration_ms=300,
        speech_pad_ms=int(SPEECH_PAD_S * 1000),
    )
    spans = vad.get_speech_timestamps(waveform, options, sampling_rate=SAMPLE_RATE)  # type: ignore[attr-defined]
    limit = int(max_s * SAMPLE_RATE)
    windows: list[Window] = []
    for span in spans:
        start, end = int(span["start"]), min(int(span["end"]), len(waveform))
        if windows and end - windows[-1][0] <= limit:
            windows[-1] = (windows[-1][0], end, False)  # the pause stays inside the window
        else:
            windows.append((start, end, False))
    return windows


def split_windows(
    num_samples: int,
    chunk_s: float,
    stride_s: float | tuple[float, float] | None,
    grid: int = 1,
) -> list[Window]:
    """Fixed windows covering a clip.

    Consecutive windows overlap by the left stride (default: a sixth of the window), so words cut
    at one window's edge are whole in the next; the overlap is removed again when merging.
    Window lengths and overlaps are rounded to whole multiples of `grid` samples (a model's frame
    hop), so every window starts on the clip's frame grid."""

    def on_grid(samples: int) -> int:
        return round(samples / grid) * grid

    chunk = max(grid, on_grid(int(chunk_s * SAMPLE_RATE)))
    if num_samples <= chunk:
        return [(0, num_samples, False)]
    if stride_s is None:
        stride_s = chunk_s / 6
    left = stride_s[0] if isinstance(stride_s, tuple) else stride_s
    overlap = min(on_grid(int(left * SAMPLE_RATE)), chunk // grid // 2 * grid)
    step = chunk - overlap
    windows = []
    start = 0
    while True:
        end = min(start + chunk, num_samples)
        windows.append((start, end, start > 0))
        if end == num_samples:
            return windows
        start += step


def merge_overlap(previous: str, current: str, max_words: int = 30) -> str:
    """`current` without its leading words that repeat the end of `previous` (the overlap).

    The longest run of words that ends `previous` and appears near the start of `current` is
    the overlap; a lone word counts only at the very start, since short words recur by chance."""
    before, after = previous.split(), current.split()

    def normalized(words: list[str]) -> list[str]:
        return [word.lower().strip(".,!?;:\"'") for word in words]

    tail_words, head_words = normalized(before[-max_words:]), normalized(after[:max_words])
    cut = 0
    for size in range(1, min(len(tail_words), len(head_words)) + 1):
        tail = tail_words[-size:]
        for offset in range(len(head_words) - size + 1):
            if head_words[offset : offset + size] == tail and (size > 1 or offset <= 1):
                cut = offset + size
                break
    return " ".join(after[cut:])
