"""Drascula: clips and subtitles written in the package's real formats pair up; damage is a
UserError; the real Debian package yields its lines."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tiny_audio.audio import load_audio
from tiny_audio.data.games import drascula
from tiny_audio.errors import UserError

ENGLISH_TEXTS = {
    "text": ["", "THAT'S THE SECOND BIGGEST DOOR I'VE SEEN IN MY LIFE", ""],
    "textd": [""] * 57 + ["HOW DO YOU KNOW I'M A FOREIGNER?"],
    "textvb": ["", "WHO THE HELL IS CALLING AT THIS TIME?"],
}


def _u16(value: int) -> bytes:
    return struct.pack(">H", value)


def _block(strings: list[str]) -> bytes:
    """One language's strings as create_drascula writes them: padding, then strided strings."""
    body = b"\0\0"
    for text in strings:
        raw = text.encode("cp850") + b"\0"
        pad = 4 - (len(raw) + 2) % 4
        body += _u16(len(raw) + pad + 2) + raw + b"\0" * pad
    return _u16(len(body)) + body


def _data_file(texts: dict[str, list[str]]) -> bytes:
    data = b"DRASCULA" + bytes([6])
    tables = [(1, 4)] + [(0, size) for size in drascula.TABLE_RECORD_SIZES[1:]]
    data += b"".join(_u16(count) + b"\x01" * count * size for count, size in tables)
    data += _u16(2)  # English, then a second language whose strings must be skipped
    names = [name for name, _, _ in drascula.ARRAYS]
    for index in range(drascula.ARRAY_COUNT):
        english = texts.get(names[index], [""]) if index < len(names) else ["", "x"]
        other = ["OTRO"] * len(english)
        data += _u16(len(english)) + _block(english) + _block(other)
    return data


def _samples(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(90, 170, count, dtype=np.uint8)


def _trailer() -> bytes:
    return b"fact\x04\0\0\0" + b"\x80" * (drascula.TRAILER_BYTES - 8)


def _headless_wave(size: int) -> bytes:
    """A WAV header that lost its "RIFF" tag, as some clips in the package start."""
    fmt = struct.pack("<HHIIHH", 1, 1, drascula.SAMPLE_RATE, drascula.SAMPLE_RATE, 1, 8)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", size)
    return struct.pack("<I", 4 + len(chunks) + size) + b"WAVE" + chunks


@pytest.fixture
def game(tmp_path: Path) -> Path:
    folder = tmp_path / drascula.DATA_DIR
    folder.mkdir(parents=True)
    (folder / drascula.TEXT_FILE).write_bytes(_data_file(ENGLISH_TEXTS))
    (folder / "1.ALS").write_bytes(_samples(500, 1).tobytes() + _trailer())
    (folder / "D57.ALS").write_bytes(_headless_wave(300) + _samples(300, 2).tobytes() + _trailer())
    (folder / "VB1.ALS").write_bytes(_samples(200, 3).tobytes() + _trailer())
    (folder / "2.ALS").write_bytes(_samples(100, 4).tobytes() + _trailer())  # empty subtitle
    (folder / "S1.ALS").write_bytes(_samples(100, 5).tobytes() + _trailer())  # sound effect
    return tmp_path


def test_clips_pair_with_their_array_and_number(game: Path) -> None:
    lines = list(drascula.lines(game))
    assert [line.id for line in lines] == ["drascula-1", "drascula-D57", "drascula-VB1"]
    assert [line.text for line in lines] == [
        ENGLISH_TEXTS["text"][1],
        ENGLISH_TEXTS["textd"][57],
        ENGLISH_TEXTS["textvb"][1],
    ]
    assert [line.speaker for line in lines] == ["John Hacker", "John Hacker", "Von Braun"]
    assert [line.scene for line in lines] == ["text", "textd", "textvb"]
    for line, (count, seed) in zip(lines, [(500, 1), (300, 2), (200, 3)]):
        assert isinstance(line.audio, tuple)
        samples, rate = line.audio
        assert rate == drascula.SAMPLE_RATE
        np.testing.assert_array_equal(samples, _samples(count, seed))
    assert len(load_audio(lines[0].audio)) == round(500 * 16000 / drascula.SAMPLE_RATE)


def test_text_keeps_the_dos_accent_and_drops_control_characters(tmp_path: Path) -> None:
    folder = tmp_path / drascula.DATA_DIR
    folder.mkdir(parents=True)
    stored = "WEARS A TOUPEÉ\x07 HE SURE IS DRASCULA!"  # É is byte 0x90 in code page 850
    (folder / drascula.TEXT_FILE).write_bytes(_data_file({"text": ["", stored]}))
    (folder / "1.ALS").write_bytes(_samples(100, 1).tobytes() + _trailer())
    (line,) = drascula.lines(tmp_path)
    assert line.text == "WEARS A TOUPEÉ HE SURE IS DRASCULA!"


@pytest.mark.parametrize("keep", [5, 9, 200, -3])
def test_truncated_data_file_is_a_user_error(game: Path, keep: int) -> None:
    path = game / drascula.DATA_DIR / drascula.TEXT_FILE
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(UserError, match=r"drascula\.dat"):
        list(drascula.lines(game))


def test_missing_folder_data_file_and_damaged_clips_are_user_errors(game: Path) -> None:
    with pytest.raises(UserError, match="no such folder"):
        list(drascula.lines(game / "elsewhere"))
    clip = game / drascula.DATA_DIR / "VB1.ALS"
    clip.write_bytes(b"\x80" * drascula.TRAILER_BYTES)
    with pytest.raises(UserError, match=r"VB1\.ALS: clip is truncated"):
        list(drascula.lines(game))
    clip.write_bytes(_headless_wave(300)[:20])
    with pytest.raises(UserError, match="WAV header with no data chunk"):
        list(drascula.lines(game))
    (game / drascula.DATA_DIR / drascula.TEXT_FILE).unlink()
    with pytest.raises(UserError, match="cannot read the subtitle file"):
        list(drascula.lines(game))


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("apt-get") and shutil.which("dpkg-deb")), reason="no apt")
def test_real_package(tmp_path: Path) -> None:
    download = subprocess.run(
        ["apt-get", "download", "drascula"], cwd=tmp_path, capture_output=True, text=True
    )
    if download.returncode != 0:
        pytest.skip(f"apt-get download drascula failed: {download.stderr.strip()[-200:]}")
    (deb,) = tmp_path.glob("drascula_*.deb")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path / "root")], check=True)
    lines = {line.id: line for line in drascula.lines(tmp_path / "root")}
    assert len(lines) >= 700
    known = {
        "drascula-271": ("GIVE ME A SCOTCH ON THE ROCKS", "John Hacker"),
        "drascula-D68": ("HI THERE FOREIGNER", "Blind Man"),
        "drascula-P9": ("I CAN ONLY PLAY THIS SONG", "Pianist"),
    }
    for line_id, (text, speaker) in known.items():
        assert (lines[line_id].text, lines[line_id].speaker) == (text, speaker)
