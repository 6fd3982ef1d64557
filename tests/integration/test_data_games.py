"""The games' shared build: transcript normalisation, voice-disjoint splits, resumable conversion,
the peer filter and the `games` source (each game's own format has its own test file)."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tiny_audio.data import sources
from tiny_audio.data.games import GAMES, Game, Line
from tiny_audio.data.games.build import (
    HELD_OUT_SHARES,
    UNFILTERED,
    assign_splits,
    build_game,
    normalize_line,
)
from tiny_audio.data.manifest import Utterance, read_manifest, write_manifest
from tiny_audio.errors import UserError


@pytest.mark.parametrize(
    ("stored", "transcript"),
    [
        ("I'm NOT going in there!", "I'm not going in there!"),
        ("WHERE IS THE KEY? I NEED IT.", "Where is the key? I need it."),
        ("Well.. I don't know…", "Well... I don't know..."),
        ("“Hello,” she said.", '"Hello," she said.'),
        ('He said "go', "He said go"),
        ("  Hmm   ", "Hmm"),
    ],
)
def test_game_text_becomes_a_transcript(stored: str, transcript: str) -> None:
    assert normalize_line(stored) == transcript


def test_held_out_voices_are_whole_and_the_large_ones_stay_in_training() -> None:
    groups = Counter({"hero": 500, **{f"extra{i}": 10 for i in range(40)}})
    split_of = assign_splits(groups)
    assert split_of["hero"] == "train"
    total = sum(groups.values())
    for split, share in HELD_OUT_SHARES.items():
        held = sum(count for group, count in groups.items() if split_of[group] == split)
        assert 0 < held <= share * total
    assert assign_splits(groups) == split_of  # the same every build


def tone(seconds: float, frequency: float) -> tuple[np.ndarray, int]:
    t = np.arange(int(11025 * seconds)) / 11025
    return (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32), 11025


def fake_lines(root: Path) -> Iterator[Line]:
    for i in range(60):
        speaker = "hero" if i < 30 else f"extra{i % 10}"
        yield Line(f"fake-{i}", tone(0.5 + i / 100, 200 + i), f"LINE NUMBER {i}.", speaker, "s1")
    yield Line("fake-grunt", tone(0.5, 300), "...!", "hero", "s1")
    yield Line("fake-long", tone(31.0, 300), "A very long line.", "hero", "s1")


@pytest.fixture
def fake_game(monkeypatch: pytest.MonkeyPatch) -> str:
    module = types.ModuleType("tiny_audio.data.games.fake")
    module.lines = fake_lines  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(GAMES, "fake", Game("fake-package", "fake", "a game made in the test"))
    return "fake"


def test_a_game_becomes_voice_disjoint_splits_and_a_rerun_keeps_its_clips(
    fake_game: str, tmp_path: Path
) -> None:
    summary = build_game(fake_game, tmp_path, tmp_path / "games")
    folder = tmp_path / "games" / fake_game
    splits = {
        s: read_manifest(folder / UNFILTERED.format(split=s)) for s in ("train", "dev", "test")
    }
    assert sum(len(u) for u in splits.values()) == 60
    assert summary["dropped"] == {
        "no words in the text": 1,
        "shorter than 0.3 s or longer than 30.0 s": 1,
    }
    speakers = {s: {u.speaker for u in utterances} for s, utterances in splits.items()}
    assert not speakers["train"] & (speakers["dev"] | speakers["test"])
    first = next(u for u in splits["train"] if u.id == "fake-0")
    assert first.text == "Line number 0." and first.speaker == "fake-hero"
    assert first.duration == pytest.approx(0.5, abs=0.01)
    written = Path(first.audio).stat().st_mtime_ns
    build_game(fake_game, tmp_path, tmp_path / "games")
    assert Path(first.audio).stat().st_mtime_ns == written


def test_the_games_source_names_what_to_run_when_nothing_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TINY_AUDIO_HOME", str(tmp_path))
    with pytest.raises(UserError, match="run `ta data games`"):
        list(sources.load_source("games", "train"))
    with pytest.raises(UserError, match="no game 'nope'"):
        list(sources.load_source("games:nope", "train"))
    clip = Utterance("a", str(tmp_path / "a.flac"), "hello", 1.0)
    write_manifest(tmp_path / "data" / "games" / "queen" / "train.jsonl", [clip])
    assert [u.id for u in sources.load_source("games", "train")] == ["a"]
    assert [u.id for u in sources.load_source("games:queen", "train")] == ["a"]


def test_a_dev_entry_may_list_several_sources() -> None:
    from omegaconf import OmegaConf

    one = OmegaConf.create({"source": "a.jsonl", "max_samples": 4})
    several = OmegaConf.create([{"source": "a.jsonl"}, {"source": "b.jsonl", "max_samples": 2}])
    assert sources.source_specs(one) == [{"source": "a.jsonl", "max_samples": 4}]
    assert [s["source"] for s in sources.source_specs(several)] == ["a.jsonl", "b.jsonl"]


@pytest.mark.slow
def test_the_filter_drops_a_clip_whose_text_was_not_said_and_resumes_from_its_scores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tiny_audio.data import filter as data_filter

    said = ["the weather is fine today", "open the door please", "seven green apples"]
    clips = []
    for i, text in enumerate(said):
        path = tmp_path / f"clip{i}.wav"
        subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(path)], check=True)
        written = "a completely different sentence here" if i == 1 else text
        clips.append(Utterance(f"clip{i}", str(path), written, 2.0))
    manifest = write_manifest(tmp_path / "all.jsonl", clips)
    out = tmp_path / "kept.jsonl"
    counts = data_filter.filter_manifest(manifest, out, peer="whisper:tiny.en")
    assert (counts["kept"], counts["dropped"]) == (2, 1)
    assert [u.id for u in read_manifest(out)] == ["clip0", "clip2"]
    dropped = [json.loads(line) for line in (tmp_path / "kept.dropped.jsonl").open()]
    assert dropped[0]["id"] == "clip1" and "WER" in dropped[0]["reason"]

    def no_peer(name: str) -> None:
        raise AssertionError("scored clips must not be scored again")

    monkeypatch.setattr("tiny_audio.recognizer.load_recognizer", no_peer)
    assert data_filter.filter_manifest(manifest, out, peer="whisper:tiny.en") == counts
