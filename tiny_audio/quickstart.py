"""`ta quickstart` (what `make run` runs): transcribe the real sample recordings with a model and
print each transcript beside its reference, with its word error rate."""

from __future__ import annotations

import time

import click

from tiny_audio.audio import SAMPLE_RATE
from tiny_audio.recognizer import model_option

SAMPLE_SLICES = ("real:librivox", "real:cards", "real:goforward")


@click.command("quickstart")
@model_option
def quickstart(model: str) -> None:
    """Transcribe the real sample clips (LibriVox, cards, go-forward) and score each one."""
    from rich.console import Console
    from rich.table import Table

    from tiny_audio.data.manifest import decoded
    from tiny_audio.data.sources import load_source
    from tiny_audio.evaluate.metrics import corpus_counts, word_errors
    from tiny_audio.normalize import english_normalizer
    from tiny_audio.recognizer import load_recognizer

    console = Console()
    clips = [pair for name in SAMPLE_SLICES for pair in decoded(load_source(name))]
    with console.status(f"loading {model}"):
        recognizer = load_recognizer(model)
    started = time.perf_counter()
    hypotheses = recognizer.transcribe([wave for _, wave in clips])
    elapsed = time.perf_counter() - started

    normalize = english_normalizer()
    table = Table("clip", "reference / transcript", "WER", show_lines=True)
    pairs = []
    for (utterance, _), hypothesis in zip(clips, hypotheses):
        pair = (normalize(utterance.text), normalize(hypothesis))
        pairs.append(pair)
        table.add_row(
            utterance.id,
            f"{utterance.text}\n[bold]{hypothesis}[/bold]",
            f"{100 * word_errors(*pair).rate:.0f}%",
        )
    console.print(table)
    audio_seconds = sum(len(wave) for _, wave in clips) / SAMPLE_RATE
    console.print(
        f"{len(clips)} clips, {audio_seconds:.0f} s of audio in {elapsed:.1f} s "
        f"(RTFx {audio_seconds / elapsed:.1f}); corpus WER {100 * corpus_counts(pairs).rate:.1f}% with {model}"
    )
