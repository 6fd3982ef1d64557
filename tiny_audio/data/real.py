"""`ta data real`: the little real human English speech with transcripts that Debian ships.

Each slice comes from one package, fetched with `apt-get download` and unpacked with
`dpkg-deb -x` (no root needed), and becomes SLICE.jsonl plus audio/SLICE/*.flac at 16 kHz.
These slices are tiny (a few minutes in all), so results on them are reported per slice.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from tiny_audio.audio import SAMPLE_RATE, AudioError, AudioInput, load_audio
from tiny_audio.data.manifest import Utterance, write_manifest
from tiny_audio.errors import UserError

logger = logging.getLogger(__name__)

POCKETSPHINX_DATA = "usr/share/pocketsphinx/test/data"
KTUBERLING_SOUNDS = "usr/share/ktuberling/sounds/en"
TUXPAINT_STAMPS = "usr/share/tuxpaint/stamps"

# (id, audio as load_audio accepts it, transcript, speaker)
Item = tuple[str, AudioInput, str, str]


@dataclass(frozen=True)
class Slice:
    package: str
    items: Callable[[Path], Iterator[Item]]  # root of the unpacked package -> items
    description: str


def _sphinx_transcripts(path: Path) -> Iterator[tuple[str, str]]:
    """Lines like "<s> go forward </s> (file-id)" -> (file id, "go forward")."""
    for line in path.read_text().splitlines():
        match = re.match(r"\s*(?:<s>)?(.*?)(?:</s>)?\s*\((\S+)\)\s*$", line)
        if match:
            yield match.group(2), " ".join(match.group(1).split())


def _librivox(root: Path) -> Iterator[Item]:
    folder = root / POCKETSPHINX_DATA / "librivox"
    for file_id, text in _sphinx_transcripts(folder / "transcription"):
        yield file_id, str(folder / f"{file_id}.wav"), text, "librivox-austen-reader"


def _cards(root: Path) -> Iterator[Item]:
    folder = root / POCKETSPHINX_DATA / "cards"
    for file_id, text in _sphinx_transcripts(folder / "cards.transcription"):
        yield f"cards-{file_id}", str(folder / f"{file_id}.wav"), text, "cards-speaker"


def _goforward(root: Path) -> Iterator[Item]:
    raw = np.fromfile(root / POCKETSPHINX_DATA / "goforward.raw", dtype="<i2")
    yield "goforward", (raw, SAMPLE_RATE), "go forward ten meters", "goforward-speaker"


# Stamp names not spelled as the English word said (the stamps' .txt descriptions, e.g.
# "A red kangaroo.", are not what the recordings say: they say the stamp's name).
TUXPAINT_WORDS = {
    "mountaingoat": "mountain goat",
    "wildboar": "wild boar",
    "tucan": "toucan",
    "nandou": "nandu",
}


def _tuxpaint(root: Path) -> Iterator[Item]:
    """Animal names: NAME_desc.ogg says the stamp's name. The transcripts come from the name,
    not NAME.txt: 0 of 65 clips has the article of "A frog.", and "A red kangaroo." lasts 0.8 s."""
    for audio in sorted((root / TUXPAINT_STAMPS).rglob("*_desc.ogg")):
        name = audio.name.removesuffix("_desc.ogg")
        yield f"tuxpaint-{name}", str(audio), TUXPAINT_WORDS.get(name, name), "tuxpaint-narrator"


# Sound names that are not written as the word spoken.
KTUBERLING_WORDS = {
    "palmtree": "palm tree",
    "fallingstar": "falling star",
    "sphynx": "sphinx",
    "broccolli": "broccoli",
    "ufo": "UFO",
}


def _ktuberling(root: Path) -> Iterator[Item]:
    """Single words from a children's game; the word is the file name after its theme prefix."""
    for audio in sorted((root / KTUBERLING_SOUNDS).glob("*.ogg")):
        word = audio.stem.rpartition("_")[2]
        yield (
            f"ktuberling-{audio.stem}",
            str(audio),
            KTUBERLING_WORDS.get(word, word),
            "ktuberling-narrator",
        )


SLICES: dict[str, Slice] = {
    "librivox": Slice(
        "pocketsphinx-testdata", _librivox, "LibriVox audiobook sentences (Sense and Sensibility)"
    ),
    "cards": Slice("pocketsphinx-testdata", _cards, "playing card names, read aloud"),
    "goforward": Slice("pocketsphinx-testdata", _goforward, "one spoken robot command"),
    "tuxpaint": Slice("tuxpaint-stamps-default", _tuxpaint, "animal names (Tux Paint stamps)"),
    "ktuberling": Slice("ktuberling-data", _ktuberling, "single words (KTuberling)"),
}


def build_real(out: Path, slices: Sequence[str] | None = None) -> dict[str, dict]:
    """Download, unpack and convert the slices into `out`; returns per-slice counts."""
    names = slices or list(SLICES)
    unknown = [name for name in names if name not in SLICES]
    if unknown:
        raise UserError(f"unknown slice {', '.join(unknown)}; known: {', '.join(SLICES)}")
    summary: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as scratch:
        roots = {
            package: unpack_package(package, Path(scratch))
            for package in {SLICES[n].package for n in names}
        }
        for name in names:
            utterances = list(_convert(name, SLICES[name].items(roots[SLICES[name].package]), out))
            write_manifest(out / f"{name}.jsonl", utterances)
            seconds = sum(u.duration or 0.0 for u in utterances)
            summary[name] = {
                "utterances": len(utterances),
                "seconds": round(seconds, 1),
                "description": SLICES[name].description,
            }
    return summary


def unpack_package(package: str, scratch: Path) -> Path:
    """`apt-get download` the package into `scratch` and unpack it there (no root needed);
    returns the root of its files."""
    for program in ("apt-get", "dpkg-deb"):
        if shutil.which(program) is None:
            raise UserError(f"reading {package} needs {program} (a Debian-based system)")
    folder = scratch / package
    folder.mkdir()
    download = subprocess.run(
        ["apt-get", "download", package], cwd=folder, capture_output=True, text=True
    )
    debs = list(folder.glob("*.deb"))
    if download.returncode != 0 or not debs:
        raise UserError(f"apt-get download {package} failed: {download.stderr.strip()[-300:]}")
    subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(folder / "root")], check=True)
    return folder / "root"


def _convert(name: str, items: Iterator[Item], out: Path) -> Iterator[Utterance]:
    folder = out / "audio" / name
    folder.mkdir(parents=True, exist_ok=True)
    for item_id, source, text, speaker in items:
        try:
            waveform = load_audio(source)
        except AudioError as error:
            logger.warning("skipped %s: %s", item_id, error)
            continue
        path = folder / f"{item_id}.flac"
        sf.write(path, waveform, SAMPLE_RATE, subtype="PCM_16")
        yield Utterance(
            item_id, str(path), text, round(len(waveform) / SAMPLE_RATE, 3), speaker, name
        )
