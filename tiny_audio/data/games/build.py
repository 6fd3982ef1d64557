"""`ta data games`: each game's lines become 16 kHz FLAC clips and train/dev/test manifests.

Splits hold out whole voices: every line of a speaker (or, where a game does not tag its lines,
of a scene) falls in one split, so dev and test voices are never heard in training. Rerunning
continues a killed build: clips already written are kept.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import random
import re
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import soundfile as sf

from tiny_audio.audio import SAMPLE_RATE, AudioError, load_audio
from tiny_audio.data.games import GAMES, Line
from tiny_audio.data.manifest import Utterance, write_manifest
from tiny_audio.data.real import unpack_package
from tiny_audio.errors import UserError

# Share of clips held out for each evaluation split, in whole voices.
HELD_OUT_SHARES = {"test": 0.06, "dev": 0.04}
# A voice this large stays in train: holding out the hero would empty the training set.
MAX_HELD_OUT_VOICE = 0.03
# Clips the encoder cannot take whole (Whisper's 30 s window), or too short to hold a word.
MIN_SECONDS, MAX_SECONDS = 0.3, 30.0
UNFILTERED = "{split}.unfiltered.jsonl"  # every pair, before `ta data filter`

_EMPHASIS = re.compile(
    r"\b[A-Z]{2,}(?:'[A-Z]+)?\b"
)  # "I'm NOT going": a shouted word in mixed case
_SENTENCE_START = re.compile(r"(^|[.!?]\s+)([a-z])")
_LONE_I = re.compile(r"\bi\b")
_DOTS = re.compile(r"\.{2,}|…")


def normalize_line(text: str) -> str:
    """The words as a transcript writes them: ALL-CAPS lines in sentence case, emphasis CAPS
    lowered, ellipses as "...", straight quotes, no quotes left unpaired, single spaces."""
    text = text.replace("“", '"').replace("”", '"').replace("‘", "'").replace("’", "'")
    text = " ".join(_DOTS.sub("...", text).split())
    letters = [c for c in text if c.isalpha()]
    if letters and all(c.isupper() for c in letters):
        text = _SENTENCE_START.sub(lambda m: m.group(1) + m.group(2).upper(), text.lower())
        text = _LONE_I.sub("I", text)
    else:
        text = _EMPHASIS.sub(
            lambda m: m.group(0) if m.group(0) == "I" else m.group(0).lower(), text
        )
    if text.count('"') % 2:
        text = text.replace('"', "")
    return text.strip()


def assign_splits(groups: Counter[str]) -> dict[str, str]:
    """group (voice) -> split. Groups are taken in a fixed hash order, so the assignment does
    not depend on the build; each held-out split fills to its share with groups small enough."""
    total = sum(groups.values())
    split_of = dict.fromkeys(groups, "train")
    filled = dict.fromkeys(HELD_OUT_SHARES, 0)
    for group in sorted(groups, key=lambda g: hashlib.sha1(g.encode()).hexdigest()):
        if groups[group] > MAX_HELD_OUT_VOICE * total:
            continue
        for split, share in HELD_OUT_SHARES.items():
            if filled[split] + groups[group] <= share * total:
                split_of[group] = split
                filled[split] += groups[group]
                break
    return split_of


def voice_of(line: Line) -> str:
    return line.speaker or f"scene:{line.scene}"


def build_game(name: str, root: Path, out: Path) -> dict:
    """Convert one unpacked game into out/NAME/: audio/*.flac and SPLIT.unfiltered.jsonl."""
    folder = out / name
    audio_folder = folder / "audio"
    audio_folder.mkdir(parents=True, exist_ok=True)
    lines = importlib.import_module(f"tiny_audio.data.games.{GAMES[name].module}").lines
    kept: list[tuple[Line, Utterance]] = []
    dropped: Counter[str] = Counter()
    for line in lines(root):
        text = normalize_line(line.text)
        if not any(c.isalpha() for c in text):
            dropped["no words in the text"] += 1
            continue
        path = audio_folder / f"{line.id}.flac"
        try:
            duration = _write_clip(line, path)
        except AudioError:
            dropped["unreadable audio"] += 1
            continue
        if not MIN_SECONDS <= duration <= MAX_SECONDS:
            dropped[f"shorter than {MIN_SECONDS} s or longer than {MAX_SECONDS} s"] += 1
            continue
        speaker = f"{name}-{line.speaker}" if line.speaker else None
        kept.append((line, Utterance(line.id, str(path), text, duration, speaker, name)))
    split_of = assign_splits(Counter(voice_of(line) for line, _ in kept))
    summary: dict = {"description": GAMES[name].description, "dropped": dict(dropped), "splits": {}}
    for split in ("train", "dev", "test"):
        chosen = [u for line, u in kept if split_of[voice_of(line)] == split]
        random.Random(f"{name}-{split}").shuffle(chosen)  # so that its first N mix the voices
        write_manifest(folder / UNFILTERED.format(split=split), chosen)
        summary["splits"][split] = _figures(chosen)
    summary["held_out_voices"] = {
        split: sorted(v for v, s in split_of.items() if s == split) for split in HELD_OUT_SHARES
    }
    (folder / "game.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _write_clip(line: Line, path: Path) -> float:
    """Write the clip once (a rerun keeps it); returns its duration in seconds."""
    if path.is_file():
        return sf.info(path).duration
    waveform = load_audio(line.audio)
    staging = path.with_name(path.name + ".tmp")
    sf.write(staging, waveform, SAMPLE_RATE, subtype="PCM_16", format="FLAC")
    staging.replace(path)
    return len(waveform) / SAMPLE_RATE


def _figures(utterances: Iterable[Utterance]) -> dict:
    utterances = list(utterances)
    return {
        "utterances": len(utterances),
        "hours": round(sum(u.duration or 0.0 for u in utterances) / 3600, 3),
        "speakers": len({u.speaker for u in utterances if u.speaker}),
    }


def build_games(out: Path, names: Sequence[str] | None = None) -> dict[str, dict]:
    """Download, unpack and convert each game (default: all) into `out`."""
    names = list(names or GAMES)
    unknown = [name for name in names if name not in GAMES]
    if unknown:
        raise UserError(f"unknown game {', '.join(unknown)}; known: {', '.join(GAMES)}")
    summary = {}
    for name in names:
        with tempfile.TemporaryDirectory() as scratch:
            root = unpack_package(GAMES[name].package, Path(scratch))
            summary[name] = build_game(name, root, out)
    return summary
