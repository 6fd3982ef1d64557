"""Long audio cut at pauses, and no text for audio without speech (Silero VAD)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from tiny_audio.audio import SAMPLE_RATE, load_audio
from tiny_audio.model.windows import speech_windows

PAUSE_S = 1.0


@pytest.fixture(scope="module")
def five_sentences(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Five spoken sentences with a second of silence after each, and where each one lies."""
    folder = tmp_path_factory.mktemp("sentences")
    pieces, spans, at = [], [], 0
    for i in range(5):
        path = folder / f"{i}.wav"
        text = f"This is sentence number {i} of a longer recording about the weather."
        subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(path)], check=True)
        speech = load_audio(path)
        pieces += [speech, np.zeros(int(PAUSE_S * SAMPLE_RATE), dtype=np.float32)]
        spans.append((at, at + len(speech)))
        at += len(speech) + int(PAUSE_S * SAMPLE_RATE)
    return np.concatenate(pieces), spans


def test_windows_hold_every_sentence_whole_and_are_cut_in_pauses(
    five_sentences: tuple[np.ndarray, list[tuple[int, int]]],
) -> None:
    waveform, spans = five_sentences
    windows = speech_windows(waveform, max_s=8.0)
    assert windows is not None and len(windows) >= 3
    for start, end, overlaps in windows:
        assert end - start <= 8.0 * SAMPLE_RATE and not overlaps
    for begin, finish in spans:  # the sentence (less the quiet edges of its file) in one window
        assert any(start <= begin + 1600 and finish - 1600 <= end for start, end, _ in windows)
    assert speech_windows(waveform, max_s=30.0) == [(windows[0][0], windows[-1][1], False)]


def test_silence_noise_and_music_hold_no_speech() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(10 * SAMPLE_RATE) / SAMPLE_RATE
    chord = sum(0.1 * np.sin(2 * np.pi * hertz * t) for hertz in (261.6, 329.6, 392.0))
    notes = [262, 294, 330, 349, 392, 440, 494, 523] * 3
    melody = np.concatenate(
        [0.2 * np.sin(2 * np.pi * hertz * t[: SAMPLE_RATE // 2]) for hertz in notes]
    )
    for clip in (
        np.zeros(10 * SAMPLE_RATE),
        0.1 * rng.standard_normal(10 * SAMPLE_RATE),
        chord,
        melody[: 10 * SAMPLE_RATE],
    ):
        assert speech_windows(np.asarray(clip, dtype=np.float32), 20.0) == []


@pytest.mark.slow
def test_the_default_model_says_nothing_for_silence_and_noise(tmp_path: Path) -> None:
    from tiny_audio.model import ASRModel

    model = ASRModel.from_pretrained("default")
    rng = np.random.default_rng(1)
    silence = np.zeros(10 * SAMPLE_RATE, dtype=np.float32)
    noise = (0.05 * rng.standard_normal(10 * SAMPLE_RATE)).astype(np.float32)
    assert model.transcribe([silence, noise]) == ["", ""]
    assert model.transcribe([silence, noise], vad=False) != ["", ""]  # what the gate prevents


@pytest.mark.slow
def test_the_default_model_transcribes_joined_clips_to_their_end() -> None:
    """Five LibriVox sentences in one 24.7 s file give at least 90% of the words of the five
    clips heard apart, and a WER within 5 points of theirs (in 20 s windows it stopped early)."""
    from tiny_audio.data.sources import load_source
    from tiny_audio.evaluate.metrics import corpus_counts
    from tiny_audio.normalize import english_normalizer
    from tiny_audio.recognizer import load_recognizer

    normalize = english_normalizer()
    clips = list(load_source("real:librivox"))
    waves = [load_audio(clip.audio) for clip in clips]
    said = normalize(" ".join(clip.text or "" for clip in clips))
    recognizer = load_recognizer("default")
    apart = normalize(" ".join(recognizer.transcribe(waves)))
    joined = normalize(recognizer.transcribe([np.concatenate(waves)])[0])
    assert len(joined.split()) >= 0.9 * len(apart.split())
    assert corpus_counts([(said, joined)]).rate <= corpus_counts([(said, apart)]).rate + 0.05
