"""`ta transcribe` as a careless or unlucky user meets it: same-named files in two folders, a
folder, options out of range, a file cut short, a full disk. Each gets one clear line, and no
transcript is lost or overwritten. A tiny random model stands in for a trained one: these tests
are about files and messages, not about what the text says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers import save_tiny_model, small_disk, tone_file

from tiny_audio.cli import cli


@pytest.fixture(scope="module")
def tiny_model(tiny_parts: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(save_tiny_model(tmp_path_factory.mktemp("tiny") / "model", tiny_parts))


def transcribe(*arguments: str) -> Result:
    return CliRunner().invoke(cli, ["transcribe", *arguments, "--max-new-tokens", "3"])


def lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def test_same_names_in_two_folders_get_an_output_each(
    tiny_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    tone_file(Path("d1/clip.flac"), 300)
    tone_file(Path("d2/clip.flac"), 600)
    result = transcribe(
        "d1/clip.flac", "d2/clip.flac", "-m", tiny_model, "-o", "out", "--format", "json"
    )
    assert result.exit_code == 0, result.output
    # Before: one out/clip.flac.json, holding d2's transcript.
    written = sorted(str(path) for path in Path("out").rglob("*.json"))
    assert written == ["out/d1/clip.flac.json", "out/d2/clip.flac.json"]
    for folder in ("d1", "d2"):
        output = Path(f"out/{folder}/clip.flac.json")
        assert json.loads(output.read_text())["file"] == f"{folder}/clip.flac"
        assert f"{folder}/clip.flac -> {output}" in result.stdout.splitlines()


def test_a_folder_stands_for_every_audio_file_below_it(tiny_model: str, tmp_path: Path) -> None:
    folder = tmp_path / "recordings"
    first, second = tone_file(folder / "b.wav", 300), tone_file(folder / "a" / "z.flac", 500)
    (folder / "notes.txt").write_text("not audio")
    (tmp_path / "empty").mkdir()
    result = transcribe(str(folder), str(tmp_path / "empty"), "-m", tiny_model, "--format", "json")
    transcribed = [json.loads(line)["file"] for line in result.stdout.splitlines()]
    assert transcribed == [str(second), str(first)]  # sorted; the text file left alone
    # Before: "skipped ...: no such file" for both folders.
    assert lines(result.stderr, "skipped") == [
        f"skipped {tmp_path / 'empty'}: a folder with no audio files "
        "(.aiff, .au, .flac, .m4a, .mp3, .ogg, .opus, .wav)"
    ]
    assert result.exit_code == 1


@pytest.mark.timeout(120)  # before, --chunk-length-s 0.001 ran for minutes on one second
@pytest.mark.parametrize(
    "option,message",
    [
        (["--batch-size", "0"], "Invalid value for '--batch-size': 0 is not in the range x>=1."),
        (["--num-beams", "0"], "Invalid value for '--num-beams': 0 is not in the range x>=1."),
        (["--max-new-tokens", "0"], "Invalid value for '--max-new-tokens': 0 is not in the range x>=1."),
        (["--max-new-tokens", "-5"], "Invalid value for '--max-new-tokens': -5 is not in the range x>=1."),
        (
            ["--chunk-length-s", "0.001"],
            "Invalid value for '--chunk-length-s': 0.001 is not in the range x>=1.0.",
        ),
        (
            ["--chunk-length-s", "4", "--stride-length-s", "2.5"],
            "Invalid value for '--stride-length-s': 2.5 s is more than half of --chunk-length-s 4",
        ),
    ],
)  # fmt: skip
def test_options_out_of_range_are_one_line(
    tiny_model: str, tmp_path: Path, option: list[str], message: str
) -> None:
    clip = tone_file(tmp_path / "clip.wav", 440)
    result = CliRunner().invoke(cli, ["transcribe", str(clip), "-m", tiny_model, *option])
    assert result.exit_code == 2
    assert lines(result.stderr, "Error") == [f"Error: {message}"]
    assert "Traceback" not in result.output


def test_truncated_wav_is_transcribed_with_a_one_line_warning(
    tiny_model: str, tmp_path: Path
) -> None:
    whole = tone_file(tmp_path / "whole.wav", 440, seconds=2.0)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    result = transcribe(str(cut), "-m", tiny_model, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["duration"] == pytest.approx(1.0, abs=0.01)
    # Before: no word that half the recording was missing.
    assert lines(result.stderr, "warning") == [
        f"warning: {cut}: truncated: the header promises 2.0 s of audio, the file holds 1.0 s"
    ]


def test_full_disk_keeps_what_was_written_and_says_so_in_one_line(
    tiny_model: str, tmp_path: Path
) -> None:
    clips = [tone_file(tmp_path / f"{name}.wav", 300 + 100 * i) for i, name in enumerate("abc")]
    with small_disk(tmp_path / "disk", free_pages=2) as disk:
        out = disk / "out"
        result = transcribe(*map(str, clips), "-m", tiny_model, "-o", str(out), "--batch-size", "1")
        # Before: a traceback after the whole run, a 0-byte c.wav.text, nothing on stdout.
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
        assert lines(result.stderr, "error") == [
            f"error: {out / 'c.wav.text'}: No space left on device; 2 of 3 transcripts were "
            "written before it"
        ]
        assert sorted(path.name for path in out.iterdir()) == ["a.wav.text", "b.wav.text"]
        assert all(path.read_text().endswith("\n") for path in out.iterdir())
        assert lines(result.stdout, str(tmp_path)) == [
            f"{clips[0]} -> {out / 'a.wav.text'}",
            f"{clips[1]} -> {out / 'b.wav.text'}",
        ]


def test_a_tone_holds_no_speech_unless_the_gate_is_off(tiny_model: str, tmp_path: Path) -> None:
    clip = tone_file(tmp_path / "tone.wav", 440, seconds=2.0)
    gated = transcribe(str(clip), "-m", tiny_model, "--format", "json")
    assert gated.exit_code == 0, gated.output
    assert json.loads(gated.stdout)["segments"] == []
    ungated = transcribe(str(clip), "-m", tiny_model, "--format", "json", "--no-vad")
    assert ungated.exit_code == 0, ungated.output
    (segment,) = json.loads(ungated.stdout)["segments"]
    assert segment["start"] == 0.0 and segment["end"] == pytest.approx(2.0)
