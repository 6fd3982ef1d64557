"""Word times for a transcript that is already written, whatever wrote it.

Whisper's cross-attention alignment heads, run by CTranslate2 on faster-whisper's files, say at
which 20 ms encoder frame each token of a given text is heard (dynamic time warping over the
heads' attention). A word starts where its first token does and ends where the next word (or
the end of the text) starts, less any pause the voice-activity detector hears at that edge:
attention alone cannot tell where in a silence one word stops and the next begins.

Shipped as remote code with saved models: faster-whisper is imported only when words are asked
for, and without tiny-audio's zoo its Whisper comes from the Hub under faster-whisper's name.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .features import SAMPLE_RATE

try:  # Inside tiny-audio: the zoo's CTranslate2 files, and one-line errors.
    from tiny_audio.errors import UserError
    from tiny_audio.zoo import ct2_path
except ImportError:  # Loaded as Hub remote code without tiny-audio installed.
    UserError = ValueError  # type: ignore[assignment,misc]
    ct2_path = None  # type: ignore[assignment]

ALIGNER_ZOO_NAME = "whisper-tiny.en"  # the default model's own encoder
ALIGNER_HUB_NAME = "tiny.en"  # the same files, as faster-whisper names them on the Hub
WINDOW_S = 30.0  # Whisper hears at most 30 s at once
FRAMES_PER_SECOND = 50  # encoder frames: 10 ms mel hop, then a stride-2 convolution
MEDIAN_FILTER_WIDTH = 7  # Whisper's smoothing of the attention weights along time
BATCH_SIZE = 8
# Pauses the detector marks between words: shorter than within windows of long audio (a word
# may stop at any pause), with little padding (a word's edge, not a window's).
PAUSE_MIN_MS = 200
SPEECH_PAD_MS = 50


@dataclass
class Word:
    word: str
    start: float
    end: float


class TimedText(Protocol):
    """A stretch of a recording and what was said in it (a modeling.Segment)."""

    start: float
    end: float
    text: str


class WhisperAligner:
    def __init__(self, model: str) -> None:
        """`model`: a folder of faster-whisper (CTranslate2) files, or faster-whisper's name."""
        try:
            from faster_whisper import WhisperModel
            from faster_whisper.tokenizer import Tokenizer
        except ImportError:
            raise UserError(
                "word timestamps need faster-whisper: pip install faster-whisper"
            ) from None
        self.whisper = WhisperModel(model, device="cpu", compute_type="int8")
        self.tokenizer = Tokenizer(
            self.whisper.hf_tokenizer,
            self.whisper.model.is_multilingual,
            task="transcribe",
            language="en",
        )

    def align_segments(self, waveform: np.ndarray, segments: Sequence[TimedText]) -> list[Word]:
        """Words of each segment's text, timed within the segment's stretch of `waveform`.
        A segment starting before the previous one ends (overlapping windows, whose repeated
        words were dropped from its text) is taken from where the previous one ends."""
        spans: list[tuple[float, float, str]] = []
        previous_end = 0.0
        for segment in segments:
            start = max(segment.start, previous_end)
            previous_end = max(segment.end, start)
            if segment.text.strip():
                spans.append((start, previous_end, segment.text))
        pieces = [
            (waveform[round(start * SAMPLE_RATE) : round(end * SAMPLE_RATE)], text)
            for start, end, text in spans
        ]
        words: list[Word] = []
        for (start, _, _), piece_words in zip(spans, self.align(pieces)):
            words += [Word(w.word, w.start + start, w.end + start) for w in piece_words]
        return words

    def align(self, pieces: Sequence[tuple[np.ndarray, str]]) -> list[list[Word]]:
        """The words of each (audio of at most 30 s, its text), timed from the audio's start."""
        too_long = [len(audio) for audio, _ in pieces if len(audio) > WINDOW_S * SAMPLE_RATE]
        if too_long:
            raise UserError(
                f"word timestamps: {max(too_long) / SAMPLE_RATE:.0f} s of audio came back as one "
                f"text; the aligner times at most {WINDOW_S:.0f} s at once"
            )
        spoken = [(audio, text.split()) for audio, text in pieces if text.split()]
        timed: list[list[Word]] = []
        for first in range(0, len(spoken), BATCH_SIZE):
            timed += self._align_batch(spoken[first : first + BATCH_SIZE])
        found = iter(timed)
        return [next(found) if text.split() else [] for _, text in pieces]

    def _align_batch(self, pieces: Sequence[tuple[np.ndarray, list[str]]]) -> list[list[Word]]:
        import ctranslate2
        from faster_whisper.audio import pad_or_trim

        extractor = self.whisper.feature_extractor
        # The log-mel less its last frame (the extractor's own padding), as faster-whisper does.
        mels = [extractor(audio)[..., :-1] for audio, _ in pieces]
        features = np.stack([pad_or_trim(mel, extractor.nb_max_frames) for mel in mels])
        # Each word tokenized alone, with the space that starts it: its tokens are its own.
        tokens = [[self.tokenizer.encode(" " + word) for word in words] for _, words in pieces]
        results = self.whisper.model.align(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(features, dtype=np.float32)),
            self.tokenizer.sot_sequence,
            [[token for word in text for token in word] for text in tokens],
            [mel.shape[-1] for mel in mels],
            median_filter_width=MEDIAN_FILTER_WIDTH,
        )
        timed = []
        for (audio, words), word_tokens, result in zip(pieces, tokens, results):
            bounds = word_bounds(result.alignments, [len(ids) for ids in word_tokens])
            speech = speech_spans(audio)
            timed.append(
                [Word(w, *off_pauses(start, end, speech)) for w, (start, end) in zip(words, bounds)]
            )
        return timed


def word_bounds(
    path: Sequence[tuple[int, int]], tokens_per_word: list[int]
) -> list[tuple[float, float]]:
    """(start, end) seconds of each word from the warping path's (token, frame) pairs. The path
    visits every token of the text, then the end-of-text token, in order: a token begins at the
    first frame the path reaches it, a word at its first token, and it lasts until the next
    word (or the end-of-text token) begins."""
    token_index = np.array([pair[0] for pair in path])
    frame_index = np.array([pair[1] for pair in path])
    first_visit = np.concatenate([[True], np.diff(token_index) != 0])
    token_starts = frame_index[first_visit] / FRAMES_PER_SECOND
    edges = np.cumsum([0, *tokens_per_word])
    return [(float(token_starts[a]), float(token_starts[b])) for a, b in itertools.pairwise(edges)]


def speech_spans(audio: np.ndarray) -> list[tuple[float, float]]:
    """Seconds of `audio` in which the voice-activity detector hears speech."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(min_silence_duration_ms=PAUSE_MIN_MS, speech_pad_ms=SPEECH_PAD_MS)
    found = get_speech_timestamps(audio, options, sampling_rate=SAMPLE_RATE)
    return [(span["start"] / SAMPLE_RATE, span["end"] / SAMPLE_RATE) for span in found]


def off_pauses(start: float, end: float, speech: list[tuple[float, float]]) -> tuple[float, float]:
    """A word's (start, end) narrowed to the stretch of speech holding most of it, so a word
    next to a pause does not reach into it; unchanged where no speech overlaps it."""
    overlaps = [(min(end, b) - max(start, a), a, b) for a, b in speech]
    overlap, speech_start, speech_end = max(overlaps, default=(0.0, start, end))
    if overlap <= 0:
        return start, end
    return max(start, speech_start), min(end, speech_end)


@functools.cache
def load_aligner() -> WhisperAligner:
    """The aligner on the zoo's Whisper tiny.en files (or the Hub's, without tiny-audio)."""
    model: Any = ct2_path(ALIGNER_ZOO_NAME) if ct2_path is not None else ALIGNER_HUB_NAME
    return WhisperAligner(str(model))
