"""`ta bench-words`: how far word timestamps fall from where speech really starts and ends.

Real clips, each trimmed to its speech by energy (a measure none of the systems uses), are
joined with known silences into one long recording. Every system transcribes it with word
timestamps; at each clip boundary its first word's start and last word's end are compared with
the clip's own. A word belongs to the clip whose stretch, reaching halfway into the silences on
either side, holds its midpoint; a clip that gets no word is counted as missed.

Besides models and peers, the system REFERENCE_TEXT is the aligner alone: Whisper's alignment
of the clips' own texts, window by window as a tiny-audio model cuts the recording (at pauses),
so that recognition errors do not count against it.
"""

from __future__ import annotations

import json
import random
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np

from tiny_audio.audio import SAMPLE_RATE
from tiny_audio.errors import UserError
from tiny_audio.model.alignment import Word

GAPS_S = (0.5, 1.0, 1.5, 2.0)  # the silences between clips, in turn
FRAME_S = 0.01
TRIM_DB = 40.0  # a 10 ms frame this far below the clip's loudest is silence
MIN_WORDS = 3  # a clip of fewer words hardly has a first and a last
REFERENCE_TEXT = "reference-text"


@dataclass
class Span:
    start: float
    end: float
    text: str


def trim_silence(waveform: np.ndarray) -> np.ndarray:
    """`waveform` from its first to its last frame within TRIM_DB of its loudest."""
    hop = int(FRAME_S * SAMPLE_RATE)
    frames = waveform[: len(waveform) // hop * hop].reshape(-1, hop)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud = np.flatnonzero(level > level.max() - TRIM_DB)
    return waveform[loud[0] * hop : (loud[-1] + 1) * hop]


def build_recording(sources: list[str], clips: int, seed: int) -> tuple[np.ndarray, list[Span]]:
    """`clips` random clips of `sources`' test splits, trimmed, joined with GAPS_S silences
    in turn; the recording and where each clip lies in it."""
    from tiny_audio.audio import load_audio
    from tiny_audio.data.sources import load_source

    pool = [
        utterance
        for source in sources
        for utterance in load_source(source, split="test")
        if len((utterance.text or "").split()) >= MIN_WORDS
    ]
    if len(pool) < clips:
        raise UserError(
            f"{', '.join(sources)}: {len(pool)} clips of {MIN_WORDS}+ words, not {clips}"
        )
    chosen = random.Random(seed).sample(pool, clips)
    pieces: list[np.ndarray] = []
    spans: list[Span] = []
    position = 0
    for index, utterance in enumerate(chosen):
        if index:
            gap = np.zeros(int(GAPS_S[(index - 1) % len(GAPS_S)] * SAMPLE_RATE), np.float32)
            pieces.append(gap)
            position += len(gap)
        speech = trim_silence(load_audio(utterance.audio))
        pieces.append(speech)
        spans.append(
            Span(
                position / SAMPLE_RATE, (position + len(speech)) / SAMPLE_RATE, utterance.text or ""
            )
        )
        position += len(speech)
    return np.concatenate(pieces), spans


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
    from tiny_audio.model.modeling import VAD_WINDOW_S, Segment
    from tiny_audio.model.windows import speech_windows

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


@click.command("bench-words")
@click.option(
    "-m",
    "--model",
    "systems",
    multiple=True,
    default=(REFERENCE_TEXT, "default", "whisper:tiny.en"),
    show_default=True,
    help=f"A model or peer to time words with, or {REFERENCE_TEXT} (repeatable).",
)
@click.option("-d", "--dataset", "sources", multiple=True, default=("games",), show_default=True,
              help="Where the real clips come from (test split; repeatable).")  # fmt: skip
@click.option("-n", "--clips", type=click.IntRange(min=2), default=40, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("outputs/bench-words"),
    show_default=True,
    help="The joined recording, its clip spans and every system's words.",
)
def bench_words_command(
    systems: tuple[str, ...], sources: tuple[str, ...], clips: int, seed: int, output_dir: Path
) -> None:
    """Word-time error at known clip boundaries in one long recording of real clips."""
    import soundfile as sf

    waveform, spans = build_recording(list(sources), clips, seed)
    output_dir.mkdir(parents=True, exist_ok=True)
    sf.write(output_dir / "recording.flac", waveform, SAMPLE_RATE)
    results = [measure(system, waveform, spans) for system in systems]
    (output_dir / "results.json").write_text(
        json.dumps({"spans": [vars(s) for s in spans], "results": results}, indent=1) + "\n"
    )
    flags = [f"-m {shlex.quote(s)}" for s in systems] + [f"-d {shlex.quote(s)}" for s in sources]
    click.echo(f"ta bench-words {' '.join(flags)} -n {clips} --seed {seed}")
    click.echo(f"{len(waveform) / SAMPLE_RATE:.0f} s of audio, {len(spans)} clips\n")
    click.echo(markdown_table(results))
    click.echo(f"\nthe recording and every word: {output_dir}")
