"""Real recorded English speech with transcripts, for quick checks, tests and demos: the
LibriVox, "cards" and "go forward" utterances of Debian's pocketsphinx-testdata (BSD),
unpacked once into cache_home()/samples as 16 kHz wav files plus a JSONL manifest."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf

from tiny_audio.errors import UserError
from tiny_audio.zoo.cache import build_atomically, cache_home

PACKAGE = "pocketsphinx-testdata"
DATA_DIR = Path("usr/share/pocketsphinx/test/data")
MANIFEST = "manifest.jsonl"
SAMPLE_RATE = 16000
# group -> (transcript file, audio folder) inside DATA_DIR; lines look like "<s> text </s> (id)".
TRANSCRIBED_GROUPS: dict[str, tuple[str, str]] = {
    "librivox": ("librivox/transcription", "librivox"),
    "cards": ("cards/cards.transcription", "cards"),
}
# Raw 16-bit mono recordings with a known text.
RAW_CLIPS: dict[str, str] = {"goforward": "go forward ten meters"}


class Clip(NamedTuple):
    path: Path
    text: str


def samples_dir() -> Path:
    return cache_home() / "samples" / PACKAGE


def _package_data(work: Path) -> Path:
    """The package's data folder: the installed copy, else unpacked from `apt-get download`."""
    installed = Path("/") / DATA_DIR
    if installed.is_dir():
        return installed
    try:
        subprocess.run(["apt-get", "download", PACKAGE], cwd=work, check=True, capture_output=True)
        (deb,) = work.glob(f"{PACKAGE}_*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(work)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError, ValueError) as error:
        raise UserError(
            f"could not fetch the Debian package {PACKAGE} with apt-get download "
            f"(needs apt lists: apt-get update): {error}"
        ) from None
    return work / DATA_DIR


def _transcripts(path: Path) -> dict[str, str]:
    texts = {}
    for line in path.read_text().splitlines():
        if line.strip():
            text, _, utterance = line.rpartition("(")
            texts[utterance.rstrip(") ")] = text.replace("<s>", "").replace("</s>", "").strip()
    return texts


def _build(folder: Path) -> None:
    with tempfile.TemporaryDirectory() as work:
        data = _package_data(Path(work))
        entries = []
        for group, (transcript_file, audio_folder) in TRANSCRIBED_GROUPS.items():
            (folder / group).mkdir()
            for utterance, text in _transcripts(data / transcript_file).items():
                target = folder / group / f"{utterance}.wav"
                shutil.copyfile(data / audio_folder / f"{utterance}.wav", target)
                entries.append((f"{group}/{utterance}", target, text, group))
        for name, text in RAW_CLIPS.items():
            target = folder / f"{name}.wav"
            pcm = np.fromfile(data / f"{name}.raw", dtype="<i2")
            sf.write(target, pcm, SAMPLE_RATE, subtype="PCM_16")
            entries.append((name, target, text, name))
        final = samples_dir()
        with open(folder / MANIFEST, "w") as manifest:
            for utterance_id, path, text, source in entries:
                record = {
                    "id": utterance_id,
                    "audio": str(final / path.relative_to(folder)),
                    "text": text,
                    "duration": round(sf.info(path).duration, 3),
                    "source": source,
                }
                manifest.write(json.dumps(record) + "\n")


def manifest_path() -> Path:
    """The JSONL manifest of the sample clips (unpacked on first use)."""
    return build_atomically(samples_dir(), _build) / MANIFEST


def sample_clips() -> list[Clip]:
    """(wav path, transcript) of every sample clip: 5 LibriVox, 5 cards, 1 go-forward."""
    with open(manifest_path()) as manifest:
        records = [json.loads(line) for line in manifest]
    return [Clip(Path(record["audio"]), record["text"]) for record in records]
