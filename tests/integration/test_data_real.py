"""`ta data real` on its smallest package (pocketsphinx-testdata, 1.8 MB from Debian)."""

from __future__ import annotations

from pathlib import Path

import soundfile as sf
from click.testing import CliRunner

from tiny_audio.cli import cli
from tiny_audio.data.manifest import read_manifest
from tiny_audio.data.real import _sphinx_transcripts


def test_sphinx_transcript_lines_are_cleaned(tmp_path: Path) -> None:
    listing = tmp_path / "t"
    listing.write_text(
        "<s> ten of clubs  </s> (001)\n<s> he was not an ill disposed young man </s> (x-0880)\n"
    )
    assert list(_sphinx_transcripts(listing)) == [
        ("001", "ten of clubs"),
        ("x-0880", "he was not an ill disposed young man"),
    ]


def test_real_builds_pocketsphinx_slices(tmp_path: Path) -> None:
    out = tmp_path / "real"
    result = CliRunner().invoke(
        cli, ["data", "real", "--out", str(out), "--slices", "librivox,cards,goforward"]
    )
    assert result.exit_code == 0, result.output
    counts = {
        name: len(read_manifest(out / f"{name}.jsonl"))
        for name in ("librivox", "cards", "goforward")
    }
    assert counts == {"librivox": 5, "cards": 5, "goforward": 1}
    assert "goforward: 1 utterance, 2.8 s" in result.output.splitlines()
    [goforward] = read_manifest(out / "goforward.jsonl")
    assert goforward.text == "go forward ten meters" and goforward.source == "goforward"
    for utterance in read_manifest(out / "librivox.jsonl"):
        info = sf.info(utterance.audio)
        assert info.samplerate == 16000 and abs(info.duration - utterance.duration) < 0.01
        assert utterance.text == utterance.text.strip() and "<s>" not in utterance.text
    assert (out / "real.json").is_file()


def test_unknown_slice_is_one_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["data", "real", "--out", str(tmp_path), "--slices", "podcasts"]
    )
    assert result.exit_code == 1 and "unknown slice podcasts" in result.output
