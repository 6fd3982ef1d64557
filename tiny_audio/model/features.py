"""Whisper's log-mel features in numpy, without transformers or torch, as WhisperFeatureExtractor
computes them (the same operations in the same order, in float32, so the values agree to float
rounding): a periodic Hann window, 400-point STFT every 160 samples centred with reflect
padding, the last frame dropped, power through an 80-band Slaney mel bank, log10, floored 8
below the clip's peak, then (x + 4) / 4. Each clip is computed alone and the batch zero-padded
after, as ASRProcessor does.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SAMPLE_RATE = 16_000
# The shortest clip the feature extractors accept (an STFT window); shorter clips are zero-padded.
MIN_SAMPLES = 1_600
N_FFT = 400
HOP_LENGTH = 160
N_MELS = 80
# WhisperFeatureExtractor's longest input: 30 s; longer audio is truncated, as it truncates.
MAX_SAMPLES = 30 * SAMPLE_RATE


def _hertz_to_mel(hertz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    mels = 3.0 * hertz / 200.0
    high = hertz >= 1000.0
    mels[high] = 15.0 + np.log(hertz[high] / 1000.0) * (27.0 / np.log(6.4))
    return mels


def _mel_to_hertz(mels: np.ndarray) -> np.ndarray:
    hertz = 200.0 * mels / 3.0
    high = mels >= 15.0
    hertz[high] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mels[high] - 15.0))
    return hertz


@functools.cache
def mel_filters() -> np.ndarray:
    """(N_FFT // 2 + 1, N_MELS) float64: triangles evenly spaced in Slaney mels from 0 to
    8 kHz, each scaled to unit area (Slaney normalisation)."""
    edges = _mel_to_hertz(
        np.linspace(
            _hertz_to_mel(np.array([0.0]))[0], _hertz_to_mel(np.array([8000.0]))[0], N_MELS + 2
        )
    )
    bins = np.linspace(0, SAMPLE_RATE // 2, N_FFT // 2 + 1)
    widths = np.diff(edges)
    offsets = edges[None, :] - bins[:, None]
    rising = -offsets[:, :-2] / widths[:-1]
    falling = offsets[:, 2:] / widths[1:]
    triangles = np.maximum(np.zeros(1), np.minimum(rising, falling))
    return triangles * (2.0 / (edges[2 : N_MELS + 2] - edges[:N_MELS]))[None, :]


@functools.cache
def _hann_window() -> np.ndarray:
    """The periodic Hann window (as torch.hann_window): a full cosine period over N_FFT."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)


@functools.cache
def _mel_filters32() -> np.ndarray:
    return mel_filters().astype(np.float32)


def log_mel(waveform: np.ndarray) -> np.ndarray:
    """(N_MELS, len(waveform) // HOP_LENGTH) float32 normalised log-mel of one 16 kHz clip."""
    samples = np.asarray(waveform[:MAX_SAMPLES], dtype=np.float32)
    padded = np.pad(samples, N_FFT // 2, mode="reflect")
    # Frames every HOP_LENGTH samples, views of the clip; the last one is dropped, as Whisper's.
    frames = sliding_window_view(padded, N_FFT)[::HOP_LENGTH][:-1]
    spectrum = np.fft.rfft(frames * _hann_window(), axis=-1)  # float32 in: complex64 out
    power = np.square(spectrum.real) + np.square(spectrum.imag)
    log_spec = np.log10(np.maximum(power @ _mel_filters32(), np.float32(1e-10)))
    log_spec = np.maximum(log_spec, log_spec.max() - np.float32(8.0))
    return np.ascontiguousarray(((log_spec + np.float32(4.0)) / np.float32(4.0)).T)


def batch_log_mel(waveforms: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Each clip (padded to MIN_SAMPLES) on its own, then zero-padded: features (B, N_MELS, T)
    float32 and lengths (B,) in frames."""
    per_clip = []
    for waveform in waveforms:
        waveform = np.asarray(waveform, dtype=np.float32)
        if len(waveform) < MIN_SAMPLES:
            waveform = np.pad(waveform, (0, MIN_SAMPLES - len(waveform)))
        per_clip.append(log_mel(waveform))
    lengths = np.array([clip.shape[-1] for clip in per_clip])
    batch = np.zeros((len(per_clip), N_MELS, int(lengths.max())), np.float32)
    for row, clip in zip(batch, per_clip, strict=True):
        row[:, : clip.shape[-1]] = clip
    return batch, lengths
