"""The corpora that presets train on, by their folder in $TINY_AUDIO_HOME/data, and what builds
each: a source that is not there says so in one line (sources.py), and `ta doctor` checks them."""

from __future__ import annotations

from pathlib import Path

# folder name -> what builds it ({folder}: the folder's path, {home}: data home); README's commands.
RECIPES: dict[str, str] = {
    "synth-1h": "ta data synth --out {folder} --hours 1",
    "synth-words": "ta data synth --out {folder} --hours 0.5 --texts words",
    "synth-kokoro-en": "ta data synth --out {folder} --hours 1.5 --voices kokoro-en --mixes 8 "
    "--held-out kokoro-am_michael,kokoro-bf_emma",
    "games": "ta data games",
    "games-joined": "ta data games && ta data join games --out {folder}/train.jsonl --count 1500",
    "real": "ta data real",
    "LibriSpeech": "download its parts from https://www.openslr.org/12 and extract them in {home}",
}
# Any other folder under data home is taken for a synthetic corpus (`synth:NAME`).
SYNTH_RECIPE = RECIPES["synth-1h"]


def recipe(missing: Path, data_home: Path) -> str | None:
    """What builds a missing corpus file or folder below `data_home`; None for one elsewhere."""
    try:
        name, *_ = missing.relative_to(data_home).parts
    except ValueError:
        return None
    return RECIPES.get(name, SYNTH_RECIPE).format(folder=data_home / name, home=data_home)


def fix_phrase(command: str) -> str:
    """`run `ta ...`` for a command, the instruction itself for anything else."""
    return f"run `{command}`" if command.startswith("ta ") else command
