"""Named speech sources for training and evaluation: `load_source(name, split, max_samples)`.

A name is, in the order tried:
- `real` (every slice of `ta data real`) or `real:SLICE` (real slices have no splits);
  `synth` (the corpus `ta data synth --out $TINY_AUDIO_HOME/data/synth-1h` builds) or
  `synth:DIR` (one built with `--out DIR`); `games` (every game `ta data games` built, with
  train/dev/test splits) or `games:NAME`.
- a Hub dataset in HUB_DATASETS (loquacious, librispeech, librispeech-other, earnings22, ami,
  voxpopuli, tedlium, gigaspeech, spgispeech), streamed with `datasets`; needs network access.
- a path: a manifest (.jsonl); a folder holding SPLIT.jsonl; a `datasets` folder written by
  `save_to_disk`; an audiofolder (metadata.csv or metadata.jsonl beside the audio); or a folder
  of audio files with transcripts (NAME.txt beside NAME.wav, or LibriSpeech-style *.trans.txt
  files with "ID transcript" lines).

Every source yields `Utterance`s whose `audio` is a path or encoded bytes: decoding is left to
the consumer, so one bad file is reported and skipped there instead of ending the run.
"""

from __future__ import annotations

import csv
import itertools
import json
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tiny_audio.data.corpora import RECIPES, SYNTH_RECIPE, fix_phrase, recipe
from tiny_audio.data.manifest import Utterance, iter_manifest
from tiny_audio.errors import UserError

AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aiff", ".au"}
TEXT_COLUMNS = ("text", "transcription", "transcript", "sentence", "normalized_text")
SPEAKER_COLUMNS = ("speaker_id", "spk_id", "speaker")
SPLIT_ALIASES = {
    "dev": ("dev", "validation", "valid"),
    "validation": ("validation", "dev", "valid"),
}
# TED-LIUM marks stretches that are not transcribed with this text.
SKIPPED_TEXTS = {"ignore_time_segment_in_scoring", ""}


class MissingData(UserError):
    """A corpus that is not there yet; `fix` is what builds it."""

    def __init__(self, missing: Path, fix: str) -> None:
        super().__init__(f"{missing} is missing: {fix_phrase(fix)}")
        self.missing, self.fix = missing, fix


def load_source(
    name: str, split: str = "test", max_samples: int | None = None
) -> Iterator[Utterance]:
    return itertools.islice(_open(name, split), max_samples)


def load_spec(spec: Mapping[str, Any], default_split: str) -> list[Utterance]:
    """The clips a data.train or data.dev entry names: its source's split (its own or
    `default_split`), the first `max_samples` of them, or a random `fraction` of them (the same
    clips in every run, so a cache built for them is reused)."""
    utterances = list(
        load_source(spec["source"], spec.get("split", default_split), spec.get("max_samples"))
    )
    fraction = spec.get("fraction")
    if fraction is None:
        return utterances
    if not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise UserError(f"{spec['source']}: fraction must be in (0, 1], not {fraction!r}")
    return random.Random(0).sample(utterances, round(len(utterances) * fraction))


def missing_data(name: str, split: str) -> MissingData | None:
    """Why a source cannot be read yet, found without reading it; None for one that is there,
    `real` (built on first use) and Hub datasets (streamed)."""
    if name.partition(":")[0] == "real":
        return None
    try:
        _open(name, split)
    except MissingData as error:
        return error
    return None


# What a data.train or data.dev entry may hold (see load_spec).
SPEC_KEYS = ("source", "split", "max_samples", "fraction")


def source_specs(value: Any) -> list[dict[str, Any]]:
    """A config's data entry, one spec ({source, split?, max_samples?, fraction?}) or a list, as a
    list: a dev set may mix domains, each with its own sample budget."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=True)
    return [value] if isinstance(value, dict) else list(value)


def _open(name: str, split: str) -> Iterator[Utterance]:
    kind, _, argument = name.partition(":")
    if kind in NAMED:
        return NAMED[kind](argument, split)
    if name in HUB_DATASETS:
        return _hub(name, split)
    path = Path(name).expanduser()
    if path.is_file():
        return iter_manifest(path)
    if path.is_dir():
        return _folder(path, split)
    fix = recipe(path.absolute(), data_home())
    if fix:  # a corpus a preset names in the data folder, not built yet
        raise MissingData(path, fix)
    known = ", ".join([*NAMED, *HUB_DATASETS])
    raise UserError(f"unknown data source {name!r}: not a file, folder or known name ({known})")


def data_home() -> Path:
    from tiny_audio.zoo.cache import cache_home

    return cache_home() / "data"


def _real(slice_name: str, split: str) -> Iterator[Utterance]:
    """Every slice, or one; real slices are all evaluation data, so `split` does not apply."""
    from tiny_audio.data.real import build_real

    folder = data_home() / "real"
    if not any(folder.glob("*.jsonl")):  # built on first use, like a zoo model
        build_real(folder)
    slices = sorted(path.stem for path in folder.glob("*.jsonl"))
    if slice_name and slice_name not in slices:
        raise UserError(f"no real slice {slice_name!r} (built: {', '.join(slices)})")
    return itertools.chain.from_iterable(
        iter_manifest(folder / f"{name}.jsonl") for name in ([slice_name] if slice_name else slices)
    )


def _synth(folder: str, split: str) -> Iterator[Utterance]:
    """`synth` is the default corpus, `synth:DIR` one built with `ta data synth --out DIR`; a
    relative DIR that is not a folder here names one in $TINY_AUDIO_HOME/data (`synth:synth-words`)."""
    directory = Path(folder or "synth-1h").expanduser()
    if not directory.is_absolute() and not directory.is_dir():
        directory = data_home() / directory
    manifest = directory / f"{split}.jsonl"
    if not manifest.is_file():
        raise MissingData(
            manifest, recipe(manifest, data_home()) or SYNTH_RECIPE.format(folder=directory)
        )
    return iter_manifest(manifest)


def _games(game: str, split: str) -> Iterator[Utterance]:
    """`games` is every game `ta data games` built, `games:NAME` one of them."""
    from tiny_audio.data.games import GAMES

    folder = data_home() / "games"
    built = sorted(name for name in GAMES if (folder / name / f"{split}.jsonl").is_file())
    if game and game not in GAMES:
        raise UserError(f"no game {game!r} (known: {', '.join(GAMES)})")
    chosen = [game] if game else built
    if not chosen or any(name not in built for name in chosen):
        raise MissingData(folder / (game or "*") / f"{split}.jsonl", RECIPES["games"])
    return itertools.chain.from_iterable(
        iter_manifest(folder / name / f"{split}.jsonl") for name in chosen
    )


NAMED: dict[str, Callable[[str, str], Iterator[Utterance]]] = {
    "real": _real,
    "synth": _synth,
    "games": _games,
}


# ---- local folders -------------------------------------------------------------------------


def _folder(path: Path, split: str) -> Iterator[Utterance]:
    if (path / f"{split}.jsonl").is_file():
        return iter_manifest(path / f"{split}.jsonl")
    if any((path / marker).is_file() for marker in ("dataset_info.json", "dataset_dict.json")):
        return _saved_dataset(path, split)
    if any(path.rglob("metadata.csv")) or any(path.rglob("metadata.jsonl")):
        return _audiofolder(path, split)
    return _audio_with_transcripts(path)


def _saved_dataset(path: Path, split: str) -> Iterator[Utterance]:
    import datasets

    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        loaded = loaded[_pick_split(split, list(loaded), str(path))]
    return _rows(loaded, path.name)


def _audiofolder(path: Path, split: str) -> Iterator[Utterance]:
    """The `datasets` audiofolder layout: metadata.csv or metadata.jsonl (a `file_name` column
    and a transcript column) beside the audio, optionally in one folder per split. Read
    directly: `datasets` would want torchcodec just to pass the files through."""
    tables = sorted([*path.rglob("metadata.csv"), *path.rglob("metadata.jsonl")])
    split_folders = sorted({t.relative_to(path).parts[0] for t in tables if t.parent != path})
    if split_folders:
        chosen = _pick_split(split, split_folders, str(path))
        tables = [t for t in tables if t.relative_to(path).parts[0] == chosen]
    for table in tables:
        with table.open(encoding="utf-8", newline="") as file:
            rows = (
                csv.DictReader(file)
                if table.suffix == ".csv"
                else map(json.loads, filter(str.strip, file))
            )
            for row in rows:
                text = next((row[c] for c in TEXT_COLUMNS if c in row), None)
                if text is None or "file_name" not in row:
                    raise UserError(
                        f"{table}: needs a file_name column and one of {', '.join(TEXT_COLUMNS)}"
                    )
                speaker = next(
                    (str(row[c]) for c in SPEAKER_COLUMNS if row.get(c) is not None), None
                )
                audio = table.parent / row["file_name"]
                yield Utterance(audio.stem, str(audio), text, speaker=speaker, source=path.name)


def _audio_with_transcripts(path: Path) -> Iterator[Utterance]:
    transcripts: dict[Path, str] = {}
    for listing in sorted(path.rglob("*.trans.txt")):
        for line in listing.read_text(encoding="utf-8").splitlines():
            key, _, transcript = line.strip().partition(" ")
            if key:
                transcripts[listing.parent / key] = transcript
    audio_files = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    found = 0
    for audio in audio_files:
        text_file = audio.with_suffix(".txt")
        text = transcripts.get(audio.with_suffix(""))
        if text is None and text_file.is_file():
            text = " ".join(text_file.read_text(encoding="utf-8").split())
        if text is not None:
            found += 1
            yield Utterance(
                str(audio.relative_to(path).with_suffix("")), str(audio), text, source=path.name
            )
    if not found:
        raise UserError(f"{path}: no audio files with transcripts (NAME.txt or *.trans.txt) found")


def _pick_split(split: str, available: list[str], where: str) -> str:
    for candidate in SPLIT_ALIASES.get(split, (split,)):
        if candidate in available:
            return candidate
    raise UserError(f"{where} has no {split!r} split (it has {', '.join(available)})")


# ---- `datasets` rows, local or streamed ----------------------------------------------------


@dataclass(frozen=True)
class Columns:
    audio: str = "audio"
    text: str = "text"
    id: str | None = "id"
    speaker: str | None = None


def _rows(dataset: Any, source: str, columns: Columns | None = None) -> Iterator[Utterance]:
    """Utterances from a `datasets` Dataset or IterableDataset, audio left encoded."""
    columns = columns or _guess_columns(dataset)
    dataset = _undecoded(dataset, columns.audio)
    for index, row in enumerate(dataset):
        text = row[columns.text]
        if text is None or text.strip() in SKIPPED_TEXTS:
            continue
        audio = row[columns.audio]
        yield Utterance(
            id=str(row[columns.id]) if columns.id else f"{source}-{index}",
            audio=audio.get("bytes") or audio.get("path"),
            text=text,
            duration=None,
            speaker=str(row[columns.speaker]) if columns.speaker else None,
            source=source,
        )


def _undecoded(dataset: Any, column: str) -> Any:
    """Read an Audio column as its stored {"bytes", "path"}: `datasets` >= 4 needs torchcodec
    to touch an Audio feature at all, even undecoded, and decoding is the consumer's job."""
    import datasets

    features = dataset.features
    if features is None or not isinstance(features.get(column), datasets.Audio):
        return dataset
    features = features.copy()
    features[column] = {"bytes": datasets.Value("binary"), "path": datasets.Value("string")}
    return dataset.cast(features)


def _guess_columns(dataset: Any) -> Columns:
    import datasets

    features = dataset.features or {}
    audio = next((name for name, f in features.items() if isinstance(f, datasets.Audio)), "audio")
    text = next((name for name in TEXT_COLUMNS if name in features), None)
    if text is None:
        raise UserError(f"no transcript column; expected one of {', '.join(TEXT_COLUMNS)}")
    identity = next((name for name in ("id", "ID", "file_name") if name in features), None)
    speaker = next((name for name in SPEAKER_COLUMNS if name in features), None)
    return Columns(audio, text, identity, speaker)


# ---- Hugging Face Hub ----------------------------------------------------------------------


@dataclass(frozen=True)
class HubSplit:
    """Where one split of a named dataset lives on the Hub, and its column names."""

    repo: str
    config: str | None
    split: str
    columns: Columns = Columns()


# The Open ASR Leaderboard's test sets in parquet (gated: accept its terms on the Hub once).
ESB = "hf-audio/esb-datasets-test-only-sorted"


def _esb(config: str) -> HubSplit:
    return HubSplit(ESB, config, "test")


def _same_repo(
    repo: str, config: str | None, splits: dict[str, str], columns: Columns
) -> dict[str, HubSplit]:
    return {ours: HubSplit(repo, config, theirs, columns) for ours, theirs in splits.items()}


_LIBRISPEECH = Columns(id="id", speaker="speaker_id")
# Script-based originals (AMI, VoxPopuli, TED-LIUM, GigaSpeech, SPGISpeech) cannot be loaded by
# `datasets` >= 4, so their parquet copies are used: the ESB test sets, and mirrors for training.
HUB_DATASETS: dict[str, dict[str, HubSplit]] = {
    "loquacious": _same_repo(
        "speechbrain/LoquaciousSet",
        "small",
        {"train": "train", "dev": "dev", "test": "test"},
        Columns(audio="wav", text="text", id="ID", speaker="spk_id"),
    ),
    "librispeech": _same_repo(
        "openslr/librispeech_asr",
        "clean",
        {"train": "train.100", "dev": "validation", "test": "test"},
        _LIBRISPEECH,
    ),
    "librispeech-other": _same_repo(
        "openslr/librispeech_asr",
        "other",
        {"train": "train.500", "dev": "validation", "test": "test"},
        _LIBRISPEECH,
    ),
    "earnings22": {
        **_same_repo(
            "sanchit-gandhi/earnings22_robust_split",
            "default",
            {"train": "train", "dev": "validation"},
            Columns(text="sentence", id=None),
        ),
        "test": _esb("earnings22"),
    },
    "ami": {
        **_same_repo(
            "TakalaWang/AMI_ASR", None, {"train": "train", "dev": "validation"}, Columns(id=None)
        ),
        "test": _esb("ami"),
    },
    "tedlium": {
        **_same_repo(
            "sanchit-gandhi/tedlium-data",
            None,
            {"train": "train", "dev": "validation"},
            Columns(id=None),
        ),
        "test": _esb("tedlium"),
    },
    "gigaspeech": {
        "train": HubSplit("fixie-ai/gigaspeech", "xs", "train", Columns(id=None)),
        "dev": HubSplit("fixie-ai/gigaspeech", "dev", "dev", Columns(id=None)),
        "test": _esb("gigaspeech"),
    },
    "voxpopuli": {"test": _esb("voxpopuli")},
    "spgispeech": {"test": _esb("spgispeech")},
}


def _hub(name: str, split: str) -> Iterator[Utterance]:
    splits = HUB_DATASETS[name]
    where = next((splits[s] for s in SPLIT_ALIASES.get(split, (split,)) if s in splits), None)
    if where is None:
        raise UserError(f"{name} has no {split!r} split here (it has {', '.join(splits)})")
    return _guard(name, lambda: _rows(_stream(where), name, where.columns))


def _stream(where: HubSplit) -> Any:
    import datasets

    return datasets.load_dataset(where.repo, where.config, split=where.split, streaming=True)


def _guard(name: str, open_rows: Callable[[], Iterable[Utterance]]) -> Iterator[Utterance]:
    """Turn a failure to reach or read the Hub into one clear line."""
    try:
        yield from open_rows()
    except UserError:
        raise
    except Exception as error:
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise UserError(
            f"cannot stream Hub dataset {name!r} ({reason}); it needs network "
            "access to huggingface.co (and HF_HUB_OFFLINE unset)"
        ) from None
