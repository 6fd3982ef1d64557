"""`ta eval` end to end with real peers on real human speech (the `cards` and `goforward`
slices of `ta data real`), the promise that a bad item is recorded, never fatal, and that a run
with nothing scored is an error, not 0% WER; Ctrl-C and a full disk keep what was made."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result
from helpers import save_tiny_model, small_disk, tone_file, wait_until
from ports import free_port

from tiny_audio.cli import cli
from tiny_audio.data.manifest import Utterance, read_manifest, write_manifest
from tiny_audio.errors import UserError
from tiny_audio.evaluate.runner import (
    PREDICTIONS_FILE,
    RunFiles,
    distinct_slugs,
    evaluate,
    slug,
    summarize,
)
from tiny_audio.train.run_folder import METRICS

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
def test_whisper_peer_reads_as_faster_whisper_transcribe(real_utterances: list[Utterance]) -> None:
    """whisper:tiny.en, batched or not, gives the text of faster-whisper's own
    `WhisperModel.transcribe` (greedy, no timestamps, no temperature fallback) on real clips,
    on them joined into 28 s and past the 30 s window."""
    from tiny_audio.audio import SAMPLE_RATE, load_audio
    from tiny_audio.recognizer import load_recognizer

    clips = [load_audio(utterance.audio) for utterance in real_utterances]
    gap = np.zeros(int(0.3 * SAMPLE_RATE), np.float32)

    def joined(waveforms: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([piece for wave in waveforms for piece in (wave, gap)][:-1])

    long = joined(clips + clips)
    longer = joined([long, *clips[:3]])
    assert 20 < len(long) / SAMPLE_RATE <= 30 < len(longer) / SAMPLE_RATE
    audio = [*clips, long, longer]
    peer: Any = load_recognizer("whisper:tiny.en")
    expected = []
    for waveform in audio:
        segments, _ = peer.model.transcribe(
            waveform, language="en", beam_size=1, temperature=0.0, without_timestamps=True, condition_on_previous_text=False
        )  # fmt: skip
        expected.append(" ".join(segment.text.strip() for segment in segments))
    assert peer.transcribe(audio, batch_size=1) == expected
    assert peer.transcribe(audio, batch_size=4) == expected
    summary = summarize(evaluate(peer, real_utterances, batch_size=4))
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


# ---------------------------------------------------------------- nothing lost, nothing faked


@pytest.fixture(scope="module")
def tiny_model(tiny_parts: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(save_tiny_model(tmp_path_factory.mktemp("tiny") / "model", tiny_parts))


def _tone_manifest(path: Path, count: int, missing: int = 0) -> Path:
    """`count` half-second tones (and `missing` entries whose audio is not there)."""
    utterances = [
        Utterance(f"tone-{i:03d}", str(tone_file(path.parent / f"tone-{i:03d}.wav", 200 + 10 * i, 0.5)), "hello world", 0.5)
        for i in range(count)
    ] + [
        Utterance(f"gone-{i}", str(path.parent / f"gone-{i}.wav"), "hello world", 0.5)
        for i in range(missing)
    ]  # fmt: skip
    return write_manifest(path, utterances)


def _eval(*arguments: str) -> Result:
    return CliRunner(env={"COLUMNS": "200"}).invoke(cli, ["eval", *arguments])


def _run_folder(out: Path) -> Path:
    return next(out.rglob(PREDICTIONS_FILE)).parent


def _predictions(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / PREDICTIONS_FILE).read_text().splitlines()]


@pytest.mark.parametrize("case", ["empty manifest", "every audio file missing", "peer fails"])
def test_nothing_scored_is_an_error_not_zero_wer(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Deepgram with a key it rejects... here a port where nothing listens: every call fails.
    monkeypatch.setenv("DEEPGRAM_API_KEY", "fake")
    monkeypatch.setenv("DEEPGRAM_BASE_URL", f"http://127.0.0.1:{free_port()}")
    manifest = tmp_path / "data" / "set.jsonl"
    manifest.parent.mkdir()
    if case == "empty manifest":
        manifest.write_text("")
    else:
        _tone_manifest(manifest, *((0, 2) if case == "every audio file missing" else (2, 0)))
    result = _eval("-m", "deepgram", "-d", str(manifest), "-o", str(tmp_path / "eval"))
    # Before: exit 0 and "wer 0.0", which `ta analysis compare` then ranked best.
    assert result.exit_code == 1
    why = {
        "empty manifest": "no utterances",
        "every audio file missing": f"all 2 items failed (AudioError: {tmp_path}/data/gone-0.wav: "
        "no such file or directory)",
        "peer fails": "all 2 items failed (URLError: <urlopen error [Errno 111] Connection "
        "refused>)",
    }[case]
    assert (
        result.stderr.splitlines()[-1]
        == f"error: nothing was scored for deepgram on {manifest}: {why}"
    )
    metrics = json.loads((_run_folder(tmp_path / "eval") / METRICS).read_text())
    assert metrics["scored"] == 0 and metrics["complete"] is True
    assert metrics["wer"] is None and metrics["cer"] is None and metrics["rtfx"] is None
    assert "n/a" in result.stdout and "0.00" not in result.stdout


def test_failed_items_are_counted_and_said(tiny_model: str, tmp_path: Path) -> None:
    manifest = _tone_manifest(tmp_path / "set.jsonl", count=2, missing=1)
    result = _eval("-m", tiny_model, "-d", str(manifest), "-o", str(tmp_path / "eval"))
    assert result.exit_code == 0, result.output
    # Before: only a "1" in the table's failed column.
    assert [line for line in result.stderr.splitlines() if line.startswith("warning")] == [
        f"warning: 1 of 3 items of {tiny_model} on {manifest} failed and are not in its WER "
        f"(most often AudioError: {tmp_path}/gone-0.wav: no such file or directory)"
    ]
    metrics = json.loads((_run_folder(tmp_path / "eval") / METRICS).read_text())
    assert (metrics["n"], metrics["scored"], metrics["failed"]) == (3, 2, 1)
    assert metrics["wer"] is not None


def test_ctrl_c_keeps_the_predictions_and_the_same_command_continues(
    tiny_model: str, tmp_path: Path
) -> None:
    # Milliseconds a clip (no speech in a tone: the speech gate skips the model): enough to be
    # stopped part way.
    count = 2000
    manifest = _tone_manifest(tmp_path / "set.jsonl", count=count)
    out = tmp_path / "eval"
    arguments = ["-m", tiny_model, "-d", str(manifest), "-o", str(out), "--batch-size", "1"]
    run = subprocess.Popen(
        [sys.executable, "-m", "tiny_audio", "eval", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A test run started in the background inherits an ignored SIGINT: restore Ctrl-C.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    wait_until(
        lambda: list(out.rglob(PREDICTIONS_FILE)) and len(_predictions(_run_folder(out))) >= 3,
        600,
        lambda: "fewer than 3 predictions written",
        run,
        interval_s=0.05,
    )
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 130, stderr
    folder = _run_folder(out)
    kept = _predictions(folder)
    # Before: nothing was written until the end, so Ctrl-C kept nothing.
    assert 3 <= len(kept) < count and [p["id"] for p in kept] == [
        f"tone-{i:03d}" for i in range(len(kept))
    ]
    assert f"interrupted: the {len(kept)} predictions made so far are kept in {folder}" in stderr
    assert json.loads((folder / METRICS).read_text())["complete"] is False

    result = _eval(*arguments)
    assert result.exit_code == 0, result.output
    assert f"continuing from {len(kept)} predictions kept in {folder}" in result.stderr
    predictions = _predictions(folder)
    assert [p["id"] for p in predictions] == [f"tone-{i:03d}" for i in range(count)]
    assert predictions[: len(kept)] == kept  # taken over as they were, latencies included
    metrics = json.loads((folder / METRICS).read_text())
    assert metrics["n"] == metrics["scored"] == count and metrics["complete"] is True


def test_full_disk_during_eval_keeps_the_predictions_and_says_so(
    tiny_model: str, tmp_path: Path
) -> None:
    manifest = _tone_manifest(tmp_path / "data" / "set.jsonl", count=40)
    with small_disk(tmp_path / "disk", free_pages=3) as disk:
        out = disk / "eval"
        arguments = ["-m", tiny_model, "-d", str(manifest), "-o", str(out), "--batch-size", "1"]
        result = _eval(*arguments)
        # Before: a traceback after the whole run and a predictions.jsonl of 0 bytes.
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
        folder = _run_folder(out)
        kept = _predictions(folder)  # every line whole
        assert 0 < len(kept) < 40
        assert result.stderr.splitlines()[-1] == (
            f"error: {folder / PREDICTIONS_FILE}: No space left on device; the {len(kept)} "
            f"predictions made so far are kept in {folder}: make room and run the same command "
            "again to continue"
        )
        (disk / "filler").unlink()
        result = _eval(*arguments)
        assert result.exit_code == 0, result.output
        assert f"continuing from {len(kept)} predictions kept in {folder}" in result.stderr
        assert len(_predictions(folder)) == 40


def test_only_an_interrupted_run_of_the_same_command_is_continued(tmp_path: Path) -> None:
    metrics = {"model": "m", "dataset": "d", "split": "test", "options": {"num_beams": 1}}
    files = RunFiles(tmp_path / "run")
    files.start([], metrics)
    assert files.resumable(metrics) == {}  # nothing made yet
    other = {**metrics, "options": {"num_beams": 4}}
    with pytest.raises(UserError, match="holds an interrupted run with another num_beams"):
        files.resumable(other)
    files.finish([], metrics)
    assert files.resumable(other) == {}  # a finished run is made afresh
