"""Audio input: anything a user may hand us becomes mono float32 at 16 kHz, or one AudioError."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

try:
    from tiny_audio.errors import UserError
except ImportError:  # copied beside a saved model as Hub remote code, without tiny-audio
    UserError = ValueError  # type: ignore[misc,assignment]

SAMPLE_RATE = 16_000

# A path, encoded file bytes, a waveform at 16 kHz, a (waveform, rate) pair, or the dict the
# Hugging Face pipeline and `datasets` use ({"array" or "raw": ..., "sampling_rate": ...}).
AudioInput = str | os.PathLike | bytes | np.ndarray | tuple | dict


class AudioError(UserError):
    """The input is not usable audio: empty, corrupt, not audio, or not finite."""


def load_audio(source: AudioInput, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode and convert `source` to a mono float32 waveform at `sample_rate`."""
    waveform, rate = _decode(source)
    waveform = to_mono_float(waveform)
    if waveform.size == 0:
        raise AudioError(f"{_describe(source)}: no audio samples")
    if not np.isfinite(waveform).all():
        raise AudioError(f"{_describe(source)}: audio contains NaN or infinite samples")
    return resample(waveform, rate, sample_rate)


def to_mono_float(waveform: np.ndarray) -> np.ndarray:
    """Average channels and scale integer PCM to [-1, 1]. Channels may be first or last."""
    waveform = np.asarray(waveform)
    if waveform.dtype.kind in "iu":
        info = np.iinfo(waveform.dtype)
        scale = float(max(abs(info.min), info.max))
        offset = 0.0 if waveform.dtype.kind == "i" else (info.max + 1) / 2
        waveform = (waveform.astype(np.float64) - offset) / scale
    elif waveform.dtype.kind != "f":
        raise AudioError(f"unsupported sample type {waveform.dtype}")
    if waveform.ndim == 2:
        channel_axis = 0 if waveform.shape[0] < waveform.shape[1] else 1
        waveform = waveform.mean(axis=channel_axis)
    elif waveform.ndim != 1:
        raise AudioError(f"expected a 1-D or 2-D waveform, got shape {waveform.shape}")
    return np.ascontiguousarray(waveform, dtype=np.float32)


def resample(waveform: np.ndarray, orig_rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    if orig_rate <= 0:
        raise AudioError(f"invalid sample rate {orig_rate}")
    if orig_rate == target_rate:
        return waveform
    return soxr.resample(waveform, orig_rate, target_rate, quality="HQ").astype(np.float32)


def duration_seconds(waveform: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    return len(waveform) / sample_rate


def _decode(source: Any) -> tuple[np.ndarray, int]:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise AudioError(f"{path}: no such file")
        if path.stat().st_size == 0:
            raise AudioError(f"{path}: empty file")
        return _read_file(path, path)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise AudioError("empty audio bytes")
        return _read_file(io.BytesIO(bytes(source)), "audio bytes")
    if isinstance(source, dict):
        data = source.get("array", source.get("raw"))
        rate = source.get("sampling_rate", SAMPLE_RATE)
        if data is None:
            raise AudioError("audio dict needs an 'array' or 'raw' entry")
        return np.asarray(data), int(rate)
    if isinstance(source, tuple) and len(source) == 2:
        data, rate = source
        return np.asarray(data), int(rate)
    if isinstance(source, np.ndarray):
        return source, SAMPLE_RATE
    if hasattr(source, "numpy"):  # a torch tensor
        return source.detach().cpu().numpy(), SAMPLE_RATE
    raise AudioError(f"cannot read audio from {type(source).__name__}")


def _read_file(file: Any, name: object) -> tuple[np.ndarray, int]:
    try:
        data, rate = sf.read(file, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        raise AudioError(f"{name}: not a readable audio file ({_short(error)})") from None
    return data.mean(axis=1), int(rate)


def _short(error: Exception) -> str:
    return str(error).splitlines()[0][:120] if str(error) else type(error).__name__


def _describe(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return type(source).__name__
