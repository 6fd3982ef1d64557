"""`ta bench-long`: one long recording of real speech, cut at pauses or into fixed windows.

Real clips of the test splits are joined with known silences (as `ta bench-words` joins them)
into one recording of several minutes. A tiny-audio model transcribes it twice, with windows
cut at pauses by the voice-activity detector and with fixed overlapping windows; any other
system once, its own way. Each run is scored against the clips' texts joined in order: WER,
words written against words said (a window that stops early shows here), and RTFx.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from tiny_audio.audio import SAMPLE_RATE
from tiny_audio.evaluate.word_timing import build_recording

# Window choice -> the options that make it; a system other than a tiny-audio model runs as is.
WINDOWING: dict[str, dict[str, Any]] = {"pauses (VAD)": {"vad": True}, "fixed": {"vad": False}}
OWN_WAY = "its own"


def measure(system: str, waveform: np.ndarray, reference: str) -> list[dict[str, Any]]:
    from tiny_audio.evaluate.bench import is_tiny_audio_model
    from tiny_audio.evaluate.metrics import corpus_counts
    from tiny_audio.normalize import english_normalizer
    from tiny_audio.recognizer import load_recognizer

    normalize = english_normalizer()
    recognizer = load_recognizer(system)
    recognizer.transcribe([waveform[:SAMPLE_RATE]])  # warm-up, untimed
    windowing = WINDOWING if is_tiny_audio_model(system) else {OWN_WAY: {}}
    results = []
    for name, options in windowing.items():
        started = time.perf_counter()
        text = recognizer.transcribe([waveform], **options)[0]
        seconds = time.perf_counter() - started
        said, written = normalize(reference), normalize(text)
        results.append(
            {
                "system": system,
                "windows": name,
                "wer": corpus_counts([(said, written)]).rate,
                "words_said": len(said.split()),
                "words_written": len(written.split()),
                "rtfx": len(waveform) / SAMPLE_RATE / seconds,
                "text": text,
            }
        )
    return results


def markdown_table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| system | windows | WER % | words written / said | RTFx |",
        "|---|---|---|---|---|",
    ]
    rows += [
        f"| {r['system']} | {r['windows']} | {100 * r['wer']:.1f} | "
        f"{r['words_written']} / {r['words_said']} | {r['rtfx']:.1f} |"
        for r in results
    ]
    return "\n".join(rows)


@click.command("bench-long")
@click.option("-m", "--model", "systems", multiple=True, default=("default", "whisper:tiny.en"),
              show_default=True, help="A model or peer (repeatable).")  # fmt: skip
@click.option("-d", "--dataset", "sources", multiple=True, default=("games",), show_default=True,
              help="Where the real clips come from (test split; repeatable).")  # fmt: skip
@click.option("-n", "--clips", type=click.IntRange(min=2), default=140, show_default=True,
              help="Clips joined: 140 game clips make about 10 minutes.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("outputs/bench-long"),
    show_default=True,
    help="The joined recording, its text and every system's transcript.",
)
def bench_long_command(
    systems: tuple[str, ...], sources: tuple[str, ...], clips: int, seed: int, output_dir: Path
) -> None:
    """WER and speed on one long recording of real clips, windows at pauses vs fixed."""
    import soundfile as sf

    waveform, spans = build_recording(list(sources), clips, seed)
    reference = " ".join(span.text for span in spans)
    output_dir.mkdir(parents=True, exist_ok=True)
    sf.write(output_dir / "recording.flac", waveform, SAMPLE_RATE)
    results = [result for system in systems for result in measure(system, waveform, reference)]
    (output_dir / "results.json").write_text(
        json.dumps({"reference": reference, "results": results}, indent=1) + "\n"
    )
    flags = [f"-m {shlex.quote(s)}" for s in systems] + [f"-d {shlex.quote(s)}" for s in sources]
    click.echo(f"ta bench-long {' '.join(flags)} -n {clips} --seed {seed}")
    click.echo(f"{len(waveform) / SAMPLE_RATE:.0f} s of audio, {len(spans)} clips\n")
    click.echo(markdown_table(results))
    click.echo(f"\nthe recording and every transcript: {output_dir}")
