"""Flight of the Amazon Queen: clips paired with subtitles from a hand-built `queen.1c`, and
from the real Debian package (slow: downloads it)."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tiny_audio.audio import load_audio
from tiny_audio.data.games import GAMES, queen
from tiny_audio.errors import UserError


def words(*values: int) -> bytes:
    return struct.pack(f">{len(values)}h", *values)


def string(text: str, align: int = 2) -> bytes:
    raw = bytes([len(text)]) + text.encode("latin-1")
    return raw + b"\0" * (-len(raw) % align) if text else raw


HEADER = b"\0" * queen.ENTRY_HEADER

# One room holding Frank (object 1, a person) and a door (object 2); talking to Frank runs
# FRANK.DOG through description 2, and actor 1 plays him.
DESCRIPTIONS = ["A sturdy door.*03", "frank.DOG"]
NAMES = ["Frank", "door"]
JAS_TEXT = "\r\n".join(
    [
        *DESCRIPTIONS,
        *NAMES,
        "ROOM1",
        *(f"verb{i}" for i in range(queen.VERBS)),
        "It doesn't seem to open*03",
        *[""] * (queen.JOE_REPLIES - 1),
        "frank_anim",
        "FRANK-H",
        "frank.act",
    ]
)
JAS_DATA = HEADER + b"".join(
    [
        words(1, len(NAMES), 2, len(DESCRIPTIONS)),  # rooms, names, objects, descriptions
        words(
            1, 0, 0, 0, 0, 1, 0, -3
        ),  # object 1: name, x, y, description, exit, room, state, image
        words(2, 0, 0, 1, 0, 1, 0, 0),
        words(0, 2),  # room 1 holds objects 1..2
        words(0),  # room sound effect
        words(0, 0),  # no items, no graphics
        words(2, 0),  # room 1: 2 object zones, no walk areas
        words(*[0] * 8),  # object boxes
        words(0, 0),  # no walk-off points, no description cycling
        words(1, 8, 1, 0, 0, 0, 0, 0, 1, 0, 0),  # command 1: talk to object 1, with conditions
        words(0, 0, 0, 0) * 3,  # no area, object or item changes (one dummy row each)
        words(1, 1, -5, 1, 2),  # command 1 sets state 5 and says description 2: FRANK.DOG
        words(1, 0),  # entry object, no furniture
        words(1, 1, 1, 1),  # actors, actor animations, actor names, actor files
        words(1, 1, 1, 0, 0, 15, 0, 0, 0, 1, 0, 1),  # room 1, bob 1, name 1, ..., ink 15
    ]
)


def dialogue() -> bytes:
    joe = words(0, 0) + string("Hi there.*03", 4)  # id 0: Joe's opening line
    joe += words(0, 6) + string("Who are you?*FLWhere am I?", 4)
    person = words(0, 0) + string("0", 4)
    person += words(0, 6) + string("I'm Frank.*00*GDWelcome!", 4)
    person += words(0, 6) + string("A dead duplicate.", 4)
    again = string("Back again?") + string("Yes.*02")
    levels = 1
    joe_at = queen.TREE_START + levels * queen.TREE_LEVEL_BYTES
    person_at = joe_at + len(joe)
    again_at = person_at + len(person)
    head = words(levels, 1, 2, 2, 3, *[0] * 6, person_at, 0, again_at)
    tree = head.ljust(queen.TREE_START, b"\0") + b"\0" * queen.TREE_LEVEL_BYTES
    return HEADER + tree + joe + person + again


def record(obj: int, *, animations: int = 0, execute: int = 0, ink: int = 0) -> bytes:
    fields = [0] * (queen.CUTAWAY_RECORD.size // 2)
    fields[0], fields[4], fields[5], fields[10] = obj, animations, execute, ink
    return words(*fields) + words(0)  # no people to turn on


def cutaway() -> bytes:
    records = (
        record(0)  # Joe speaks
        + record(2, animations=1, execute=1)  # the door animates: one frame, then the end mark
        + words(1, *[0] * (queen.CUTAWAY_FRAME_BYTES // 2), queen.CUTAWAY_FRAMES_END)
        + record(1)  # Frank speaks
        + record(-2, ink=queen.JOE_INK)  # text in Joe's colour, one clip
    )
    texts = b"".join(
        string(t) for t in ("*FR", "Look out!*03Duck!", "*", "Too late.", "Ouch*05ouch.")
    )
    banks = words(0) + string("") + words(0)  # no banks, no dialogue afterwards
    states_at = 12 + len(records)
    texts_at = states_at + 2
    body = words(0, 4, 0, states_at, texts_at, texts_at + len(texts))
    return HEADER + body + records + words(0) + texts + banks


def container(entries: dict[str, bytes]) -> bytes:
    table = b""
    data = b""
    start = queen.COUNT_AT + 2 + len(entries) * queen.RECORD.size
    for name, content in sorted(entries.items()):
        table += queen.RECORD.pack(name.encode(), 1, start + len(data), len(content))
        data += content
    head = queen.MAGIC + b"CEM10\0" + b"\0\0" + bytes([queen.MP3])
    return head + struct.pack(">H", len(entries)) + table + data


def read_entries(data: bytes) -> list[tuple[bytes, bytes]]:
    (count,) = struct.unpack_from(">H", data, queen.COUNT_AT)
    found = []
    for index in range(count):
        at = queen.COUNT_AT + 2 + index * queen.RECORD.size
        name, _, offset, size = queen.RECORD.unpack_from(data, at)
        found.append((name.rstrip(b"\0"), data[offset : offset + size]))
    return found


@pytest.fixture(scope="module")
def mp3() -> bytes:
    t = np.arange(4410) / 11025
    buffer = io.BytesIO()
    sf.write(buffer, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 11025, format="MP3")
    return buffer.getvalue()


EXPECTED = {  # clip -> (subtitle, speaker, scene)
    "02SSSSJ1": ("Hi there.", "Joe", "FRANK.DOG"),
    "020006J1": ("Who are you?", "Joe", "FRANK.DOG"),
    "020006J2": ("Where am I?", "Joe", "FRANK.DOG"),
    "020006P1": ("I'm Frank.", "Frank", "FRANK.DOG"),
    "020006P3": ("Welcome!", "Frank", "FRANK.DOG"),  # segment 2 is Joe grabbing: counted, silent
    "02XXXXP1": ("Back again?", "Frank", "FRANK.DOG"),
    "02XXXXJ1": ("Yes.", "Joe", "FRANK.DOG"),
    "C1A__011": ("Look out!", "Joe", "C1A.CUT"),
    "C1A__012": ("Duck!", "Joe", "C1A.CUT"),
    "C1A__031": ("Too late.", "Frank", "C1A.CUT"),
    "C1A__041": ("Ouch*05ouch.", "Joe", "C1A.CUT"),
    "JOE00011": ("It doesn't seem to open", "Joe", "QUEEN2.JAS"),
    "JOE00411": ("A sturdy door.", "Joe", "QUEEN2.JAS"),
}
UNSPOKEN = ("02SSSSSS", "C1A__021", "STRAY000")  # a sound effect and clips with no subtitle


@pytest.fixture
def game(tmp_path: Path, mp3: bytes) -> Path:
    entries = {f"{clip}.SB": mp3 for clip in (*EXPECTED, *UNSPOKEN)}
    entries |= {
        "QUEEN.JAS": JAS_DATA,
        "QUEEN2.JAS": JAS_TEXT.encode(),
        "FRANK.DOG": dialogue(),
        "C1A.CUT": cutaway(),
    }
    path = tmp_path / queen.DATA_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(container(entries))
    return tmp_path


def test_clips_are_paired_with_their_segment_speaker_and_scene(game: Path, mp3: bytes) -> None:
    found = list(queen.lines(game))
    assert {line.id: (line.text, line.speaker, line.scene) for line in found} == {
        f"queen-{clip}.SB": value for clip, value in EXPECTED.items()
    }
    assert all(line.audio == mp3 for line in found)
    assert len(load_audio(found[0].audio)) > 0
    assert queen.coverage(game) == (len(EXPECTED) + len(UNSPOKEN), len(EXPECTED), 0)


def test_a_subtitle_without_its_clip_is_counted(game: Path) -> None:
    path = game / queen.DATA_FILE
    entries = {n.decode(): b for n, b in read_entries(path.read_bytes()) if n != b"JOE00011.SB"}
    path.write_bytes(container(entries))
    assert "queen-JOE00011.SB" not in {line.id for line in queen.lines(game)}
    assert queen.coverage(game)[2] == 1


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[: len(data) // 2], "truncated"),
        (lambda data: data[:20], "truncated"),
        (lambda data: b"", "not a Flight of the Amazon Queen data file"),
        (lambda data: b"RIFF" + data[4:], "not a Flight of the Amazon Queen data file"),
    ],
)
def test_a_damaged_container_is_one_clear_error(
    game: Path, damage: Callable[[bytes], bytes], message: str
) -> None:
    path = game / queen.DATA_FILE
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(UserError, match=message):
        list(queen.lines(game))


def test_a_corrupt_dialogue_names_the_entry(game: Path) -> None:
    path = game / queen.DATA_FILE
    entries = {n.decode(): b for n, b in read_entries(path.read_bytes())}
    entries["FRANK.DOG"] = entries["FRANK.DOG"][:40]
    path.write_bytes(container(entries))
    with pytest.raises(UserError, match=r"FRANK\.DOG is corrupt"):
        list(queen.lines(game))


def test_a_missing_package_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unpack the flight-of-the-amazon-queen"):
        list(queen.lines(tmp_path))


@pytest.mark.slow
def test_the_debian_package_pairs_its_speech(tmp_path: Path) -> None:
    if shutil.which("apt-get") is None:
        pytest.skip("apt-get is not available")
    package = GAMES["queen"].package
    subprocess.run(["apt-get", "download", package], cwd=tmp_path, check=True)
    (deb,) = tmp_path.glob(f"{package}_*.deb")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path / "root")], check=True)
    found = {line.id: line for line in queen.lines(tmp_path / "root")}
    assert len(found) >= 6000
    for clip, text, speaker in [  # checked by listening (Whisper agrees word for word)
        ("0700A6J1", "Do you sell comic books?", "Joe"),
        ("510007P3", "We gotta find a way off the plane.", "Sparky"),
        ("C75B_271", "You've crashed the plane!!", "Faye"),
    ]:
        line = found[f"queen-{clip}.SB"]
        assert (line.text, line.speaker) == (text, speaker)
    assert len(load_audio(found["queen-0700A6J1.SB"].audio)) > 0
