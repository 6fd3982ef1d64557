"""`ta transcribe`: files and folders in, text (or JSON, or SRT / WebVTT subtitles) out, with
word times when asked; a bad file is reported and skipped. With -o each transcript is written
as soon as it is made."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tiny_audio.audio import AudioError, AudioWarning, duration_seconds, load_audio
from tiny_audio.errors import UserError
from tiny_audio.recognizer import fp32_option, model_option
from tiny_audio.subtitles import (
    DEFAULT_WORDS_PER_CUE,
    Cue,
    cues_from_segments,
    cues_from_words,
    to_srt,
    to_timed_lines,
    to_vtt,
)

if TYPE_CHECKING:
    from tiny_audio.timestamps import Timed

# Shorter windows hold no whole word, and an hour would take thousands of decoder calls.
MIN_CHUNK_SECONDS = 1.0


@dataclass
class Skipped:
    file: str
    reason: str


@dataclass
class Transcript:
    file: str
    duration: float
    timed: Timed

    def as_dict(self) -> dict[str, Any]:
        words = self.timed.words
        return {
            "file": self.file,
            "text": self.timed.text,
            "duration": self.duration,
            "segments": [vars(segment) for segment in self.timed.segments],
        } | ({} if words is None else {"words": [vars(word) for word in words]})

    def cues(self, words_per_cue: int) -> list[Cue]:
        if self.timed.words is None:
            return cues_from_segments(self.timed.segments)
        return cues_from_words(self.timed.words, words_per_cue)


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
    recognizer: Any,
    files: list[str],
    batch_size: int,
    options: dict[str, Any],
    word_timestamps: bool = False,
) -> Iterator[Transcript | Skipped]:
    """Each readable file's transcript, or why a file was skipped, batch by batch as they are
    made. A warning about a file (cut short, say) is printed as one line."""
    from rich.progress import Progress

    from tiny_audio.timestamps import transcribe_timed

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
            timed = transcribe_timed(recognizer, waves, batch_size, word_timestamps, **options)
            for name, wave, clip in zip(names, waves, timed):
                progress.advance(task)
                yield Transcript(name, duration_seconds(wave), clip)


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


def as_text(transcript: Transcript, words_per_cue: int) -> str:
    """The transcript, or with word times one "[start --> end] words" line per cue."""
    if transcript.timed.words is None:
        return transcript.timed.text + "\n"
    return to_timed_lines(transcript.cues(words_per_cue))


# --format -> the file's text, given the transcript and the words per cue.
FORMATTERS: dict[str, Callable[[Transcript, int], str]] = {
    "text": as_text,
    "json": lambda t, _: json.dumps(t.as_dict(), ensure_ascii=False) + "\n",
    "srt": lambda t, n: to_srt(t.cues(n)),
    "vtt": lambda t, n: to_vtt(t.cues(n)),
}


@click.command("transcribe")
@click.argument("files", nargs=-1, required=True)
@model_option
@fp32_option
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
@click.option(
    "--word-timestamps",
    is_flag=True,
    help="Time every word: subtitle cues of a few words, words in JSON, timed text lines.",
)
@click.option(
    "--words-per-cue",
    type=click.IntRange(min=1),
    default=None,
    help=f"Most words in one subtitle cue or text line (with --word-timestamps; default "
    f"{DEFAULT_WORDS_PER_CUE}).",
)
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write OUTPUT_DIR/<input path below the inputs' common folder>.<format> per "
              "input instead of printing.")  # fmt: skip
def transcribe_command(
    files: tuple[str, ...],
    model: str,
    fp32: bool,
    num_beams: int,
    max_new_tokens: int | None,
    chunk_length_s: float | None,
    stride_length_s: float | None,
    no_vad: bool,
    batch_size: int,
    prompt: str | None,
    output_format: str,
    word_timestamps: bool,
    words_per_cue: int | None,
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
    if words_per_cue is not None and not word_timestamps:
        raise click.BadParameter("needs --word-timestamps", param_hint="'--words-per-cue'")
    from tiny_audio.recognizer import load_recognizer

    inputs, empty_folders = expand_inputs(list(files))
    recognizer = load_recognizer(model, fast=not fp32)
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
    cue_words = words_per_cue or DEFAULT_WORDS_PER_CUE
    results = transcribe_files(recognizer, inputs, batch_size, options, word_timestamps)
    for result in itertools.chain(empty_folders, results):
        if isinstance(result, Skipped):
            skipped += 1
            click.echo(f"skipped {result.file}: {result.reason}", err=True)
            continue
        body = formatter(result, cue_words)
        if output_dir is not None:
            write_output(outputs[result.file], body, written, len(inputs))
            written += 1
            click.echo(f"{result.file} -> {outputs[result.file]}")
        elif output_format == "text" and len(inputs) > 1:
            # The name on a line of its own above timed lines, else before the text.
            click.echo(f"{result.file}:" + ("\n" if word_timestamps else " ") + body, nl=False)
        else:
            click.echo(body, nl=False)
    if skipped:
        sys.exit(1)
