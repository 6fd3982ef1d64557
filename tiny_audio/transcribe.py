"""`ta transcribe`: files in, text (or JSON, or SRT subtitles) out; a bad file is reported and skipped."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from tiny_audio.audio import AudioError, duration_seconds, load_audio
from tiny_audio.recognizer import model_option


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


def transcribe_files(
    recognizer: Any, files: list[str], batch_size: int, options: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Results for the readable files, and (file, reason) for the others."""
    from rich.progress import Progress

    results, failures = [], []
    segmenter = getattr(recognizer, "transcribe_segments", None)
    with Progress(transient=True, console=_stderr_console()) as progress:
        task = progress.add_task("transcribing", total=len(files))
        for start in range(0, len(files), batch_size):
            names, waves = [], []
            for name in files[start : start + batch_size]:
                try:
                    waves.append(load_audio(name))
                    names.append(name)
                except AudioError as error:
                    failures.append((name, str(error)))
                    progress.advance(task)
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
                text = " ".join(s["text"] for s in clip_segments if s["text"])
                results.append(
                    {
                        "file": name,
                        "text": text,
                        "duration": duration_seconds(wave),
                        "segments": clip_segments,
                    }
                )
                progress.advance(task)
    return results, failures


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
@click.option("--num-beams", default=1, show_default=True)
@click.option(
    "--max-new-tokens", type=int, default=None, help="Default: scaled to the audio length."
)
@click.option(
    "--chunk-length-s",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Window long audio (default: the model's max_audio_seconds; 30 s for Whisper).",
)
@click.option(
    "--stride-length-s",
    type=click.FloatRange(min=0),
    default=None,
    help="Overlap between windows.",
)
@click.option("--batch-size", default=8, show_default=True)
@click.option("--prompt", default=None, help="Context for the decoder, e.g. names to expect.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(sorted(FORMATTERS)),
    default="text",
    show_default=True,
)
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write FILE.<format> per input instead of printing.")  # fmt: skip
def transcribe_command(
    files: tuple[str, ...],
    model: str,
    num_beams: int,
    max_new_tokens: int | None,
    chunk_length_s: float | None,
    stride_length_s: float | None,
    batch_size: int,
    prompt: str | None,
    output_format: str,
    output_dir: Path | None,
) -> None:
    """Transcribe audio FILES (wav, flac, ogg, mp3; any rate; mono or stereo)."""
    from tiny_audio.recognizer import load_recognizer

    recognizer = load_recognizer(model)
    given = {
        "max_new_tokens": max_new_tokens,
        "chunk_length_s": chunk_length_s,
        "stride_length_s": stride_length_s,
        "prompt": prompt,
    }  # only what was asked for: a model that lacks an option names it in one line
    options = {"num_beams": num_beams} | {k: v for k, v in given.items() if v is not None}
    results, failures = transcribe_files(recognizer, list(files), batch_size, options)
    formatter = FORMATTERS[output_format]
    for result in results:
        if output_dir is not None:
            output_dir.mkdir(parents=True, exist_ok=True)
            (output_dir / f"{Path(result['file']).name}.{output_format}").write_text(
                formatter(result)
            )
        elif output_format == "text" and len(files) > 1:
            click.echo(f"{result['file']}: {result['text']}")
        else:
            click.echo(formatter(result), nl=False)
    for name, reason in failures:
        click.echo(f"skipped {name}: {reason}", err=True)
    if failures:
        sys.exit(1)
