"""Long audio as windows a model can take: cut at pauses found by a voice-activity detector
(Silero VAD, the ONNX model inside the faster-whisper wheel), or at fixed lengths with overlap.

A window at a pause needs no overlap, so no words are cut or repeated; a clip in which the
detector finds no speech has no window at all, and a recognizer says nothing for it instead of
inventing text. Fixed windows remain for audio without pauses and where the detector is absent.
"""

from __future__ import annotations

import functools
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .features import SAMPLE_RATE

# A window: (start sample, end sample, overlaps the previous window).
Window = tuple[int, int, bool]
# Longest window cut at pauses. The default model writes a window of a line or two to its end
# but often stops early in a longer one: on dev recordings of game lines, 8 s windows scored
# 48% WER where 20 s ones scored 68% (BENCHMARKS.md, "Long audio"). A clip this short is heard whole.
VAD_WINDOW_S = 8.0
# Speech within this of a window's edge is kept in it: the detector's edges are tight.
SPEECH_PAD_S = 0.2

logger = logging.getLogger("tiny_audio")


@dataclass
class Segment:
    start: float
    end: float
    text: str


class WindowedRecognizer(ABC):
    """A tiny-audio model as a tiny_audio Recognizer (ASRModel and the lean runtime alike): its
    text is its windows' segments joined, and its words are timed by Whisper's alignment heads
    (alignment.py), not by the model itself."""

    needs_warmup = True
    # Decoding options, and the windows long audio is cut into (transcribe_windows).
    transcribe_options = (
        "num_beams",
        "max_new_tokens",
        "prompt",
        "chunk_length_s",
        "stride_length_s",
        "vad",
    )

    config: Any  # the model's ASRConfig (or its settings, in the lean runtime)

    @abstractmethod
    def transcribe_clips(
        self, clips: list[np.ndarray], prompt: str | None, **generate_options: Any
    ) -> list[str]:
        """The text of each clip, each no longer than the model's window."""

    def transcribe_segments(
        self,
        waveforms: list[np.ndarray],
        batch_size: int = 8,
        chunk_length_s: float | None = None,
        stride_length_s: float | tuple[float, float] | None = None,
        prompt: str | None = None,
        vad: bool = True,
        **generate_options: Any,
    ) -> list[list[Segment]]:
        """Timed text segments for each waveform: one per window of long audio; `generate_options`
        go to `transcribe_clips`. With `vad`, windows of up to `chunk_length_s` (default
        VAD_WINDOW_S) are cut at pauses and a clip without speech gets no segment; otherwise fixed
        windows (default: the encoder's 30 s) overlap by `stride_length_s`, removed again when
        joined."""
        return transcribe_windows(
            waveforms,
            lambda clips: self.transcribe_clips(clips, prompt, **generate_options),
            float(self.config.max_audio_seconds),
            batch_size,
            chunk_length_s,
            stride_length_s,
            vad,
        )

    def transcribe(self, waveforms: list[np.ndarray], **options: Any) -> list[str]:
        """Text for each 16 kHz mono waveform; takes the options of `transcribe_segments`."""
        segments = self.transcribe_segments(waveforms, **options)
        return [" ".join(segment.text for segment in clip if segment.text) for clip in segments]

    def transcribe_words(
        self, waveforms: list[np.ndarray], batch_size: int = 8, **options: Any
    ) -> None:
        """None: no word times of its own (tiny_audio.timestamps aligns its segments)."""
        return None

    @abstractmethod
    def num_trainable_parameters(self) -> int:
        """The numbers a checkpoint of it holds: the projector's, and any adapters'."""

    def describe(self) -> list[tuple[str, str]]:
        """Encoder, projector, decoder (with any LoRA) and the trained parameters' count."""
        config = self.config
        decoder = config.text_decoder + (
            f" + LoRA rank {config.lora_rank}" if config.lora_rank else ""
        )
        return [
            ("Encoder", config.audio_encoder),
            ("Projector", config.projector_type),
            ("Decoder", decoder),
            ("Trainable parameters", f"{self.num_trainable_parameters():,}"),
        ]


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


def clip_windows(
    waveform: np.ndarray,
    longest_s: float,
    chunk_length_s: float | None,
    stride_length_s: float | tuple[float, float] | None,
    vad: bool,
) -> list[Window]:
    """The windows a model of at most `longest_s` seconds hears `waveform` in: with `vad`, cut
    at pauses (at most `chunk_length_s`, default VAD_WINDOW_S); else, or without a detector,
    fixed windows (default `longest_s`) overlapping by `stride_length_s`."""
    if vad:
        chunk = min(chunk_length_s or VAD_WINDOW_S, longest_s)
        found = speech_windows(waveform, chunk)
        if found is not None:
            # A clip that fits whole is heard whole, as in training; the detector only gates it.
            fits = len(waveform) <= chunk * SAMPLE_RATE
            return [(0, len(waveform), False)] if found and fits else found
    return split_windows(
        len(waveform), min(chunk_length_s or longest_s, longest_s), stride_length_s
    )


def transcribe_windows(
    waveforms: list[np.ndarray],
    transcribe_clips: Callable[[list[np.ndarray]], list[str]],
    longest_s: float,
    batch_size: int = 8,
    chunk_length_s: float | None = None,
    stride_length_s: float | tuple[float, float] | None = None,
    vad: bool = True,
) -> list[list[Segment]]:
    """Timed text segments for each waveform, one per window (`clip_windows`): windows of
    similar length are transcribed together, `batch_size` at a time, by `transcribe_clips`, and
    the words repeated where fixed windows overlap are dropped."""
    windows = [
        clip_windows(wave, longest_s, chunk_length_s, stride_length_s, vad) for wave in waveforms
    ]
    jobs = [(c, w) for c, spans in enumerate(windows) for w in range(len(spans))]
    jobs.sort(key=lambda job: windows[job[0]][job[1]][1] - windows[job[0]][job[1]][0])
    texts: dict[tuple[int, int], str] = {}
    for start in range(0, len(jobs), batch_size):
        batch = jobs[start : start + batch_size]
        clips = [waveforms[c][slice(*windows[c][w][:2])] for c, w in batch]
        texts.update(zip(batch, transcribe_clips(clips)))
    results = []
    for c, spans in enumerate(windows):
        segments: list[Segment] = []
        for w, (begin, end, keep_from) in enumerate(spans):
            text = texts[(c, w)]
            new_text = merge_overlap(segments[-1].text, text) if keep_from else text
            segments.append(Segment(begin / SAMPLE_RATE, end / SAMPLE_RATE, new_text))
        results.append(segments)
    return results
