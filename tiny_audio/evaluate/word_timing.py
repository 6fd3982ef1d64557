"""`ta bench-words`: how far word timestamps fall from where speech really starts and ends.

Real clips are joined with known silences into one long recording (`evaluate.joined`). Every
system transcribes it with word timestamps; at each clip boundary its first word's start and last word's end are compared with
the clip's own. A word belongs to the clip whose stretch, reaching halfway into the silences on
either side, holds its midpoint; a clip that gets no word is counted as missed.

Besides models and peers, the system REFERENCE_TEXT is the aligner alone: Whisper's alignment
of the clips' own texts, window by window as a tiny-audio model cuts the recording (at pauses),
so that recognition errors do not count against it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tiny_audio.audio import SAMPLE_RATE
from tiny_audio.evaluate.joined import Recording, Span, joined_recording_command, record, report
from tiny_audio.model.alignment import Word

REFERENCE_TEXT = "reference-text"


def boundary_errors(words: list[Word], spans: list[Span]) -> dict[str, Any]:
    """Mean absolute error (s) of the first word's start and the last word's end of each clip."""
    starts, ends = [], []
    for index, span in enumerate(spans):
        low = (spans[index - 1].end + span.start) / 2 if index else -np.inf
        high = (span.end + spans[index + 1].start) / 2 if index + 1 < len(spans) else np.inf
        inside = [w for w in words if low <= (w.start + w.end) / 2 < high]
        if inside:
            starts.append(abs(inside[0].start - span.start))
            ends.append(abs(inside[-1].end - span.end))
    if not starts:
        return {"clips": len(spans), "missed": len(spans)}
    return {
        "clips": len(spans),
        "missed": len(spans) - len(starts),
        "start_mae_s": float(np.mean(starts)),
        "end_mae_s": float(np.mean(ends)),
        "mae_s": float(np.mean(starts + ends)),
    }


def reference_words(waveform: np.ndarray, spans: list[Span]) -> list[Word]:
    """The aligner on the clips' own texts, in the windows a tiny-audio model hears."""
    from tiny_audio.model.alignment import load_aligner
    from tiny_audio.model.windows import VAD_WINDOW_S, Segment, speech_windows

    segments = []
    for begin, end, _ in speech_windows(waveform, VAD_WINDOW_S) or []:
        start, stop = begin / SAMPLE_RATE, end / SAMPLE_RATE
        texts = [s.text for s in spans if start <= (s.start + s.end) / 2 < stop]
        segments.append(Segment(start, stop, " ".join(texts)))
    return load_aligner().align_segments(waveform, segments)


def measure(system: str, waveform: np.ndarray, spans: list[Span]) -> dict[str, Any]:
    from tiny_audio.recognizer import load_recognizer
    from tiny_audio.timestamps import transcribe_timed

    if system == REFERENCE_TEXT:
        words = reference_words(waveform, spans)
    else:
        recognizer = load_recognizer(system)
        timed = transcribe_timed(recognizer, [waveform], batch_size=8, word_timestamps=True)[0]
        words = timed.words or []
    return {
        "system": system,
        "text": " ".join(word.word for word in words),
        **boundary_errors(words, spans),
        "words": [vars(word) for word in words],
    }


def markdown_table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| system | start error (s) | end error (s) | mean (s) | clips missed |",
        "|---|---|---|---|---|",
    ]
    for result in results:
        if "mae_s" not in result:
            rows.append(f"| {result['system']} | - | - | - | all {result['clips']} |")
            continue
        rows.append(
            f"| {result['system']} | {result['start_mae_s']:.3f} | {result['end_mae_s']:.3f} | "
            f"{result['mae_s']:.3f} | {result['missed']} of {result['clips']} |"
        )
    return "\n".join(rows)


@joined_recording_command(
    "bench-words",
    systems=(REFERENCE_TEXT, "default", "whisper:tiny.en"),
    systems_help=f"A model or peer to time words with, or {REFERENCE_TEXT} (repeatable).",
    clips=40,
    output_help="The joined recording, its clip spans and every system's words.",
)
def bench_words_command(systems: tuple[str, ...], recording: Recording, output_dir: Path) -> None:
    """Word-time error at known clip boundaries in one long recording of real clips."""
    waveform, spans = record(output_dir, recording)
    results = [measure(system, waveform, spans) for system in systems]
    report(
        "bench-words",
        systems,
        recording,
        waveform,
        spans,
        {"spans": [vars(s) for s in spans], "results": results},
        markdown_table(results),
        output_dir,
    )
