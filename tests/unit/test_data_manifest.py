"""Manifests: round trip, relative paths, bad entries and bad audio reported and skipped."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from tiny_audio.cli import cli
from tiny_audio.data.manifest import Utterance, decoded, read_manifest, write_manifest
from tiny_audio.data.stats import corpus_stats


def tone(path: Path, seconds: float, rate: int = 16000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, 0.3 * np.sin(2 * np.pi * 220 * t), rate)
    return path


def test_round_trip_keeps_fields_and_stores_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "audio").mkdir()
    utterances = [
        Utterance(
            "a", str(tone(tmp_path / "audio" / "a.flac", 0.5)), "Hello there.", 0.5, "kal", "synth"
        ),
        Utterance("b", str(tone(tmp_path / "audio" / "b.wav", 0.25)), "Ünïcode, too.", 0.25),
        Utterance(
            "c",
            str(tone(tmp_path / "audio" / "c.wav", 0.25)),
            "At 9:45.",
            0.25,
            spoken="At nine forty-five.",
        ),
    ]
    manifest = write_manifest(tmp_path / "train.jsonl", utterances)
    lines = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]
    assert lines[0]["audio"] == "audio/a.flac"
    assert "speaker" not in lines[1] and "spoken" not in lines[1]
    assert lines[2]["spoken"] == "At nine forty-five."
    assert read_manifest(manifest) == utterances

    moved = tmp_path.parent / (tmp_path.name + "-moved")
    shutil.copytree(tmp_path, moved)
    again = read_manifest(moved / "train.jsonl")
    assert [u.audio for u in again] == [
        str(moved / "audio/a.flac"),
        str(moved / "audio/b.wav"),
        str(moved / "audio/c.wav"),
    ]
    assert all(Path(u.audio).is_file() for u in again)


def test_bad_lines_are_reported_and_skipped(tmp_path: Path, caplog) -> None:
    good = {"id": "ok", "audio": "ok.wav", "text": "fine", "duration": 1.0}
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        "\n".join(
            [
                json.dumps(good),
                "{not json",
                json.dumps({"id": "no-text", "audio": "x.wav", "duration": 1}),
                json.dumps(["a", "list"]),
                json.dumps({**good, "id": "bad-duration", "duration": "long"}),
                "",
                json.dumps({**good, "id": "ok2"}),
            ]
        )
        + "\n"
    )
    with caplog.at_level(logging.WARNING):
        ids = [u.id for u in read_manifest(manifest)]
    assert ids == ["ok", "ok2"]
    assert sum("skipped bad entry" in r.message for r in caplog.records) == 4
    assert "m.jsonl:2" in caplog.text


def test_a_line_that_is_not_utf8_is_reported_and_skipped(tmp_path: Path, caplog) -> None:
    lines = [
        json.dumps({"id": f"u{i}", "audio": f"{i}.wav", "text": "café", "duration": 1.0})
        for i in range(3)
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(b"\n".join(line.encode() for line in lines).replace(b"u1", b"u\xff1"))
    with caplog.at_level(logging.WARNING):
        utterances = read_manifest(manifest)
    assert [(u.id, u.text) for u in utterances] == [("u0", "café"), ("u2", "café")]
    assert "m.jsonl:2: skipped bad entry" in caplog.text and "utf-8" in caplog.text


def test_unreadable_audio_is_reported_and_skipped(tmp_path: Path, caplog) -> None:
    (tmp_path / "garbage.wav").write_bytes(b"RIFF not really a wave file")
    utterances = [
        Utterance("good", str(tone(tmp_path / "good.wav", 0.5)), "a", 0.5),
        Utterance("garbage", str(tmp_path / "garbage.wav"), "b", 1.0),
        Utterance("missing", str(tmp_path / "missing.flac"), "c", 1.0),
    ]
    with caplog.at_level(logging.WARNING):
        pairs = list(decoded(utterances))
    assert [u.id for u, _ in pairs] == ["good"]
    assert len(pairs[0][1]) == 8000
    assert "garbage" in caplog.text and "missing" in caplog.text

    figures = corpus_stats(utterances, check_audio=True)
    assert figures["utterances"] == 1 and figures["unreadable"] == ["garbage", "missing"]


def test_stats_command_writes_json_and_histogram(tmp_path: Path) -> None:
    utterances = [
        Utterance(
            f"u{i}",
            str(tone(tmp_path / f"u{i}.wav", 0.2 * (i + 1))),
            "x",
            round(0.2 * (i + 1), 3),
            f"spk{i % 2}",
            "synth" if i < 3 else "real",
        )
        for i in range(4)
    ]
    manifest = write_manifest(tmp_path / "test.jsonl", utterances)
    result = CliRunner().invoke(cli, ["data", "stats", str(manifest)])
    assert result.exit_code == 0, result.output
    figures = json.loads((tmp_path / "test-stats.json").read_text())
    assert figures["utterances"] == 4 and figures["speakers"] == 2
    assert figures["per_source"] == {"synth": 3, "real": 1}
    assert figures["seconds"] == 2.0
    assert (tmp_path / "test-durations.png").read_bytes().startswith(b"\x89PNG")


def test_stats_on_a_missing_manifest_is_one_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["data", "stats", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and "Traceback" not in result.output


def test_a_fraction_of_a_source_is_the_same_random_clips_every_time(tmp_path: Path) -> None:
    from tiny_audio.data.sources import load_spec
    from tiny_audio.errors import UserError

    clip = tone(tmp_path / "a.wav", 0.25)
    utterances = [Utterance(f"u{i:02d}", str(clip), f"clip {i}", 0.25) for i in range(20)]
    manifest = str(write_manifest(tmp_path / "train.jsonl", utterances))
    quarter = [u.id for u in load_spec({"source": manifest, "fraction": 0.25}, "train")]
    assert len(quarter) == 5 and len(set(quarter)) == 5
    assert quarter != ["u00", "u01", "u02", "u03", "u04"]  # drawn, not the first five
    assert quarter == [u.id for u in load_spec({"source": manifest, "fraction": 0.25}, "train")]
    assert len(load_spec({"source": manifest, "max_samples": 3}, "train")) == 3
    for wrong in (0, 1.5, "half"):
        with pytest.raises(UserError, match="fraction must be in"):
            load_spec({"source": manifest, "fraction": wrong}, "train")
