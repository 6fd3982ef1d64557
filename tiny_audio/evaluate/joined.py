"""One long recording of real clips joined with known silences: what `ta bench-long` and
`ta bench-words` measure on, with the options and the report they share.

Each clip of the chosen split (test to report, dev to tune) is trimmed to its speech by energy (a measure none of the systems
uses), so where every clip starts and ends in the recording is known."""

from __future__ import annotations

import functools
import json
import random
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
import numpy as np

from tiny_audio.audio import SAMPLE_RATE
from tiny_audio.errors import UserError

GAPS_S = (0.5, 1.0, 1.5, 2.0)  # the silences between clips, in turn
FRAME_S = 0.01
TRIM_DB = 40.0  # a 10 ms frame this far below the clip's loudest is silence
MIN_WORDS = 3  # a clip of fewer words hardly has a first and a last
RECORDING_FILE = "recording.flac"
RESULTS_FILE = "results.json"

Command = TypeVar("Command", bound=Callable[..., None])


@dataclass
class Span:
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Recording:
    """Which clips make the recording: `clips` drawn with `seed` from `sources`' `split`."""

    sources: tuple[str, ...]
    clips: int
    seed: int
    split: str

    def flags(self) -> str:
        """The command-line options that remake this recording."""
        sources = " ".join(f"-d {shlex.quote(source)}" for source in self.sources)
        return f"{sources} -n {self.clips} --seed {self.seed} --split {self.split}"


def trim_silence(waveform: np.ndarray) -> np.ndarray:
    """`waveform` from its first to its last frame within TRIM_DB of its loudest."""
    hop = int(FRAME_S * SAMPLE_RATE)
    frames = waveform[: len(waveform) // hop * hop].reshape(-1, hop)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud = np.flatnonzero(level > level.max() - TRIM_DB)
    return waveform[loud[0] * hop : (loud[-1] + 1) * hop]


def build_recording(recording: Recording) -> tuple[np.ndarray, list[Span]]:
    """The recording's clips, trimmed, joined with GAPS_S silences in turn; the audio and where
    each clip lies in it."""
    from tiny_audio.audio import load_audio
    from tiny_audio.data.sources import load_source

    pool = [
        utterance
        for source in recording.sources
        for utterance in load_source(source, split=recording.split)
        if len((utterance.text or "").split()) >= MIN_WORDS
    ]
    if len(pool) < recording.clips:
        raise UserError(
            f"{', '.join(recording.sources)} ({recording.split}): {len(pool)} clips of "
            f"{MIN_WORDS}+ words, not {recording.clips}"
        )
    chosen = random.Random(recording.seed).sample(pool, recording.clips)
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


def joined_recording_command(
    name: str,
    *,
    systems: tuple[str, ...],
    systems_help: str,
    clips: int,
    clips_help: str | None = None,
    output_help: str,
) -> Callable[[Command], click.Command]:
    """The click command NAME with the options every joined-recording benchmark takes: systems
    (-m), and the recording's sources (-d), clips (-n), --seed and --split, which reach the
    command as one `recording`; an output folder (-o, default outputs/NAME)."""
    options = [
        click.option("-m", "--model", "systems", multiple=True, default=systems,
                     show_default=True, help=systems_help),
        click.option("-d", "--dataset", "sources", multiple=True, default=("games",),
                     show_default=True, help="Where the real clips come from (repeatable)."),
        click.option("-n", "--clips", type=click.IntRange(min=2), default=clips,
                     show_default=True, help=clips_help),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--split", type=click.Choice(["test", "dev"]), default="test",
                     show_default=True, help="dev to tune settings on, test to report."),
        click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path),
                     default=Path("outputs") / name, show_default=True, help=output_help),
    ]  # fmt: skip

    def decorate(function: Command) -> click.Command:
        @functools.wraps(function)
        def with_recording(
            sources: tuple[str, ...], clips: int, seed: int, split: str, **rest: Any
        ) -> None:
            function(recording=Recording(sources, clips, seed, split), **rest)

        command: Callable[..., None] = with_recording
        for option in reversed(options):
            command = option(command)
        return click.command(name)(command)

    return decorate


def record(output_dir: Path, recording: Recording) -> tuple[np.ndarray, list[Span]]:
    """The joined recording, built and written to OUTPUT_DIR, and its clip spans."""
    import soundfile as sf

    waveform, spans = build_recording(recording)
    output_dir.mkdir(parents=True, exist_ok=True)
    sf.write(output_dir / RECORDING_FILE, waveform, SAMPLE_RATE)
    return waveform, spans


def report(
    name: str,
    systems: tuple[str, ...],
    recording: Recording,
    waveform: np.ndarray,
    spans: list[Span],
    results: dict[str, Any],
    table: str,
    output_dir: Path,
) -> None:
    """Write RESULTS to OUTPUT_DIR and print the command line that remakes them, then TABLE."""
    (output_dir / RESULTS_FILE).write_text(json.dumps(results, indent=1) + "\n")
    models = " ".join(f"-m {shlex.quote(system)}" for system in systems)
    click.echo(f"ta {name} {models} {recording.flags()}")
    click.echo(f"{len(waveform) / SAMPLE_RATE:.0f} s of audio, {len(spans)} clips\n")
    click.echo(table)
    click.echo(f"\nthe recording and every result: {output_dir}")
