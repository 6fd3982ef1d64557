"""Manifests: one JSON object per line, {"id", "audio", "text", "duration", "speaker"?, "source"?,
"spoken"?}. `spoken` is what the audio says where the written label differs ("9:45" is heard as
"nine forty-five"): synthetic corpora write it, character models train on it.

In the file an audio path is relative to the manifest's folder (so a corpus folder can move);
in memory it is absolute. Lines that are not valid entries are reported and skipped, so one
bad line never sinks a corpus.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tiny_audio.audio import AudioError, load_audio
from tiny_audio.errors import UserError

logger = logging.getLogger(__name__)

REQUIRED_FIELDS = ("id", "audio", "text", "duration")


@dataclass
class Utterance:
    id: str
    audio: Any  # whatever tiny_audio.audio.load_audio accepts; a path string in manifests
    text: str
    duration: float | None = None
    speaker: str | None = None
    source: str | None = None
    spoken: str | None = None  # the words as heard, where `text` writes them otherwise

    @property
    def heard(self) -> str:
        """What the audio says, as a character model must spell it."""
        return self.spoken or self.text


def content_key(utterance: Utterance) -> str:
    """A key for the clip's audio content, not its name: caches keyed by it (encoder outputs,
    peer scores) are never served for a corpus rebuilt at the same paths or an overwritten clip."""
    audio = utterance.audio
    if isinstance(audio, (bytes, bytearray, memoryview)):
        return hashlib.blake2b(audio, digest_size=16).hexdigest()
    if not isinstance(audio, (str, os.PathLike)):
        return f"{utterance.source}/{utterance.id}"
    try:
        stat = os.stat(audio)
    except OSError:
        return f"unreadable:{audio}"  # never indexed: the build reports the clip and skips it
    return _file_digest(os.fspath(audio), stat.st_size, stat.st_mtime_ns)


@functools.cache
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    """Hashed once per (path, size, mtime): a rewritten file changes its stat, so it is read
    again, while the collator's lookups on every step cost one stat."""
    try:
        return hashlib.blake2b(Path(path).read_bytes(), digest_size=16).hexdigest()
    except OSError:
        return f"unreadable:{path}"


def read_manifest(path: str | os.PathLike) -> list[Utterance]:
    return list(iter_manifest(path))


def iter_manifest(path: str | os.PathLike) -> Iterator[Utterance]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such manifest")
    with path.open("rb") as lines:  # decoded line by line: one bad byte costs one entry
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield _parse(json.loads(line.decode("utf-8")), path.parent)
            except (TypeError, ValueError) as error:  # JSON and UTF-8 errors are ValueErrors
                logger.warning("%s:%d: skipped bad entry (%s)", path, number, error)


def _parse(entry: Any, folder: Path) -> Utterance:
    if not isinstance(entry, dict):
        raise ValueError("not a JSON object")
    missing = [field for field in REQUIRED_FIELDS if field not in entry]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    if not isinstance(entry["text"], str) or not isinstance(entry["audio"], str):
        raise ValueError("'text' and 'audio' must be strings")
    duration = float(entry["duration"])
    return Utterance(
        id=str(entry["id"]),
        audio=str(folder / entry["audio"]),  # an absolute "audio" stays as it is
        text=entry["text"],
        duration=duration,
        speaker=entry.get("speaker"),
        source=entry.get("source"),
        spoken=entry.get("spoken"),
    )


def manifest_line(utterance: Utterance, folder: Path) -> str:
    """One JSON line with the audio path made relative to `folder` when it lies inside it."""
    entry = {key: value for key, value in asdict(utterance).items() if value is not None}
    audio = Path(utterance.audio)
    if audio.is_absolute() and audio.resolve().is_relative_to(folder.resolve()):
        entry["audio"] = audio.resolve().relative_to(folder.resolve()).as_posix()
    return json.dumps(entry, ensure_ascii=False) + "\n"


def clips_folder(manifest: Path) -> Path:
    """Where a command that writes MANIFEST puts the clips it makes: a folder beside it named
    after it (data/joined/train.jsonl -> data/joined/train/), created."""
    folder = manifest.parent / manifest.stem
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_manifest(path: str | os.PathLike, utterances: Iterable[Utterance]) -> Path:
    """Write atomically: readers never see a half-written manifest."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as out:
        out.writelines(manifest_line(utterance, path.parent) for utterance in utterances)
    temporary.replace(path)
    return path


def append_manifest(path: Path, utterance: Utterance) -> None:
    """Add one line; flushed and synced so a crash leaves only whole, finished entries."""
    with path.open("a", encoding="utf-8") as out:
        out.write(manifest_line(utterance, path.parent))
        out.flush()
        os.fsync(out.fileno())


def decoded(utterances: Iterable[Utterance]) -> Iterator[tuple[Utterance, np.ndarray]]:
    """(utterance, 16 kHz waveform) pairs; utterances whose audio cannot be decoded are
    reported and skipped."""
    for utterance in utterances:
        try:
            yield utterance, load_audio(utterance.audio)
        except AudioError as error:
            logger.warning("skipped %s: %s", utterance.id, error)
