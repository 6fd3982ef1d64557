"""Beneath a Steel Sky: speech files paired with Huffman-coded subtitles in sky.dnr + sky.dsk."""

from __future__ import annotations

import itertools
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import propack
import pytest

from tiny_audio.data.games import sky
from tiny_audio.errors import UserError

HEADER_BYTES = 22


def _codes() -> dict[int, str]:
    """Byte -> bit string, read off the preorder tree (the first leaf wins for a repeated byte)."""
    codes: dict[int, str] = {}
    position = 0

    def walk(prefix: str) -> None:
        nonlocal position
        symbol = sky.HUFFMAN_TREE[position]
        position += 1
        if symbol == sky.BRANCH:
            walk(prefix + "0")
            walk(prefix + "1")
        else:
            codes.setdefault(ord(symbol), prefix)

    walk("")
    return codes


def _text_section(messages: list[str]) -> bytes:
    """A text section file: length table offset, bit stream offset, block totals, lengths, bits."""
    codes = _codes()
    bits = ""
    lengths = bytearray()
    units = []
    for message in messages:
        code = "".join(codes[byte] for byte in message.encode("latin-1") + b"\0")
        length = -(-len(code) // 2)  # in 2-bit units
        if length > 127:  # too long for one byte: counted in blocks of 8 units
            length = -(-length // 8) * 8
            lengths.append(0x80 | length // 8)
        else:
            lengths.append(length)
        bits += code.ljust(length * 2, "0")
        units.append(length)
    totals = [sum(units[i : i + 32]) for i in range(0, len(units) // 32 * 32, 32)]
    lengths_at = 4 + 2 * len(totals)
    bits_at = lengths_at + len(lengths)
    bits = bits.ljust(-(-len(bits) // 8) * 8, "0")
    stream = bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits), 8))
    head = struct.pack(f"<HH{len(totals)}H", lengths_at, bits_at, *totals)
    return head + bytes(lengths) + stream


def _speech(samples: np.ndarray, packed: bool) -> tuple[bytes, int]:
    """A speech file's stored bytes and its index flags (size added by the caller)."""
    body = samples.astype(np.uint8).tobytes()
    total = HEADER_BYTES + len(body)
    if not packed:
        header = struct.pack("<11H", 0, 0, 0, 0, 0, 0, total, 0, 0, 0, 0)
        return header + body, sky.STORED_AS_IS
    header = struct.pack(
        "<11H", 0x81 | (total >> 16) << 8, 0, 0, 0, 0, 0, total & 0xFFFF, 0, 0, 0, 0
    )
    return header + propack.pack(body), 0


def _write_game(root: Path, files: dict[int, tuple[bytes, int]]) -> Path:
    """sky.dnr + sky.dsk holding `files` (number -> (stored bytes, flags)); returns the folder."""
    folder = root / sky.DATA_DIR
    folder.mkdir(parents=True)
    disk = bytearray()
    index = bytearray(struct.pack("<I", len(files)))
    for number, (data, flags) in files.items():
        disk += bytes(-len(disk) % 16)  # 16-byte aligned, so the offset can be given in units
        offset = len(disk) >> sky.OFFSET_UNIT_SHIFT | sky.OFFSET_IN_UNITS
        field = flags | len(data)
        index += (
            struct.pack("<H", number) + offset.to_bytes(3, "little") + field.to_bytes(3, "little")
        )
        disk += data
    (folder / sky.INDEX_FILE).write_bytes(bytes(index))
    (folder / sky.DISK_FILE).write_bytes(bytes(disk))
    return folder


LONG_LINE = (
    "I've no use for personal POSSESSIONS, but this one is worth a LOT of credits, Foster. " * 2
)
SECTION_0 = ["Foster", "I had to INSPECT it.", "Hey!\t", "", LONG_LINE]
SECTION_3 = ["Joey", "Where do you want to GO?", "`G. LAMB'. It's that Supervisor's apartment."]


@pytest.fixture()
def game(tmp_path: Path) -> dict[int, np.ndarray]:
    """A small game: samples of each speech file, written under tmp_path."""
    rng = np.random.default_rng(0)
    samples = {n: rng.integers(0, 256, 300 + n % 100) for n in (50001, 50002, 50003, 50004, 52432)}
    files = {
        60600 + section: (_text_section(messages), sky.STORED_AS_IS)
        for section, messages in enumerate(
            [SECTION_0, ["x"], ["y"], SECTION_3, ["z"], ["w"], ["v"], ["u"]]
        )
    }
    for number, clip in samples.items():
        files[number] = _speech(clip, packed=number % 2 == 0)
    files[50009] = _speech(samples[50001], packed=False)  # beyond section 0's messages
    files[59500] = _speech(samples[50001], packed=True)  # an intro voice: no subtitle
    _write_game(tmp_path, files)
    return samples


def test_lines_pair_speech_with_subtitles(tmp_path: Path, game: dict[int, np.ndarray]) -> None:
    got = list(sky.lines(tmp_path))
    assert [(line.id, line.text, line.scene) for line in got] == [
        ("sky-50001", "I had to INSPECT it.", "section0-block0"),
        ("sky-50002", "Hey!", "section0-block0"),  # the tab is stripped
        ("sky-50004", LONG_LINE.strip(), "section0-block0"),  # 50003's message is empty
        ("sky-52432", SECTION_3[2], "section3-block0"),
    ]
    for line in got:
        assert isinstance(line.audio, tuple)
        samples, rate = line.audio
        expected = (game[int(line.id[4:])].astype(np.int16) - 128) * 256
        assert rate == sky.SAMPLE_RATE and samples.dtype == np.int16
        np.testing.assert_array_equal(samples, expected)
        assert line.speaker == ""


def test_truncated_index_raises(tmp_path: Path, game: dict[int, np.ndarray]) -> None:
    index = tmp_path / sky.DATA_DIR / sky.INDEX_FILE
    index.write_bytes(index.read_bytes()[:-5])
    with pytest.raises(UserError, match="truncated file index"):
        list(sky.lines(tmp_path))


def test_truncated_disk_raises(tmp_path: Path, game: dict[int, np.ndarray]) -> None:
    disk = tmp_path / sky.DATA_DIR / sky.DISK_FILE
    disk.write_bytes(disk.read_bytes()[: disk.stat().st_size // 2])
    with pytest.raises(UserError, match="truncated"):
        list(sky.lines(tmp_path))


def test_corrupt_packed_speech_raises(tmp_path: Path) -> None:
    data, flags = _speech(np.arange(256), packed=True)
    broken = data[:-8] + bytes(8)
    _write_game(
        tmp_path,
        {60600 + s: (_text_section(["a", "b"]), sky.STORED_AS_IS) for s in range(8)}
        | {50001: (broken, flags)},
    )
    with pytest.raises(UserError, match="file 50001 does not unpack"):
        list(sky.lines(tmp_path))


def test_missing_game_raises(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot read the file index"):
        list(sky.lines(tmp_path))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")
def test_real_package(tmp_path: Path) -> None:
    subprocess.run(["apt-get", "download", "beneath-a-steel-sky"], cwd=tmp_path, check=True)
    (deb,) = tmp_path.glob("beneath-a-steel-sky_*.deb")
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    first = list(itertools.islice(sky.lines(root), 3))
    assert [(line.id, line.text, line.scene) for line in first] == [
        ("sky-50007", "I had to INSPECT it.", "section0-block0"),
        ("sky-50011", "Hey!", "section0-block0"),
        ("sky-50012", "What's it for?", "section0-block0"),
    ]
    assert isinstance(first[0].audio, tuple)
    assert first[0].audio[0].shape == (12607,)
    folder = root / sky.DATA_DIR
    index = sky._read_index(folder / sky.INDEX_FILE)
    with (folder / sky.DISK_FILE).open("rb") as disk:
        pairs = list(sky._subtitled_speech(index, disk, folder))
    assert len(pairs) == 3491
    assert (53151, 3, 721, "Where do you want to GO?") in pairs
