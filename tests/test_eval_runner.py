"""`ta eval` end to end with real peers on real human speech (the `cards` and `goforward`
slices of `ta data real`), and the promise that a bad item is recorded, never fatal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tiny_audio.cli import cli
from tiny_audio.data.manifest import Utterance, read_manifest, write_manifest
from tiny_audio.evaluate.runner import distinct_slugs, evaluate, slug, summarize

SLICES = ("cards", "goforward")
PREDICTION_KEYS = {
    "id", "source", "ref", "hyp", "ref_norm", "hyp_norm", "wer", "cer", "ref_words",
    "substitutions", "insertions", "deletions", "duration", "latency", "error",
}  # fmt: skip


@pytest.fixture(scope="module")
def real_utterances(tmp_path_factory: pytest.TempPathFactory) -> list[Utterance]:
    """Six real recordings: the cached `ta data real` build, or a fresh build of two slices."""
    from tiny_audio.data.real import build_real
    from tiny_audio.data.sources import data_home

    folder = data_home() / "real"
    if not all((folder / f"{name}.jsonl").is_file() for name in SLICES):
        folder = tmp_path_factory.mktemp("real")
        build_real(folder, list(SLICES))
    return [u for name in SLICES for u in read_manifest(folder / f"{name}.jsonl")]


@pytest.fixture
def real_manifest(real_utterances: list[Utterance], tmp_path: Path) -> Path:
    manifest = tmp_path / "data" / "clips.jsonl"
    manifest.parent.mkdir()
    write_manifest(manifest, real_utterances)
    return manifest


@pytest.mark.slow
def test_eval_command_writes_predictions_metrics_and_table(
    real_manifest: Path, tmp_path: Path
) -> None:
    out = tmp_path / "eval"
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        cli,
        [
            "eval",
            "-m",
            "pocketsphinx",
            "-d",
            str(real_manifest),
            "-o",
            str(out),
            "--batch-size",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    run = out / "pocketsphinx" / slug(str(real_manifest))
    predictions = [
        json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()
    ]
    assert len(predictions) == 6
    assert all(set(p) == PREDICTION_KEYS and p["error"] is None for p in predictions)
    assert all(p["duration"] > 0.5 and p["latency"] > 0 for p in predictions)
    goforward = next(p for p in predictions if p["id"] == "goforward")
    assert goforward["ref_norm"] == "go forward 10 meters"  # numbers normalized on the reference
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["model"] == "pocketsphinx" and metrics["n"] == 6 and metrics["failed"] == 0
    assert set(metrics["slices"]) == set(SLICES)
    assert metrics["slices"]["cards"]["n"] == 5
    assert metrics["wer"] < 0.5  # PocketSphinx knows these command-style recordings well
    assert metrics["rtfx"] > 0
    assert "pocketsphinx" in result.output and "cards" in result.output and "WER" in result.output


@pytest.mark.slow
def test_faster_whisper_batched_matches_batch_one(real_utterances: list[Utterance]) -> None:
    from tiny_audio.recognizer import load_recognizer

    recognizer = load_recognizer("whisper:tiny.en")
    one = evaluate(recognizer, real_utterances, batch_size=1)
    batched = evaluate(recognizer, real_utterances, batch_size=4)
    assert [p.hyp for p in one] == [p.hyp for p in batched]
    summary = summarize(one)
    assert summary["failed"] == 0
    assert summary["slices"]["goforward"]["wer"] == 0.0
    assert summary["wer"] < 0.35


def test_failing_items_are_recorded_and_counted(
    real_utterances: list[Utterance], tmp_path: Path
) -> None:
    from tiny_audio.recognizer import load_recognizer

    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00not really a wave file")
    utterances = [
        real_utterances[-1],  # goforward
        Utterance("corrupt", str(corrupt), "anything", source="broken"),
        Utterance("missing", str(tmp_path / "nowhere.flac"), "anything", source="broken"),
        real_utterances[0],
    ]
    predictions = evaluate(load_recognizer("pocketsphinx"), utterances, batch_size=2)
    assert [p.id for p in predictions] == ["goforward", "corrupt", "missing", real_utterances[0].id]
    errors = {p.id: p.error for p in predictions}
    assert errors["goforward"] is None and errors[real_utterances[0].id] is None
    assert "not a readable audio file" in (errors["corrupt"] or "")
    assert "no such file" in (errors["missing"] or "")
    summary = summarize(predictions)
    assert summary["n"] == 4 and summary["failed"] == 2 and summary["scored"] == 2
    assert summary["slices"]["broken"]["failed"] == 2
    assert summary["slices"]["goforward"]["wer"] == 0.0


def test_output_folders_are_distinct_for_runs_with_the_same_last_parts(tmp_path: Path) -> None:
    first, second = tmp_path / "6k" / "lact" / "best", tmp_path / "aug" / "lact" / "best"
    first.mkdir(parents=True)
    second.mkdir(parents=True)
    assert slug(str(first)) == slug(str(second)) == "lact-best"
    folders = distinct_slugs([str(first), str(second), "whisper:tiny.en", str(first)])
    assert folders == {
        str(first): "6k-lact-best",
        str(second): "aug-lact-best",
        "whisper:tiny.en": "whisper-tiny.en",
    }
    assert distinct_slugs([str(first), "whisper:tiny.en"])[str(first)] == "lact-best"
