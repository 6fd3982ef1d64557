"""Named sources: manifests, folders, saved and audiofolder datasets, Hub schemas (built
locally and streamed through the same code path), and clear errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import datasets
import huggingface_hub
import numpy as np
import pytest
import soundfile as sf

from tiny_audio.audio import load_audio
from tiny_audio.data import sources
from tiny_audio.data.manifest import Utterance, write_manifest
from tiny_audio.data.sources import HubSplit, load_source
from tiny_audio.errors import UserError


def wav_bytes(seconds: float, frequency: float = 220.0, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    t = np.arange(int(seconds * rate)) / rate
    sf.write(buffer, 0.3 * np.sin(2 * np.pi * frequency * t), rate, format="WAV")
    return buffer.getvalue()


def test_manifest_and_corpus_folder(tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(wav_bytes(0.5))
    write_manifest(tmp_path / "dev.jsonl", [Utterance("a", str(tmp_path / "a.wav"), "hi", 0.5)])
    by_path = list(load_source(str(tmp_path / "dev.jsonl")))
    by_folder = list(load_source(str(tmp_path), split="dev"))
    assert by_path == by_folder and len(load_audio(by_path[0].audio)) == 8000


def test_folder_of_audio_with_transcripts(tmp_path: Path) -> None:
    (tmp_path / "one.wav").write_bytes(wav_bytes(0.3))
    (tmp_path / "one.txt").write_text("first  clip\n")
    (tmp_path / "untranscribed.wav").write_bytes(wav_bytes(0.3))
    chapter = tmp_path / "19" / "198"
    chapter.mkdir(parents=True)
    for key in ("19-198-0000", "19-198-0001"):
        sf.write(chapter / f"{key}.flac", np.zeros(1600), 16000)
    (chapter / "19-198.trans.txt").write_text(
        "19-198-0000 NORTHANGER ABBEY\n19-198-0001 CHAPTER ONE\n"
    )
    found = {u.id: u.text for u in load_source(str(tmp_path))}
    assert found == {
        "one": "first clip",
        "19/198/19-198-0000": "NORTHANGER ABBEY",
        "19/198/19-198-0001": "CHAPTER ONE",
    }
    assert list(load_source(str(tmp_path), max_samples=2)).__len__() == 2


def test_saved_dataset_dict_maps_dev_to_validation(tmp_path: Path) -> None:
    rows = {
        "audio": [{"bytes": wav_bytes(0.2), "path": None}],
        "sentence": ["a saved row"],
        "speaker_id": [7],
    }
    split = datasets.Dataset.from_dict(rows).cast_column("audio", datasets.Audio(decode=False))
    datasets.DatasetDict({"validation": split}).save_to_disk(str(tmp_path / "saved"))
    [utterance] = load_source(str(tmp_path / "saved"), split="dev")
    assert utterance.text == "a saved row" and utterance.speaker == "7"
    assert len(load_audio(utterance.audio)) == 3200
    with pytest.raises(UserError, match="no 'train' split"):
        list(load_source(str(tmp_path / "saved"), split="train"))


def test_audiofolder_with_metadata(tmp_path: Path) -> None:
    folder = tmp_path / "af" / "test"
    folder.mkdir(parents=True)
    for name in ("x.wav", "y.wav"):
        (folder / name).write_bytes(wav_bytes(0.25))
    (folder / "metadata.csv").write_text("file_name,transcription\nx.wav,ex marks\ny.wav,why not\n")
    found = sorted((u.text, len(load_audio(u.audio))) for u in load_source(str(tmp_path / "af")))
    assert found == [("ex marks", 4000), ("why not", 4000)]


LOQUACIOUS_CARD = """---
dataset_info:
  config_name: small
  features:
  - name: ID
    dtype: string
  - name: duration
    dtype: float32
  - name: wav
    dtype:
      audio:
        sampling_rate: 16000
        decode: false
  - name: spk_id
    dtype: string
  - name: sex
    dtype: string
  - name: text
    dtype: string
configs:
- config_name: small
  data_files:
  - split: test
    path: test/test*
---
"""


def local_hub_repo(root: Path) -> Path:
    """A folder laid out like speechbrain/LoquaciousSet: config `small`, a parquet shard, and a
    dataset card declaring the same columns (ID, duration, wav as Audio, spk_id, sex, text)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    clips = [wav_bytes(s) for s in (0.5, 0.25, 0.1)]
    table = pa.table(
        {
            "ID": ["utt-1", "utt-2", "utt-3"],
            "duration": pa.array([0.5, 0.25, 0.1], pa.float32()),
            "wav": [{"bytes": clip, "path": None} for clip in clips],
            "spk_id": ["spk-a", "spk-b", "spk-a"],
            "sex": ["F", "M", "F"],
            "text": ["the first one", "the second one", "ignore_time_segment_in_scoring"],
        }
    )
    (root / "test").mkdir(parents=True)
    pq.write_table(table, root / "test" / "test-00000-of-00001.parquet")
    (root / "README.md").write_text(LOQUACIOUS_CARD)
    return root


def test_hub_schema_streams_through_the_hub_code_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = local_hub_repo(tmp_path / "LoquaciousSet")
    real = sources.HUB_DATASETS["loquacious"]["test"]
    monkeypatch.setitem(
        sources.HUB_DATASETS,
        "loquacious",
        {"test": HubSplit(str(repo), "small", "test", real.columns)},
    )
    found = list(load_source("loquacious", split="test"))
    assert [(u.id, u.text, u.speaker, u.source) for u in found] == [
        ("utt-1", "the first one", "spk-a", "loquacious"),
        ("utt-2", "the second one", "spk-b", "loquacious"),
    ]
    assert len(load_audio(found[0].audio)) == 8000
    assert len(list(load_source("loquacious", split="test", max_samples=1))) == 1
    with pytest.raises(UserError, match="no 'train' split"):
        list(load_source("loquacious", split="train"))


def test_every_hub_name_has_a_test_split_and_columns() -> None:
    for name, splits in sources.HUB_DATASETS.items():
        assert "test" in splits, name
        assert all(h.repo.count("/") == 1 and h.columns.text for h in splits.values()), name


def test_hub_name_offline_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match=r"cannot stream Hub dataset 'earnings22'.*network"):
        next(load_source("earnings22", split="test"))


def test_named_real_and_synth_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TINY_AUDIO_HOME", str(tmp_path))
    with pytest.raises(UserError, match="ta data synth"):
        list(load_source("synth", split="dev"))
    real = tmp_path / "data" / "real"
    real.mkdir(parents=True)
    (real / "w.wav").write_bytes(wav_bytes(0.1))
    for name in ("cards", "words"):
        write_manifest(
            real / f"{name}.jsonl",
            [Utterance(f"{name}-1", str(real / "w.wav"), name, 0.1, None, name)],
        )
    assert [u.source for u in load_source("real")] == ["cards", "words"]
    assert [u.id for u in load_source("real:words")] == ["words-1"]
    with pytest.raises(UserError, match="built: cards, words"):
        load_source("real:podcasts")
    write_manifest(
        tmp_path / "corpus" / "dev.jsonl", [Utterance("d", str(real / "w.wav"), "dev", 0.1)]
    )
    assert [u.text for u in load_source(f"synth:{tmp_path / 'corpus'}", split="dev")] == ["dev"]
    write_manifest(
        tmp_path / "data" / "words" / "dev.jsonl", [Utterance("w", str(real / "w.wav"), "w", 0.1)]
    )
    assert [u.text for u in load_source("synth:words", split="dev")] == ["w"]  # in the data home
    with pytest.raises(UserError, match="unknown data source"):
        load_source("no-such-thing")
    assert json.loads(json.dumps([u.id for u in load_source("real", max_samples=1)])) == ["cards-1"]
