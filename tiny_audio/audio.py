"""Audio input: anything a user may hand us becomes mono float32 at 16 kHz, or one AudioError."""

from __future__ import annotations

import io
import os
import re
import warnings
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
# libsndfile's log line for a WAV "data" or AIFF "SSND" chunk whose header size is not what the
# file holds, e.g. "data : 64000 (should be 31978)" for a file cut short.
_CHUNK_SIZE_MISMATCH = re.compile(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.M)
_UNKNOWN_SIZE = 0xFFFFFFFF  # what a streaming writer puts in the header: not a truncation

# A path, encoded file bytes, a waveform at 16 kHz, a (waveform, rate) pair, or the dict the
# Hugging Face pipeline and `datasets` use ({"array" or "raw": ..., "sampling_rate": ...}).
AudioInput = str | os.PathLike | bytes | np.ndarray | tuple | dict


class AudioError(UserError):
    """The input is not usable audio: empty, corrupt, not audio, or not finite."""


class AudioWarning(UserWarning):
    """The input decoded, but not as its header promised: a file cut short."""


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
        # Unsigned PCM is centred on its midpoint and swings half its range either way.
        offset = 0.0 if waveform.dtype.kind == "i" else (info.max + 1) / 2
        scale = float(max(abs(info.min), info.max)) if waveform.dtype.kind == "i" else offset
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
        try:
            file = open(path, "rb")  # noqa: SIM115 (closed below)
        except OSError as error:  # say which: no such file, permission denied, is a directory
            raise AudioError(
                f"{path}: {(error.strerror or type(error).__name__).lower()}"
            ) from None
        with file:
            if os.fstat(file.fileno()).st_size == 0:
                raise AudioError(f"{path}: empty file")
            return _read_file(file, path)
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
        with sf.SoundFile(file) as sound:
            data = sound.read(dtype="float32", always_2d=True)
            rate, log = sound.samplerate, sound.extra_info
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        raise AudioError(f"{name}: not a readable audio file ({_short(error)})") from None
    _warn_if_truncated(name, log, len(data) / rate)
    return data.mean(axis=1), int(rate)


def _warn_if_truncated(name: object, log: str, seconds: float) -> None:
    """libsndfile reads what a cut-short file holds without a word; say that the rest is gone."""
    match = _CHUNK_SIZE_MISMATCH.search(log)
    if match is None:
        return
    claimed, held = (int(size) for size in match.groups())
    if 0 < held < claimed != _UNKNOWN_SIZE:
        warnings.warn(
            f"{name}: truncated: the header promises {seconds * claimed / held:.1f} s of audio, "
            f"the file holds {seconds:.1f} s",
            AudioWarning,
            stacklevel=5,  # the caller of load_audio
        )


def _short(error: Exception) -> str:
    return str(error).splitlines()[0][:120] if str(error) else type(error).__name__


def _describe(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return type(source).__name__
