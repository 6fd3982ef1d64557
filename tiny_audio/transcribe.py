"""`ta transcribe`: files and folders in, text (or JSON, or SRT subtitles) out; a bad file is
reported and skipped. With -o each transcript is written as soon as it is made."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from tiny_audio.audio import AudioError, AudioWarning, duration_seconds, load_audio
from tiny_audio.errors import UserError
from tiny_audio.recognizer import model_option

# Shorter windows hold no whole word, and an hour would take thousands of decoder calls.
MIN_CHUNK_SECONDS = 1.0


@dataclass
class Skipped:
    file: str
    reason: str


def srt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


def to_srt(segments: list[dict[str, Any]]) -> str:
    blocks = [
        f"{i}\n{srt_time(s['start'])} --> {srt_time(s['end'])}\n{s['text']}\n"
        for i, s in enumerate((s for s in segments if s["text"]), start=1)
    ]
    return "\n".join(blocks)


def expand_inputs(arguments: list[str]) -> tuple[list[str], list[Skipped]]:
    """The files to transcribe, each once: a file argument as given, a folder as every audio
    file below it, sorted; and the folders that hold no audio file."""
    from tiny_audio.data.sources import AUDIO_SUFFIXES

    files: list[str] = []
    empty = []
    for argument in arguments:
        path = Path(argument)
        if not path.is_dir():
            files.append(argument)
            continue
        found = [
            str(file)
            for file in sorted(path.rglob("*"))
            if file.suffix.lower() in AUDIO_SUFFIXES and file.is_file()
        ]
        files += found
        if not found:
            suffixes = ", ".join(sorted(AUDIO_SUFFIXES))
            empty.append(Skipped(argument, f"a folder with no audio files ({suffixes})"))
    unique: dict[str, str] = {}
    for file in files:
        unique.setdefault(os.path.abspath(file), file)
    return list(unique.values()), empty


def output_paths(files: list[str], output_dir: Path, output_format: str) -> dict[str, Path]:
    """OUTPUT_DIR/<path below the inputs' common folder>.<format>, so that d1/clip.flac and
    d2/clip.flac get d1/clip.flac.<format> and d2/clip.flac.<format>, not one file."""
    absolute = [os.path.abspath(file) for file in files]
    common = os.path.commonpath([os.path.dirname(file) for file in absolute]) if files else ""
    return {
        file: output_dir / f"{os.path.relpath(path, common)}.{output_format}"
        for file, path in zip(files, absolute, strict=True)
    }


def transcribe_files(
    recognizer: Any, files: list[str], batch_size: int, options: dict[str, Any]
) -> Iterator[dict[str, Any] | Skipped]:
    """Each readable file's result, or why a file was skipped, batch by batch as they are made.
    A warning about a file (cut short, say) is printed as one line."""
    from rich.progress import Progress

    segmenter = getattr(recognizer, "transcribe_segments", None)
    with Progress(transient=True, console=_stderr_console()) as progress:
        task = progress.add_task("transcribing", total=len(files))
        for start in range(0, len(files), batch_size):
            names, waves = [], []
            for name in files[start : start + batch_size]:
                try:
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always", AudioWarning)
                        waves.append(load_audio(name))
                    names.append(name)
                except AudioError as error:
                    progress.advance(task)
                    yield Skipped(name, str(error))
                for warning in caught:
                    click.echo(f"warning: {warning.message}", err=True)
            if not waves:
                continue
            if segmenter is not None:
                per_clip = segmenter(waves, batch_size=batch_size, **options)
                segments = [[vars(s) for s in clip] for clip in per_clip]
            else:
                texts = recognizer.transcribe(waves, **options)
                segments = [
                    [{"start": 0.0, "end": duration_seconds(w), "text": t}]
                    for w, t in zip(waves, texts)
                ]
            for name, wave, clip_segments in zip(names, waves, segments):
                progress.advance(task)
                yield {
                    "file": name,
                    "text": " ".join(s["text"] for s in clip_segments if s["text"]),
                    "duration": duration_seconds(wave),
                    "segments": clip_segments,
                }


def write_output(path: Path, text: str, written: int, total: int) -> None:
    """Write one transcript; on a full disk (or any write error) leave no partial file and say,
    in one line, what was already written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as error:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        raise UserError(
            f"{path}: {error.strerror or error}; {written} of {total} transcripts were written "
            "before it"
        ) from None


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


FORMATTERS = {
    "text": lambda result: result["text"] + "\n",
    "json": lambda result: json.dumps(result, ensure_ascii=False) + "\n",
    "srt": lambda result: to_srt(result["segments"]),
}


@click.command("transcribe")
@click.argument("files", nargs=-1, required=True)
@model_option
@click.option("--num-beams", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--max-new-tokens",
    type=click.IntRange(min=1),
    default=None,
    help="Default: scaled to the audio length.",
)
@click.option(
    "--chunk-length-s",
    type=click.FloatRange(min=MIN_CHUNK_SECONDS),
    default=None,
    help="Longest window of long audio (default: the model's own; 30 s for Whisper).",
)
@click.option(
    "--stride-length-s",
    type=click.FloatRange(min=0),
    default=None,
    help="Overlap between windows (at most half a window).",
)
@click.option(
    "--no-vad",
    is_flag=True,
    help="Fixed overlapping windows instead of cutting at pauses, and no speech gate.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--prompt", default=None, help="Context for the decoder, e.g. names to expect.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(sorted(FORMATTERS)),
    default="text",
    show_default=True,
)
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write OUTPUT_DIR/<input path below the inputs' common folder>.<format> per "
              "input instead of printing.")  # fmt: skip
def transcribe_command(
    files: tuple[str, ...],
    model: str,
    num_beams: int,
    max_new_tokens: int | None,
    chunk_length_s: float | None,
    stride_length_s: float | None,
    no_vad: bool,
    batch_size: int,
    prompt: str | None,
    output_format: str,
    output_dir: Path | None,
) -> None:
    """Transcribe audio FILES (wav, flac, ogg, mp3; any rate; mono or stereo); a folder stands
    for every audio file below it."""
    if (
        chunk_length_s is not None
        and stride_length_s is not None
        and stride_length_s > chunk_length_s / 2
    ):  # windows overlap by at most half their length
        raise click.BadParameter(
            f"{stride_length_s:g} s is more than half of --chunk-length-s {chunk_length_s:g}",
            param_hint="'--stride-length-s'",
        )
    from tiny_audio.recognizer import load_recognizer

    inputs, empty_folders = expand_inputs(list(files))
    recognizer = load_recognizer(model)
    given = {
        "max_new_tokens": max_new_tokens,
        "chunk_length_s": chunk_length_s,
        "stride_length_s": stride_length_s,
        "prompt": prompt,
        "vad": False if no_vad else None,
    }  # only what was asked for: a model that lacks an option names it in one line
    options = {"num_beams": num_beams} | {k: v for k, v in given.items() if v is not None}
    formatter = FORMATTERS[output_format]
    outputs = output_paths(inputs, output_dir, output_format) if output_dir else {}
    written, skipped = 0, 0
    results = transcribe_files(recognizer, inputs, batch_size, options)
    for result in itertools.chain(empty_folders, results):
        if isinstance(result, Skipped):
            skipped += 1
            click.echo(f"skipped {result.file}: {result.reason}", err=True)
        elif output_dir is not None:
            write_output(outputs[result["file"]], formatter(result), written, len(inputs))
            written += 1
            click.echo(f"{result['file']} -> {outputs[result['file']]}")
        elif output_format == "text" and len(inputs) > 1:
            click.echo(f"{result['file']}: {result['text']}")
        else:
            click.echo(formatter(result), nl=False)
    if skipped:
        sys.exit(1)
