"""`ta bench-long`: one long recording of real speech, cut at pauses or into fixed windows.

Real clips of the test splits are joined with known silences (`evaluate.joined`) into one
recording of several minutes. A tiny-audio model transcribes it with windows cut at pauses by
the voice-activity detector, once for each longest window asked for (`--vad-window`, to choose
it on a dev split), and with fixed overlapping windows; any other system once, its own way. Each run is scored against the clips' texts joined in order: WER,
words written against words said (a window that stops early shows here), and RTFx.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from tiny_audio.audio import SAMPLE_RATE
from tiny_audio.evaluate.joined import Recording, joined_recording_command, record, report
from tiny_audio.model.windows import VAD_WINDOW_S

OWN_WAY = "its own"  # a system that takes no "vad" runs as is


def windowings(vad_windows: tuple[float, ...]) -> dict[str, dict[str, Any]]:
    """Window choice -> the transcribe options that make it: windows at pauses of each longest
    length, then fixed windows."""
    at_pauses = {
        f"pauses (VAD, up to {seconds:g} s)": {"vad": True, "chunk_length_s": seconds}
        for seconds in vad_windows
    }
    return at_pauses | {"fixed": {"vad": False}}


def measure(
    system: str, waveform: np.ndarray, reference: str, vad_windows: tuple[float, ...]
) -> list[dict[str, Any]]:
    from tiny_audio.evaluate.metrics import corpus_counts
    from tiny_audio.normalize import english_normalizer
    from tiny_audio.recognizer import load_recognizer

    normalize = english_normalizer()
    recognizer = load_recognizer(system)
    recognizer.transcribe([waveform[:SAMPLE_RATE]])  # warm-up, untimed
    windowing = windowings(vad_windows) if "vad" in recognizer.transcribe_options else {OWN_WAY: {}}
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


@click.option(
    "--vad-window",
    "vad_windows",
    type=click.FloatRange(min=1.0),
    multiple=True,
    default=(VAD_WINDOW_S,),
    show_default=True,
    help="Longest window cut at pauses, in seconds (repeatable: one run each).",
)
@joined_recording_command(
    "bench-long",
    systems=("default", "whisper:tiny.en"),
    systems_help="A model or peer (repeatable).",
    clips=140,
    clips_help="Clips joined: 140 game clips make about 10 minutes.",
    output_help="The joined recording, its text and every system's transcript.",
)
def bench_long_command(
    systems: tuple[str, ...],
    recording: Recording,
    output_dir: Path,
    vad_windows: tuple[float, ...],
) -> None:
    """WER and speed on one long recording of real clips, windows at pauses vs fixed."""
    waveform, spans = record(output_dir, recording)
    reference = " ".join(span.text for span in spans)
    results = [
        result for system in systems for result in measure(system, waveform, reference, vad_windows)
    ]
    report(
        "bench-long",
        systems,
        recording,
        waveform,
        spans,
        {"reference": reference, "results": results},
        markdown_table(results),
        output_dir,
    )
