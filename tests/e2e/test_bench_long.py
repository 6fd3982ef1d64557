"""`ta bench-long`: a tiny-audio model is scored with windows at pauses of each length asked for
and with fixed windows, a peer its own way, on one recording of real clips joined with silences."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tiny_audio.cli import cli


@pytest.mark.slow
def test_bench_long_scores_each_windowing_of_a_model_and_a_peer_once(
    tmp_path: Path, real_cards: Path
) -> None:
    output = tmp_path / "bench-long"
    arguments = ["bench-long", "-m", "default", "-m", "whisper:tiny.en"]
    arguments += ["-d", str(real_cards), "-n", "3", "-o", str(output)]
    arguments += ["--vad-window", "2", "--vad-window", "8"]
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 0, result.output
    assert f"-d {real_cards} -n 3 --seed 0 --split test" in result.output  # how to remake it
    assert "| default | pauses (VAD, up to 2 s) |" in result.output
    assert "| default | fixed |" in result.output
    figures = json.loads((output / "results.json").read_text())
    runs = [(r["system"], r["windows"]) for r in figures["results"]]
    assert runs == [
        ("default", "pauses (VAD, up to 2 s)"),
        ("default", "pauses (VAD, up to 8 s)"),
        ("default", "fixed"),
        ("whisper:tiny.en", "its own"),
    ]
    for run in figures["results"]:
        assert run["words_said"] >= 6 and run["words_written"] > 0 and run["rtfx"] > 0
    # Whisper hears these three card names almost word for word.
    assert figures["results"][3]["wer"] < 0.5
    assert (output / "recording.flac").is_file()
