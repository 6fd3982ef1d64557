"""Flight of the Amazon Queen (Debian package `flight-of-the-amazon-queen`): speech and subtitles.

The whole game is one resource container, `queen.1c` (`DATA_FILE`). It opens with "QTBL", a
6-byte version ("CEM10": CD, English, 1.0), two unused bytes, a compression byte (1: the speech
is MP3) and, at byte 13, a big-endian u16 entry count. A 21-byte record per entry follows: the
NUL-padded 12-byte name, a bundle byte, then the u32 offset and u32 size of its bytes. Every
`*.SB` entry is one speech clip, a bare MP3 stream (MPEG 2.5, 11,025 Hz mono).

A clip has no text of its own: its 8-character name says which sentence it speaks. The game
cuts a sentence into segments at each `*` followed by a two-character command (a facing, a
gesture, an animation number, or `XY` plus a frame and a position) and plays one clip per
segment, numbered from 1 in hex, even for empty segments. The names are, per source:

* dialogues (`*.DOG`): the dialogue's talk key (2 digits), the sentence id (4 hex digits, or
  `SSSS` for Joe's opening line and `XXXX` for the pair said on a later visit), then `J` for
  Joe or `P` for the other person, then the segment: `020006P2` is the second segment of
  sentence 6 of the person in dialogue 2.
* cutaways (`*.CUT`, scripted scenes): the file's base name padded with `_` to 5 characters,
  the object record (2 digits) and the segment: `C14B_021`.
* Joe on his own (`JOE` + 4 digits + segment): numbers up to 40 are his stock replies, the
  rest object description number - 40; both live in the text file `QUEEN2.JAS`.

All integers in the game's data are big-endian, and `*.DOG`, `*.CUT` and `QUEEN.JAS` start
with a 20-byte header that the engine skips. A string there is a length byte and that many
bytes, then padding up to a 2-byte boundary (4 in a dialogue's sentence lists). A dialogue
holds, after the header: a level count, a unique key, the talk key, the sizes of Joe's and the
person's sentence lists, 12 bytes of game-state tests, and the offsets of the person's list,
of a cutaway name and of the later-visit pair; its decision tree (16 bytes per node, 6 nodes a
level) starts at byte 32, and Joe's list follows the tree. A list entry is 2 unused bytes, a
signed sentence id and the string; Joe's entry with id 0 is his opening line. A cutaway holds
a panel mode, a record count (negative: cannot be skipped), a flag word and the offsets of its
game states, of its sentences (one opening string, then one per record) and of its bank
names, which are followed by a dialogue to start afterwards and the object it talks to.
Records are 17 words (object, ..., animation list, execute flag, ..., copied-from object, ...)
and a person list; an animated record also carries frames of 9 words after a header word,
ended by -2. Only records of people speak their sentence in segments; records of object -2 and
-3 speak the whole sentence as one clip, in the text colour of the record's 11th word.

Speakers come from `QUEEN.JAS`: object 0 (or -1) of a cutaway is Joe; any other object is a
person whose actor is found by room and by the person's rank among the room's people (images
-3 and -4). The actor's name is in `QUEEN2.JAS` after the descriptions, object names, room
names, 12 verbs, 40 replies and the actor animations. A dialogue's person is the object whose
command or cutaway starts it. Some rooms have several actors for one person slot, chosen at
run time by game state: the one named like the object wins, else the one of the earliest state.
A cutaway's bare text in colour 14 is Joe's, in another colour that of the one actor of the
record's room with that text colour.

The sound effects (`*SSSS.SB` with no segment) and a few stray recordings have no text and
are left out; so are subtitles without a clip (lines the CD version does not voice).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from tiny_audio.data.games import Line
from tiny_audio.errors import UserError

DATA_FILE = Path("usr/share/scummvm/flight-of-the-amazon-queen/queen.1c")

MAGIC = b"QTBL"
COMPRESSION_AT = 12
MP3 = 1
COUNT_AT = 13
RECORD = struct.Struct(">12sBII")
ENTRY_HEADER = 20  # bytes in front of every .DOG, .CUT and QUEEN.JAS entry
CLIP_SUFFIX = ".SB"
CUTAWAY_SUFFIX = ".CUT"
DIALOGUE_SUFFIX = ".DOG"
JAS_DATA = "QUEEN.JAS"
JAS_TEXT = "QUEEN2.JAS"

JOE = "Joe"
JOE_INK = 14  # the text colour of Joe's lines
JOE_REPLIES = 40
VERBS = 12
PERSON_IMAGES = (-3, -4)
# levels, unique key, talk key, Joe's and the person's list sizes, game-state tests, offsets
# of the person's list, of the cutaway name and of the later-visit pair
DIALOGUE_HEADER = struct.Struct(">5h12x3H")
TREE_START = 32
TREE_LEVEL_BYTES = 96
DIALOGUE_LIST_ALIGN = 4
NO_SENTENCE = "0"  # the engine's marker for "nothing to say"
SKIPPED_SENTENCES = ("", "*")  # a cutaway record's sentence that is not spoken
CREDITS_MARK = "#"
CUTAWAY_NAME_WIDTH = 5
# panel mode, record count, flags, offsets of the game states, the sentences and the bank names
CUTAWAY_HEADER = struct.Struct(">HhhHHH")
CUTAWAY_RECORD = struct.Struct(">17h")  # the words of `_CutawayRecord`
CUTAWAY_FRAME_BYTES = 18
CUTAWAY_FRAMES_END = -2
ROOM_FADE = -1  # a cutaway's "fade in" record is played by Joe
TEXT_SPEAK = (-2, -3)  # records whose sentence is spoken as a single clip
TEXT_ONLY = -4
SILENT_COMMANDS = ("GD", "GM")  # Joe grabs something: the segment is counted but not played
XY_ARGUMENTS = len("00(237,112)")
# Markup the game's font turns into symbols: "^_" is a trademark sign, "@" a decoration.
MARKUP = re.compile(r"\^_|@")
# Actor names that are variants of one character: cutscene (X2_JOE), talking head (FAYE-H),
# ending (FAYE-E) or costume copies, and the Princess, who is Azura.
ACTOR_VARIANT = re.compile(r"^X\d+_|-[A-Z]$|_(STAND|SHOWER)$")
ACTOR_ALIASES = {
    "ANDSON": "ANDERSON",
    "PRINCESS1": "AZURA",
    "PRINCESS2": "AZURA",
    "APE1": "APE",
    "APE2": "APE",
}


@dataclass(frozen=True)
class _Sentence:
    """A sentence as the engine plays it: its clips are `prefix` + segment number + ".SB"."""

    prefix: str
    text: str
    speaker: str
    scene: str
    whole: bool = False  # played as one clip, `*` and all


def lines(root: Path) -> Iterator[Line]:
    """Every speech clip that has a subtitle, paired with it, in the container's order."""
    entries, texts = _read(Path(root) / DATA_FILE)
    for name, audio in entries.items():
        if name.endswith(CLIP_SUFFIX) and name in texts:
            text, sentence = texts[name]
            yield Line(f"queen-{name}", audio, text, sentence.speaker, sentence.scene)


def coverage(root: Path) -> tuple[int, int, int]:
    """(clips, clips with a subtitle, subtitle segments without a clip) in the container."""
    entries, texts = _read(Path(root) / DATA_FILE)
    clips = {name for name in entries if name.endswith(CLIP_SUFFIX)}
    return len(clips), len(clips & texts.keys()), len(texts.keys() - clips)


def _read(path: Path) -> tuple[dict[str, bytes], dict[str, tuple[str, _Sentence]]]:
    """The container's entries, and clip name -> (subtitle, sentence) for every segment."""
    entries = _read_container(path)
    texts: dict[str, tuple[str, _Sentence]] = {}
    for sentence in _sentences(entries, path):
        for clip, text in _clips(sentence):
            texts.setdefault(clip, (text, sentence))
    return entries, texts


def _read_container(path: Path) -> dict[str, bytes]:
    """Entry name -> bytes, checking the header and that every entry lies inside the file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(
            f"{path}: no such file; unpack the flight-of-the-amazon-queen .deb there first"
        ) from None
    except OSError as error:
        raise UserError(f"{path}: cannot read the game data ({error.strerror})") from None
    if not data.startswith(MAGIC) or len(data) < COUNT_AT + 2:
        raise UserError(f"{path}: not a Flight of the Amazon Queen data file")
    if data[COMPRESSION_AT] != MP3:
        raise UserError(f"{path}: speech compression {data[COMPRESSION_AT]}, expected MP3")
    (count,) = struct.unpack_from(">H", data, COUNT_AT)
    table = COUNT_AT + 2
    if table + count * RECORD.size > len(data):
        raise UserError(f"{path}: truncated inside the table of {count} entries")
    entries = {}
    for index in range(count):
        raw_name, _bundle, offset, size = RECORD.unpack_from(data, table + index * RECORD.size)
        name = raw_name.split(b"\0", 1)[0].decode("latin-1")
        if offset + size > len(data):
            raise UserError(f"{path}: truncated: entry {name} ends past byte {len(data)}")
        entries[name] = data[offset : offset + size]
    missing = [name for name in (JAS_DATA, JAS_TEXT) if name not in entries]
    if missing:
        raise UserError(f"{path}: the container has no {' or '.join(missing)}")
    return entries


def _sentences(entries: dict[str, bytes], path: Path) -> Iterator[_Sentence]:
    """Every sentence the game can speak, with where it comes from and who says it."""
    name = JAS_DATA
    try:
        jas = _Jas(entries[JAS_DATA], entries[JAS_TEXT])
        yield from jas.joe_sentences()
        people = dict(jas.dialogue_objects)  # dialogue -> the object Joe talks to
        for name in sorted(entries):
            if name.endswith(CUTAWAY_SUFFIX):
                cutaway = entries[name][ENTRY_HEADER:]
                yield from _cutaway_sentences(name, cutaway, jas)
                talk = _cutaway_talk(cutaway)
                if talk:
                    people.setdefault(*talk)
        for name in sorted(entries):
            if name.endswith(DIALOGUE_SUFFIX):
                person = people.get(name)
                speaker = jas.speaker(person) if person else ""
                yield from _dialogue_sentences(name, entries[name][ENTRY_HEADER:], speaker)
    except (struct.error, IndexError, ValueError) as error:
        raise UserError(f"{path}: entry {name} is corrupt ({error})") from None


def _clips(sentence: _Sentence) -> Iterator[tuple[str, str]]:
    """(clip entry name, subtitle) for each spoken, non-empty segment of a sentence."""
    prefix = sentence.prefix.replace(" ", "0").upper()
    if sentence.whole:
        segments: Iterator[tuple[int, str]] = iter([(1, sentence.text)])
    else:
        segments = _segments(sentence.text)
    for number, segment in segments:
        text = MARKUP.sub("", segment).strip()
        if text:
            yield f"{prefix}{number:X}{CLIP_SUFFIX}", text


def _segments(sentence: str) -> Iterator[tuple[int, str]]:
    """(1-based clip number, text) per played segment, as the engine's Talk::speak cuts it."""
    number = start = i = 0
    while i < len(sentence):
        if sentence[i] != "*":
            i += 1
            continue
        command = sentence[i + 1 : i + 3]
        number += 1
        if command not in SILENT_COMMANDS:
            yield number, sentence[start:i]
        i += 3 + (XY_ARGUMENTS if command == "XY" else 0)
        start = i
    if start < len(sentence):
        yield number + 1, sentence[start:]


def _dialogue_sentences(name: str, data: bytes, speaker: str) -> Iterator[_Sentence]:
    header = DIALOGUE_HEADER.unpack_from(data)
    levels, _unique, key, joe_count, person_count, person_at, _cutaway_at, again_at = header
    joe_at = TREE_START + abs(levels) * TREE_LEVEL_BYTES
    # The engine looks a sentence up by id and takes the first match, so a repeated id is dead.
    for who, at, count in (("J", joe_at, joe_count), ("P", person_at, person_count)):
        seen = set()
        for _ in range(count):
            (sentence_id,) = struct.unpack_from(">h", data, at + 2)
            text, at = _string(data, at + 4, DIALOGUE_LIST_ALIGN)
            if sentence_id in seen or text == NO_SENTENCE:
                continue
            seen.add(sentence_id)
            if sentence_id == 0 and who == "P":
                continue  # the person's list opens with a placeholder never looked up
            head = "SSSS" if sentence_id == 0 else f"{sentence_id:4x}"
            yield _Sentence(f"{key:2d}{head}{who}", text, JOE if who == "J" else speaker, name)
    person_again, at = _string(data, again_at)
    joe_again, _ = _string(data, at)
    for who, text in (("P", person_again), ("J", joe_again)):
        if text != NO_SENTENCE:
            yield _Sentence(f"{key:2d}XXXX{who}", text, JOE if who == "J" else speaker, name)


def _cutaway_sentences(name: str, data: bytes, jas: _Jas) -> Iterator[_Sentence]:
    _panel, count, _flags, _states_at, text_at, _banks_at = CUTAWAY_HEADER.unpack_from(data)
    base = name.removesuffix(CUTAWAY_SUFFIX).ljust(CUTAWAY_NAME_WIDTH, "_")
    _, text_at = _string(data, text_at)  # the opening string only sets Joe's facing
    at = CUTAWAY_HEADER.size
    for index in range(1, abs(count) + 1):
        record = _CutawayRecord._make(CUTAWAY_RECORD.unpack_from(data, at))
        at += CUTAWAY_RECORD.size
        (people,) = struct.unpack_from(">h", data, at)
        at += 2 + 2 * people
        text, text_at = _string(data, text_at)
        obj = 0 if record.obj == ROOM_FADE else record.obj
        person = False
        if obj not in (*TEXT_SPEAK, TEXT_ONLY) and record.copied_from <= 0:
            # The engine's Cutaway::getObjectType: a person speaks, anything else may animate.
            person = not record.animations and (obj == 0 or (obj > 0 and jas.is_person(obj)))
            if not person and record.execute:
                at = _skip_frames(data, at)
        if text in SKIPPED_SENTENCES or text.startswith(CREDITS_MARK):
            continue
        prefix = f"{base}{index:02d}"
        if obj in TEXT_SPEAK:
            speaker = jas.speaker_by_ink(record.room, record.ink)
            yield _Sentence(prefix, text, speaker, name, whole=True)
        elif person:
            yield _Sentence(prefix, text, jas.speaker(obj) if obj else JOE, name)


class _CutawayRecord(NamedTuple):
    obj: int  # 0 Joe, -1 Joe after a fade, -2/-3/-4 bare text, else an object
    move_x: int
    move_y: int
    bank: int
    animations: int
    execute: int
    limit_x1: int
    limit_y1: int
    limit_x2: int
    limit_y2: int
    ink: int  # the text colour of bare text (the special move otherwise)
    animation_type: int
    copied_from: int
    start_x: int
    start_y: int
    room: int
    scale: int


def _skip_frames(data: bytes, at: int) -> int:
    while True:
        (header,) = struct.unpack_from(">h", data, at)
        at += 2
        if header == CUTAWAY_FRAMES_END:
            return at
        at += CUTAWAY_FRAME_BYTES


def _cutaway_talk(data: bytes) -> tuple[str, int] | None:
    """The dialogue a cutaway starts when it ends, and the object it talks to."""
    *_, banks_at = CUTAWAY_HEADER.unpack_from(data)
    (banks,) = struct.unpack_from(">H", data, banks_at)
    at = banks_at + 2
    for _ in range(banks):
        _, at = _string(data, at)
    dialogue, at = _string(data, at)
    (talk_to,) = struct.unpack_from(">h", data, at)
    return (dialogue.upper(), talk_to) if dialogue and talk_to > 0 else None


def _string(data: bytes, at: int, align: int = 2) -> tuple[str, int]:
    """The length-prefixed string at `at` and the offset after its padding."""
    length = data[at]
    end = at + 1 + length
    if end > len(data):
        raise ValueError(f"string at byte {at} runs past the end")
    text = data[at + 1 : end].decode("latin-1")
    return text, ((end + align - 1) & ~(align - 1) if length else at + 1)


@dataclass(frozen=True)
class _Object:
    name: int
    room: int
    image: int


@dataclass(frozen=True)
class _Actor:
    room: int
    bob: int
    character: str
    state_value: int
    ink: int


class _Jas:
    """What the speakers and Joe's own lines need from QUEEN.JAS and QUEEN2.JAS."""

    def __init__(self, data: bytes, text: bytes) -> None:
        reader = _Words(data, ENTRY_HEADER)
        rooms, names, objects, descriptions = reader.words(4)
        self.objects = [_Object(0, 0, 0)]
        for _ in range(objects):
            name, _x, _y, _description, _exit, room, _state, image = reader.words(8)
            self.objects.append(_Object(name, room, image))
        self.room_first = [0, *reader.words(rooms + 1)]  # objects of room r: first[r]+1..first[r+1]
        reader.skip(rooms)  # each room's sound effect
        reader.table(5)  # inventory items
        reader.table(5)  # graphics
        for _ in range(rooms):  # walk areas, then a box per object
            _, areas = reader.words(2)
            reader.skip(8 * areas)
        reader.skip(4 * objects)
        reader.table(3)  # walk-off points
        reader.table(4)  # description cycling
        commands = reader.table(10, at_least_one=True)
        reader.table(3, at_least_one=True)  # areas switched by commands
        reader.table(3, at_least_one=True)  # objects switched by commands
        reader.table(3, at_least_one=True)  # items switched by commands
        states = reader.table(4, at_least_one=True)
        reader.skip(1)  # the entry object
        reader.table(2)  # furniture
        actor_count, animations, actor_names, _files = reader.words(4)
        actors = [reader.words(12) for _ in range(actor_count)]

        strings = text.decode("latin-1").replace("\r", "").split("\n")
        self.descriptions = strings[:descriptions]
        self.names = strings[descriptions : descriptions + names]
        replies_at = descriptions + names + rooms + VERBS
        self.replies = strings[replies_at : replies_at + JOE_REPLIES]
        actor_names_at = replies_at + JOE_REPLIES + animations
        names_of_actors = strings[actor_names_at : actor_names_at + actor_names]
        if len(names_of_actors) < actor_names:
            raise ValueError(f"{JAS_TEXT} has {len(strings)} lines, too few")
        self.actors = [
            _Actor(room, bob, _character(names_of_actors[name - 1]), value, ink)
            for room, bob, name, _slot, value, ink, *_ in actors
        ]
        # A command whose game-state row points at a description "X.DOG" starts that dialogue
        # with the command's first object.
        self.dialogue_objects: dict[str, int] = {}
        for command, _slot, _value, description in states:
            if 0 < description <= len(self.descriptions) and 0 < command <= len(commands):
                dialogue = self.descriptions[description - 1].upper()
                _verb, obj, *_ = commands[command - 1]
                if dialogue.endswith(DIALOGUE_SUFFIX) and obj > 0:
                    self.dialogue_objects.setdefault(dialogue, obj)

    def joe_sentences(self) -> Iterator[_Sentence]:
        for number, text in enumerate([*self.replies, *self.descriptions], start=1):
            if not text.upper().endswith((CUTAWAY_SUFFIX, DIALOGUE_SUFFIX)):  # plays that scene
                yield _Sentence(f"JOE{number:04d}", text, JOE, JAS_TEXT)

    def is_person(self, obj: int) -> bool:
        return self.objects[obj].image in PERSON_IMAGES

    def speaker(self, obj: int) -> str:
        """The character who speaks for person object `obj` ("" if no actor plays it)."""
        target = self.objects[obj]
        first = self.room_first[target.room] + 1
        rank = sum(o.image in PERSON_IMAGES for o in self.objects[first : obj + 1])
        cast = sorted(
            (actor.state_value, actor.character)
            for actor in self.actors
            if actor.room == target.room and actor.bob == rank
        )
        label = self.names[abs(target.name) - 1] if target.name else ""
        words = set(re.findall(r"[a-z]+", label.lower()))
        named = [who for _, who in cast if who.lower() in words]
        if named:
            return named[0]
        return cast[0][1] if cast else ""

    def speaker_by_ink(self, room: int, ink: int) -> str:
        """Who says a cutaway's bare text: the one character of the room with that text colour."""
        if ink == JOE_INK:
            return JOE
        inked = {
            actor.character for actor in self.actors if actor.room == room and actor.ink == ink
        }
        return inked.pop() if len(inked) == 1 else ""


def _character(actor: str) -> str:
    """A stable character name for an actor name: "X2_JOE" and "JOE-H" are both "Joe"."""
    base = ACTOR_VARIANT.sub("", actor)
    return ACTOR_ALIASES.get(base, base).title()


class _Words:
    """Reads big-endian signed 16-bit words front to back."""

    def __init__(self, data: bytes, at: int) -> None:
        self.data = data
        self.at = at

    def words(self, count: int) -> tuple[int, ...]:
        values = struct.unpack_from(f">{count}h", self.data, self.at)
        self.at += 2 * count
        return values

    def skip(self, count: int) -> None:
        self.at += 2 * count

    def table(self, width: int, at_least_one: bool = False) -> list[tuple[int, ...]]:
        """A counted table of `width`-word rows. Some tables store one dummy row when empty."""
        (count,) = self.words(1)
        rows = [self.words(width) for _ in range(count)]
        if at_least_one and not count:
            self.words(width)
        return rows
