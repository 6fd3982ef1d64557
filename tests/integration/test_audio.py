"""Audio input: every accepted form becomes mono float32 16 kHz; every bad one is one AudioError."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tiny_audio.audio import SAMPLE_RATE, AudioError, AudioWarning, load_audio

NOBODY = 65534  # the unprivileged user and group of Debian and most Linux systems


def put(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def write(path: Path, data: np.ndarray, rate: int, **kwargs: object) -> Path:
    sf.write(path, data, rate, **kwargs)
    return path


@pytest.mark.parametrize(
    "fmt,subtype",
    [("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")],
)
def test_formats_decode_to_16k_mono(
    tmp_path: Path, tone: np.ndarray, fmt: str, subtype: str
) -> None:
    path = write(tmp_path / f"clip.{fmt.lower()}", tone, SAMPLE_RATE, format=fmt, subtype=subtype)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - len(tone)) < 0.05 * SAMPLE_RATE  # lossy codecs pad a little
    assert 0.1 < np.abs(audio).max() <= 1.0


def test_resampling_stereo_and_integer_pcm(tmp_path: Path) -> None:
    t = np.arange(44100) / 44100
    left = 0.5 * np.sin(2 * np.pi * 300 * t)
    stereo = np.stack([left, left], axis=1)
    audio = load_audio(write(tmp_path / "s.wav", stereo, 44100))
    assert len(audio) == SAMPLE_RATE and np.abs(audio).max() == pytest.approx(0.5, abs=0.02)
    pcm = (left * 32767).astype(np.int16)
    from_int = load_audio((pcm, 44100))
    assert from_int.dtype == np.float32 and np.abs(from_int).max() == pytest.approx(0.5, abs=0.02)
    channels_first = load_audio((np.stack([left, -left]).astype(np.float32), 44100))
    assert np.abs(channels_first).max() < 1e-3  # opposite channels cancel when averaged


def test_bytes_dict_and_array_inputs(tmp_path: Path, tone: np.ndarray) -> None:
    buffer = io.BytesIO()
    sf.write(buffer, tone, 8000, format="WAV")
    assert len(load_audio(buffer.getvalue())) == 2 * len(tone)
    assert np.allclose(load_audio({"array": tone, "sampling_rate": SAMPLE_RATE}), tone)
    assert np.allclose(load_audio({"raw": tone, "sampling_rate": SAMPLE_RATE}), tone)
    assert np.allclose(load_audio(tone), tone)


@pytest.mark.parametrize(
    "make_input,message",
    [
        (lambda d: put(d / "empty.wav", b""), "empty"),
        (
            lambda d: write(d / "zero.wav", np.zeros(0, dtype=np.float32), SAMPLE_RATE),
            "no audio samples",
        ),
        (
            lambda d: put(d / "corrupt.wav", b"RIFF\x00\x01\x00\x00WAVEfmt garbage"),
            "not a readable audio file",
        ),
        (lambda d: put(d / "notes.txt", b"hello, not audio\n" * 50), "not a readable audio file"),
        (lambda d: d / "missing.wav", "no such file"),
        (lambda d: b"", "empty audio bytes"),
        (lambda d: np.array([0.1, np.nan, 0.2], dtype=np.float32), "NaN or infinite"),
        (lambda d: np.array([0.1, np.inf], dtype=np.float32), "NaN or infinite"),
        (lambda d: np.zeros(0, dtype=np.float32), "no audio samples"),
        (lambda d: 42, "cannot read audio from int"),
        (lambda d: np.array(["a", "b"]), "unsupported sample type"),
    ],
)
def test_bad_input_raises_one_clear_error(tmp_path: Path, make_input, message: str) -> None:
    with pytest.raises(AudioError, match=message) as raised:
        load_audio(make_input(tmp_path))
    assert "\n" not in str(raised.value)


def test_transcribe_cli_reports_bad_file_in_one_line(
    tmp_path: Path, tiny_parts: dict[str, str], tone: np.ndarray
) -> None:
    from tiny_audio.model import ASRConfig, ASRModel

    model_dir = tmp_path / "model"
    ASRModel(
        ASRConfig(
            audio_encoder=tiny_parts["whisper"],
            text_decoder=tiny_parts["llama"],
            projector_hidden_dim=32,
        )
    ).save_pretrained(model_dir)
    bad = tmp_path / "notes.txt"
    bad.write_text("not audio at all\n" * 20)
    good = write(tmp_path / "good.wav", tone, SAMPLE_RATE)
    run = subprocess.run(
        [sys.executable, "-m", "tiny_audio", "transcribe", str(bad), str(good), "-m", str(model_dir), "--max-new-tokens", "3", "--format", "json"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    skipped = [line for line in run.stderr.splitlines() if line.startswith("skipped")]
    assert len(skipped) == 1 and "notes.txt" in skipped[0]
    assert '"file": "' + str(good) in run.stdout  # the good file was still transcribed


def test_unsigned_8_bit_pcm_fills_the_full_range() -> None:
    """Old games store speech as unsigned 8-bit PCM: 0 and 255 are the loudest samples."""
    samples = np.array([0, 128, 255], dtype=np.uint8)
    np.testing.assert_allclose(load_audio((samples, 16000)), [-1.0, 0.0, 127 / 128], atol=1e-6)


def _as_unprivileged(function: Callable[[], object]) -> str:
    """str(what function() raises) in a forked child that cannot bypass file permissions the way
    root does (the venv's Python lies under /root, so a subprocess as another user cannot start)."""
    if os.geteuid() != 0:
        return _raised(function)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop root, report, leave without running pytest's teardown
        os.close(read)
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        os.write(write, _raised(function).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        message = pipe.read()
    os.waitpid(pid, 0)
    return message


def _raised(function: Callable[[], object]) -> str:
    try:
        function()
    except Exception as error:
        return str(error)
    return "nothing raised"


def test_unreadable_file_says_permission_denied(tone: np.ndarray) -> None:
    folder = Path(tempfile.mkdtemp())  # under /tmp, which every user may enter (tmp_path is not)
    try:
        folder.chmod(0o755)
        locked = write(folder / "locked.wav", tone, SAMPLE_RATE)
        locked.chmod(0)
        # libsndfile said "not a readable audio file (... System error.)"
        assert _as_unprivileged(lambda: load_audio(locked)) == f"{locked}: permission denied"
    finally:
        shutil.rmtree(folder)


def test_directory_is_reported_as_a_directory(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r": is a directory$"):  # it said "no such file"
        load_audio(tmp_path)


def test_truncated_wav_is_decoded_with_a_warning(tmp_path: Path, tone: np.ndarray) -> None:
    whole = write(tmp_path / "whole.wav", np.concatenate([tone, tone]), SAMPLE_RATE)
    cut = put(tmp_path / "cut.wav", whole.read_bytes()[: whole.stat().st_size // 2])
    message = f"{cut}: truncated: the header promises 2.0 s of audio, the file holds 1.0 s"
    with pytest.warns(AudioWarning, match=re.escape(message)) as caught:
        audio = load_audio(cut)
    assert len(caught) == 1 and abs(len(audio) - SAMPLE_RATE) < 20  # the half the file holds
    # A whole file, and a streamed one whose header leaves the length unknown, warn of nothing.
    streamed = bytearray(whole.read_bytes())
    streamed[40:44] = (0xFFFFFFFF).to_bytes(4, "little")  # the data chunk's size field
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_audio(whole)) == len(load_audio(bytes(streamed))) == 2 * SAMPLE_RATE
