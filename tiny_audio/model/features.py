"""Whisper's log-mel features without transformers, as WhisperFeatureExtractor computes them with
torch (the same operations in the same order, so the values agree to the last bit or nearly):
a periodic Hann window, 400-point STFT every 160 samples centred with reflect padding, the last
frame dropped, power through an 80-band Slaney mel bank, log10, floored 8 below the clip's peak,
then (x + 4) / 4. Each clip is computed alone and the batch zero-padded after, as ASRProcessor
does. Torch is imported when features are first made, so that importing the constants is free.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

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


def log_mel(waveform: np.ndarray) -> torch.Tensor:
    """(N_MELS, len(waveform) // HOP_LENGTH) normalised log-mel of one 16 kHz clip."""
    import torch

    samples = torch.from_numpy(np.ascontiguousarray(waveform[:MAX_SAMPLES], dtype=np.float32))
    stft = torch.stft(
        samples[None],
        N_FFT,
        HOP_LENGTH,
        window=torch.hann_window(N_FFT),
        return_complex=True,
    )
    power = (stft[..., :-1].abs() ** 2).contiguous()
    mel = torch.from_numpy(mel_filters()).to(torch.float32).T @ power
    log_spec = torch.clamp(mel, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0)[0]


def batch_log_mel(waveforms: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Each clip (padded to MIN_SAMPLES) on its own, then zero-padded: features (B, N_MELS, T)
    and lengths (B,) in frames."""
    import torch

    per_clip = []
    for waveform in waveforms:
        waveform = np.asarray(waveform, dtype=np.float32)
        if len(waveform) < MIN_SAMPLES:
            waveform = np.pad(waveform, (0, MIN_SAMPLES - len(waveform)))
        per_clip.append(log_mel(waveform))
    lengths = torch.tensor([clip.shape[-1] for clip in per_clip])
    longest = int(lengths.max())
    batch = torch.stack(
        [torch.nn.functional.pad(clip, (0, longest - clip.shape[-1])) for clip in per_clip]
    )
    return batch, lengths
