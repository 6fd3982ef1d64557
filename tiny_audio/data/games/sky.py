"""Beneath a Steel Sky, CD version 0.0372 (Debian `beneath-a-steel-sky`): speech and subtitles.

Everything lives in two files under `DATA_DIR`. `sky.dsk` is a plain concatenation of numbered
files; `sky.dnr` indexes it: a u32 entry count, then 8 bytes per file (all little-endian): the
u16 file number, a 24-bit offset and 24 bits of flags. When bit 23 of the offset is set, the
other 23 bits count 16-byte units. The flags' low 22 bits are the stored size; bit 23 says the
file is stored as is, bit 22 that its unpacked form leaves out the header.

Apart from the text sections (below), a file starts with a 22-byte header of eleven u16
(`DataFileHeader` in ScummVM): word 0 holds flags (0x80: the rest is packed with Rob Northen's
ProPack method 1, "RNC\\x01") and word 6 the unpacked size including the header; the top byte
of word 0 extends that size by 16 bits. A packed file unpacks to its body, which follows a copy
of its header.

Speech is files 50000 and up: a header and then raw unsigned 8-bit mono PCM at 11,025 Hz (the
CD version packs every spoken line). Files 59494-59672 are the intro's voices, pictures and
sounds; the intro has no subtitles, so no message leads to them.

The English subtitles are eight text sections, files 60600-60607, stored as is. A section
begins with a u16 offset of its length table, a u16 offset of its bit stream and one u16 total
per block of 32 messages (redundant, so unused here). The length table gives one byte per
message: its length in 2-bit units, or, with the top bit set, the low 7 bits times 8 units.
Messages follow each other in the bit stream, each starting on a 2-bit boundary, bits taken
from the top of each byte. Each is a string of Huffman codes (`HUFFMAN_TREE`) ended by a NUL.

The game plays message `m` of section `s` with speech file `50000 + SECTION_SPEECH[s] + m`. The
data does not say who speaks a line, so `speaker` is empty; the scene is the game's block of 32
messages within a section (a few exchanges), fine enough to hold some out for dev and test.
"""

from __future__ import annotations

import struct
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import propack

from tiny_audio.data.games import Line
from tiny_audio.errors import UserError

DATA_DIR = Path("usr/share/scummvm/beneath-a-steel-sky")
INDEX_FILE = "sky.dnr"
DISK_FILE = "sky.dsk"
SAMPLE_RATE = 11025

INDEX_ENTRY_BYTES = 8
OFFSET_IN_UNITS = 1 << 23
OFFSET_UNIT_SHIFT = 4  # 16-byte units in the CD versions
SIZE_MASK = (1 << 22) - 1
STORED_AS_IS = 1 << 23
UNPACKED_WITHOUT_HEADER = 1 << 22

HEADER = struct.Struct("<11H")
HEADER_PACKED = 0x80

SPEECH_FILE_BASE = 50000
ENGLISH_TEXT_FILE = 60600
# Per section, the first speech file number (less SPEECH_FILE_BASE); ScummVM's
# Sound::_speechConvertTable.
SECTION_SPEECH = (0, 600, 1100, 2430, 3380, 4530, 5080, 5230)
# The game addresses messages in blocks of this many (a text number is block * 32 + message).
MESSAGE_BLOCK = 32

LENGTH_IN_BLOCKS = 0x80  # a message length byte with this bit counts 8-unit blocks
# The English text's Huffman tree (from the table for version 0.0372 in ScummVM's
# engines/sky/hufftext.cpp) written out in preorder: "|" is a branch whose 0-subtree follows,
# then its 1-subtree; any other character is a leaf that decodes to that byte.
HUFFMAN_TREE = (
    "||| |ea|||os|tn||.ir|||||\x00Eu|mA|||lI|dR||NST|||||Ohc|Dg|||LC|pU||!yM|||||PvH|?b||"
    "|'f,|GB|||||VkF|qw|||K-W|J*||||zY|j+|||Q\x85)||Z\x8b<|||||\x95~\x8a|\x87:|||\x7f]#||"
    'xX\x91|||||\x88`2||0\x831|||/(=|\x86^||||39|\x984|||}8\\|"\x90||||&\x8d|56||\x92'
    "\x8f|\x8e\x93||||\x8c7\x80||\x81\x99|$@||||[\x9a_|>\x96|||\x82%\x09||\x9c\x97|{|\x94"
    "!"
)
BRANCH = "|"
END_OF_MESSAGE = 0


@dataclass(frozen=True)
class _Entry:
    offset: int
    size: int
    flags: int


def lines(root: Path) -> Iterator[Line]:
    """Every subtitled line of speech, in section then message order; audio is decoded lazily."""
    folder = Path(root) / DATA_DIR
    index = _read_index(folder / INDEX_FILE)
    disk_path = folder / DISK_FILE
    try:
        disk = disk_path.open("rb")
    except OSError as error:
        raise UserError(f"{disk_path}: cannot open the game data ({error.strerror})") from None
    with disk:
        for number, section, message, text in _subtitled_speech(index, disk, disk_path):
            yield Line(
                id=f"sky-{number:05d}",
                audio=(_read_speech(index, disk, disk_path, number), SAMPLE_RATE),
                text=text,
                speaker="",
                scene=f"section{section}-block{message // MESSAGE_BLOCK}",
            )


def _subtitled_speech(
    index: dict[int, _Entry], disk: BinaryIO, disk_path: Path
) -> Iterator[tuple[int, int, int, str]]:
    """(speech file number, section, message, subtitle) for each message with a speech file."""
    for section, speech_start in enumerate(SECTION_SPEECH):
        text_number = ENGLISH_TEXT_FILE + section
        if text_number not in index:
            raise UserError(f"{disk_path}: text section file {text_number} is missing")
        label = f"{disk_path}: text section file {text_number}"
        messages = _decode_section(_load(index, disk, disk_path, text_number), label)
        for message, text in enumerate(messages):
            number = SPEECH_FILE_BASE + speech_start + message
            if number in index and text:
                yield number, section, message, text


def _read_index(path: Path) -> dict[int, _Entry]:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UserError(f"{path}: cannot read the file index ({error.strerror})") from None
    if len(data) < 4:
        raise UserError(f"{path}: truncated file index ({len(data)} bytes)")
    (count,) = struct.unpack_from("<I", data)
    end = 4 + count * INDEX_ENTRY_BYTES
    if len(data) < end:
        raise UserError(
            f"{path}: truncated file index ({count} entries need {end} bytes, got {len(data)})"
        )
    index = {}
    for start in range(4, end, INDEX_ENTRY_BYTES):
        number, offset_low, offset_high, flags_low, flags_high = struct.unpack_from(
            "<HHBHB", data, start
        )
        offset = offset_low | offset_high << 16
        flags = flags_low | flags_high << 16
        if offset & OFFSET_IN_UNITS:
            offset = (offset & ~OFFSET_IN_UNITS) << OFFSET_UNIT_SHIFT
        index[number] = _Entry(offset, flags & SIZE_MASK, flags)
    return index


def _load(index: dict[int, _Entry], disk: BinaryIO, disk_path: Path, number: int) -> bytes:
    """File `number` as the game sees it: unpacked, with its header unless the flags drop it."""
    entry = index[number]
    disk.seek(entry.offset)
    stored = disk.read(entry.size)
    if len(stored) < entry.size:
        raise UserError(
            f"{disk_path}: truncated: file {number} needs bytes {entry.offset}-"
            f"{entry.offset + entry.size}, the disk file ends at {entry.offset + len(stored)}"
        )
    if entry.flags & STORED_AS_IS:
        return stored
    if len(stored) < HEADER.size:
        raise UserError(f"{disk_path}: file {number} is shorter than a {HEADER.size}-byte header")
    header = HEADER.unpack_from(stored)
    if not header[0] & HEADER_PACKED:
        return stored
    try:
        body = propack.unpack(stored[HEADER.size :])
    except (ValueError, IndexError) as error:
        raise UserError(f"{disk_path}: file {number} does not unpack ({error})") from None
    unpacked = body if entry.flags & UNPACKED_WITHOUT_HEADER else stored[: HEADER.size] + body
    expected = (header[0] & 0xFF00) << 8 | header[6]
    if len(unpacked) != expected:
        raise UserError(
            f"{disk_path}: file {number} unpacks to {len(unpacked)} bytes, not {expected}"
        )
    return unpacked


def _read_speech(
    index: dict[int, _Entry], disk: BinaryIO, disk_path: Path, number: int
) -> np.ndarray:
    """The speech file's unsigned 8-bit samples as full-scale int16."""
    data = _load(index, disk, disk_path, number)
    if len(data) <= HEADER.size:
        raise UserError(f"{disk_path}: speech file {number} holds no samples")
    samples = np.frombuffer(data, dtype=np.uint8, offset=HEADER.size).astype(np.int16)
    return (samples - 128) << 8


def _decode_section(data: bytes, label: str) -> list[str]:
    """Every message of a text section, control characters removed."""
    if len(data) < 4:
        raise UserError(f"{label} is truncated ({len(data)} bytes)")
    lengths_at, bits_at = struct.unpack_from("<HH", data)
    if not 4 <= lengths_at <= bits_at <= len(data):
        raise UserError(f"{label} is corrupt (its table offsets lie outside it)")
    messages = []
    units = 0
    for length in data[lengths_at:bits_at]:
        if length & LENGTH_IN_BLOCKS:
            length = (length & ~LENGTH_IN_BLOCKS) << 3
        start = bits_at * 8 + units * 2
        units += length
        raw = _decode_message(data, start, bits_at * 8 + units * 2, label)
        messages.append(_clean(raw.decode("latin-1")))
    return messages


def _huffman_children() -> tuple[list[int], list[int], list[int]]:
    """The tree as arrays: 0-child, 1-child (both 0 at a leaf) and leaf byte, root at 0."""
    zero: list[int] = []
    one: list[int] = []
    value: list[int] = []
    open_branches: list[int] = []  # branches still waiting for their 1-subtree
    for node, symbol in enumerate(HUFFMAN_TREE):
        zero.append(0)
        one.append(0)
        value.append(0 if symbol == BRANCH else ord(symbol))
        if node:
            parent = open_branches[-1]
            if zero[parent]:
                one[open_branches.pop()] = node
            else:
                zero[parent] = node
        if symbol == BRANCH:
            open_branches.append(node)
    return zero, one, value


_ZERO, _ONE, _VALUE = _huffman_children()


def _decode_message(data: bytes, bit: int, end: int, label: str) -> bytes:
    """Huffman-decode from bit `bit` up to the NUL; it must end by bit `end` (its slot)."""
    out = bytearray()
    node = 0
    while True:
        if bit >= end or bit >> 3 >= len(data):
            raise UserError(f"{label} is corrupt (a message runs past its end)")
        node = _ONE[node] if data[bit >> 3] >> (7 - (bit & 7)) & 1 else _ZERO[node]
        bit += 1
        if not _ZERO[node]:
            if _VALUE[node] == END_OF_MESSAGE:
                return bytes(out)
            out.append(_VALUE[node])
            node = 0


def _clean(text: str) -> str:
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cc").strip()
