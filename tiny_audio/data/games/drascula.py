"""Drascula: The Vampire Strikes Back (Debian package `drascula`): English speech and subtitles.

The English data sits in one folder (`DATA_DIR`). Each spoken line is a clip named
`<prefix><number>.ALS`: unsigned 8-bit mono PCM at 11,025 Hz with no real header. A few clips
still carry pieces of the WAV files they were cut from: a RIFF header whose "RIFF" tag is gone
(4-byte size, "WAVE", then chunks up to "data") at the start, sometimes two in a row, and
"fact"/"LIST" chunks within the last 64 bytes. The header pieces are skipped and the last 64
bytes dropped.

The subtitles are not next to the clips but in ScummVM's engine data file `drascula.dat`
(version 6, all integers big-endian): the magic "DRASCULA", a version byte, thirteen tables of
fixed-size records (a u16 count, then the records) that only the engine needs, a u16 language
count, and then fifteen string arrays. Each array is a u16 string count followed by one block
per language (English first): a u16 block length, two padding bytes, and per string a u16
stride (counted from the stride itself to the next one) then the NUL-terminated string padded
to 4 bytes. Strings are in DOS code page 850 (the English ones hold a single non-ASCII "É").

The engine picks the array from the clip's prefix and the string from its number: `42.ALS`
speaks `text[42]` (John Hacker), `D3.ALS` speaks `textd[3]` (Drascula), `VB7.ALS` speaks
`textvb[7]` (Von Braun), and so on. `textd` also holds other people's lines: John talking to
the blind man (56-67), the blind man (68-78), one bartender line (82) and the trunk (83).
Clips without a string are left out: those whose string is empty (unused takes, several in
Spanish; 366 is a second take of 367), `B61`/`B62` (past the end of `textb`; takes of
`VB61`/`VB62`) and the sound effects (`S*.ALS`, `F*.ALS`).
"""

from __future__ import annotations

import re
import struct
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tiny_audio.data.games import Line
from tiny_audio.errors import UserError

DATA_DIR = Path("usr/share/scummvm/drascula/en")
TEXT_FILE = "drascula.dat"
SAMPLE_RATE = 11025
TRAILER_BYTES = 64

MAGIC = b"DRASCULA"
VERSION = 6
# Record sizes of the engine-only tables before the texts, in file order: character map, item
# locations, verb-bar polygon, verb-bar x, menu positions, frame x, candle positions, pianist x,
# drunk x, room pre-updates, room updates, room talk actions, talk sequences.
TABLE_RECORD_SIZES = (4, 4, 4, 2, 4, 2, 4, 2, 2, 20, 20, 10, 8)
ARRAY_COUNT = 15
ENGLISH = 0

# The spoken string arrays, in file order (the rest are menus, captions and lip-sync codes):
# array name, clip prefix and the character who speaks it.
ARRAYS = (
    ("text", "", "John Hacker"),
    ("textd", "D", "Drascula"),
    ("textb", "B", "Drunk"),
    ("textbj", "BJ", "B.J."),
    ("texte", "E", "Desiderio"),
    ("texti", "I", "Igor"),
    ("textl", "L", "Werewolf"),
    ("textp", "P", "Pianist"),
    ("textt", "T", "Bartender"),
    ("textvb", "VB", "Von Braun"),
)
# Lines of `textd` that someone other than Drascula speaks (engines/drascula/talk.cpp:
# talk_hacker, talk_blind, talk_bartender's line 82, talk_trunk). The engine captions the
# trunk's D83 with the empty `text[83]`; its own string, "BLA, BLA, BLA.", is what it says.
TEXTD_SPEAKERS = (
    (range(56, 68), "John Hacker"),
    (range(68, 79), "Blind Man"),
    (range(82, 83), "Bartender"),
    (range(83, 84), "Trunk"),
)
CLIP_NAME = re.compile(r"([A-Z]*)(\d+)\.ALS", re.IGNORECASE)


def lines(root: Path) -> Iterator[Line]:
    """Every English clip that has a subtitle, paired with it, in array then number order."""
    folder = Path(root) / DATA_DIR
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder; unpack the drascula .deb into {root} first")
    texts = _read_texts(folder / TEXT_FILE)
    by_prefix = {prefix: (name, speaker) for name, prefix, speaker in ARRAYS}
    clips = []
    for path in folder.iterdir():
        match = CLIP_NAME.fullmatch(path.name)
        if match and match.group(1).upper() in by_prefix:
            clips.append((match.group(1).upper(), int(match.group(2)), path))
    if not clips:
        raise UserError(f"{folder}: no speech clips (*.ALS) found")
    order = {prefix: index for index, (_, prefix, _) in enumerate(ARRAYS)}
    for prefix, number, path in sorted(clips, key=lambda clip: (order[clip[0]], clip[1])):
        array, speaker = by_prefix[prefix]
        strings = texts[array]
        text = strings[number] if number < len(strings) else ""
        if not text:
            continue
        if array == "textd":
            speaker = next((who for span, who in TEXTD_SPEAKERS if number in span), speaker)
        yield Line(
            id=f"drascula-{path.stem}",
            audio=(_read_clip(path), SAMPLE_RATE),
            text=text,
            speaker=speaker,
            scene=array,
        )


def _read_texts(path: Path) -> dict[str, list[str]]:
    """The English strings of each spoken array in `drascula.dat`."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UserError(f"{path}: cannot read the subtitle file ({error.strerror})") from None
    reader = _Reader(data, path)
    if reader.take(len(MAGIC)) != MAGIC:
        raise UserError(f"{path}: not a Drascula engine data file")
    version = reader.take(1)[0]
    if version != VERSION:
        raise UserError(f"{path}: data file version {version}, expected {VERSION}")
    for record_size in TABLE_RECORD_SIZES:
        reader.take(reader.u16() * record_size)
    languages = reader.u16()
    if languages <= ENGLISH:
        raise UserError(f"{path}: the data file holds no languages")
    texts = {}
    for index in range(ARRAY_COUNT):  # read past the unspoken arrays too, to catch truncation
        count = reader.u16()
        blocks = [reader.take(reader.u16()) for _ in range(languages)]
        if index < len(ARRAYS):
            name = ARRAYS[index][0]
            texts[name] = _split_strings(blocks[ENGLISH], count, f"{path}: array {name}")
    return texts


def _split_strings(block: bytes, count: int, where: str) -> list[str]:
    strings: list[str] = []
    pos = 2  # the block opens with two padding bytes
    for _ in range(count):
        if pos + 2 > len(block):
            raise UserError(f"{where}: block ends after {len(strings)} of {count} strings")
        (stride,) = struct.unpack_from(">H", block, pos)
        raw = block[pos + 2 : pos + stride]
        end = raw.find(b"\0")
        if pos + stride > len(block) or end < 0:
            raise UserError(f"{where}: string {len(strings)} is corrupt")
        text = raw[:end].decode("cp850")
        strings.append("".join(c for c in text if unicodedata.category(c) != "Cc"))
        pos += stride
    return strings


def _read_clip(path: Path) -> np.ndarray:
    """The clip's samples, without leftover WAV headers at the start or the trailer."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise UserError(f"{path}: cannot read the clip ({error.strerror})") from None
    start = _skip_wave_headers(raw, path)
    end = len(raw) - TRAILER_BYTES
    if end <= start:
        raise UserError(f"{path}: clip is truncated ({len(raw)} bytes)")
    return np.frombuffer(raw, dtype=np.uint8, count=end - start, offset=start).copy()


def _skip_wave_headers(raw: bytes, path: Path) -> int:
    """Where the samples begin, past any RIFF headers (tag present or lost) at the start."""
    pos = 0
    while True:
        if raw[pos : pos + 4] == b"RIFF" and raw[pos + 8 : pos + 12] == b"WAVE":
            pos += 12
        elif raw[pos + 4 : pos + 8] == b"WAVE":
            pos += 8
        else:
            return pos
        while True:  # walk the chunks up to and past the "data" chunk's header
            if pos + 8 > len(raw):
                raise UserError(f"{path}: clip has a WAV header with no data chunk")
            chunk = raw[pos : pos + 4]
            (size,) = struct.unpack_from("<I", raw, pos + 4)
            pos += 8
            if chunk == b"data":
                break
            pos += size + size % 2


class _Reader:
    """Reads `drascula.dat` front to back; running out of bytes is a clear error."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data = data
        self.path = path
        self.pos = 0

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise UserError(f"{self.path}: truncated at byte {len(self.data)}")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def u16(self) -> int:
        value: int = struct.unpack(">H", self.take(2))[0]
        return value
