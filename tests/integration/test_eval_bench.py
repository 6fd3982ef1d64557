"""`ta bench`: each system measured in its own process on the same real clips, figures
appended to the benchmarks file inside this tool's own section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tiny_audio.cli import cli
from tiny_audio.data.manifest import read_manifest, write_manifest
from tiny_audio.errors import UserError
from tiny_audio.evaluate.bench import (
    _in_fresh_process,
    append_to_benchmarks,
    peak_rss_mib,
    peer_for,
)

HEADING = "## Evaluation: `ta bench`"


def test_append_keeps_other_sections_in_place(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\n## Data\n\nsynth: 7 min\n")
    append_to_benchmarks(path, "### run one\n")
    path.write_text(path.read_text() + "\n## Training\n\n12 steps/s\n")
    append_to_benchmarks(path, "### run two\n")
    text = path.read_text()
    assert text.index("## Data") < text.index(HEADING) < text.index("### run one")
    assert text.index("### run one") < text.index("### run two") < text.index("## Training")
    assert "synth: 7 min" in text and "12 steps/s" in text


def test_peer_has_the_models_encoder(tmp_path: Path) -> None:
    for encoder, peer in (("whisper-tiny.en", "whisper:tiny.en"), ("whisper-base", "whisper:base")):
        (tmp_path / "config.json").write_text(
            json.dumps({"model_type": "tiny_audio", "audio_encoder": encoder})
        )
        assert peer_for(str(tmp_path)) == peer
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "tiny_audio", "audio_encoder": "hubert"})
    )
    with pytest.raises(UserError, match="pass --peer"):
        peer_for(str(tmp_path))


def _child_peak() -> dict[str, float]:
    return {"peak_rss_mib": peak_rss_mib()}


def test_peak_rss_of_a_fresh_process_is_its_own() -> None:
    # The parent touches 600 MiB first; the spawned child must not inherit that peak.
    ballast = bytearray(600 * 1024 * 1024)
    ballast[::4096] = b"x" * len(ballast[::4096])
    assert peak_rss_mib() > 600
    assert _in_fresh_process(_child_peak)["peak_rss_mib"] < 400
    del ballast


@pytest.mark.slow
def test_bench_measures_both_systems_and_appends(tmp_path: Path, real_cards: Path) -> None:
    manifest = tmp_path / "clips.jsonl"
    write_manifest(manifest, read_manifest(real_cards)[:3])
    benchmarks, output = tmp_path / "BENCHMARKS.md", tmp_path / "bench.json"
    arguments = ["bench", "-m", "pocketsphinx", "--peer", "whisper:tiny.en", "-d", str(manifest)]
    arguments += ["--batch-size", "2", "--benchmarks", str(benchmarks), "-o", str(output)]
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 0, result.output
    figures = json.loads(output.read_text())
    assert [system["name"] for system in figures["systems"]] == ["pocketsphinx", "whisper:tiny.en"]
    for system in figures["systems"]:
        assert system["clips"] == 3 and system["audio_seconds"] > 3
        assert system["rtfx_batch1"] > 0 and system["rtfx_batched"] > 0
        assert system["first_token_ms"] > 0
        assert 30 < system["peak_rss_mib"] < 8192
        assert 0 <= system["wer"] < 0.6
    # separate processes: each peak RSS is its own system's, so they differ
    assert figures["systems"][0]["peak_rss_mib"] != figures["systems"][1]["peak_rss_mib"]
    ratio = figures["systems"][0]["rtfx_batch1"] / figures["systems"][1]["rtfx_batch1"]
    assert figures["ratio"]["rtfx_batch1"] == pytest.approx(ratio)
    text = benchmarks.read_text()
    assert HEADING in text and "| pocketsphinx |" in text and "| whisper:tiny.en |" in text
    assert "ta bench -m pocketsphinx --peer whisper:tiny.en" in text  # the command is recorded
