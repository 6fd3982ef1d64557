"""`ta eval`: run recognizers over dataset sources, score them the Open ASR Leaderboard way,
write predictions and metrics per (model, dataset), and print one comparison table.

Timing follows the leaderboard: each batch is timed from the waveforms in memory (features
included) to the texts out; decoding the audio files is done beforehand by loader threads and
is not timed; one untimed warm-up call comes first. RTFx = audio seconds / timed seconds.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import re
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tiny_audio.audio import SAMPLE_RATE, load_audio
from tiny_audio.evaluate.metrics import ErrorCounts, char_errors, rtfx, word_errors
from tiny_audio.normalize import english_normalizer
from tiny_audio.recognizer import Recognizer

DEFAULT_OUTPUT_DIR = Path("outputs/eval")
PREDICTIONS_FILE = "predictions.jsonl"
METRICS_FILE = "metrics.json"
ALL_SLICES = "all"


@dataclass
class Prediction:
    """One utterance's outcome; `error` is set (and `hyp` empty) when the item failed."""

    id: str
    source: str
    ref: str
    hyp: str
    ref_norm: str
    hyp_norm: str
    wer: float | None
    cer: float | None
    ref_words: int
    substitutions: int
    insertions: int
    deletions: int
    duration: float
    latency: float | None
    error: str | None = None


@dataclass
class _Loaded:
    utterance: Any
    waveform: np.ndarray | None
    error: str | None


def slug(name: str, parts: int = 2) -> str:
    """A directory name for a model or dataset name: "whisper:tiny.en" -> "whisper-tiny.en";
    a local path keeps its last `parts` parts ("data/synth/test.jsonl" -> "synth-test")."""
    path = Path(name).expanduser()
    if path.exists():
        path = path.resolve()
        tail = [*path.parent.parts[1:], path.stem if path.is_file() else path.name][-parts:]
        name = "-".join(tail)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "unnamed"


def distinct_slugs(names: list[str]) -> dict[str, str]:
    """slug() of each name, keeping more of a path's parts where two names would share a folder
    (runs/a/lact/best and runs/b/lact/best -> a-lact-best, b-lact-best)."""
    unique = list(dict.fromkeys(names))
    depth = max((len(Path(name).expanduser().resolve().parts) for name in unique), default=2)
    slugs = [slug(name) for name in unique]
    for parts in range(3, depth + 1):
        if len(set(slugs)) == len(slugs):
            break
        slugs = [slug(name, parts) for name in unique]
    return dict(zip(unique, slugs, strict=True))


def _describe_error(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _load(utterance: Any) -> _Loaded:
    try:
        return _Loaded(utterance, load_audio(utterance.audio), None)
    except Exception as error:  # a bad item is reported, never fatal
        return _Loaded(utterance, None, _describe_error(error))


def _prefetch(utterances: Iterable[Any], workers: int, depth: int) -> Iterator[_Loaded]:
    """Decode audio in `workers` threads, in order, with at most `depth` items in flight."""
    with ThreadPoolExecutor(max_workers=max(workers, 1)) as pool:
        pending: deque[Future[_Loaded]] = deque()
        for utterance in utterances:
            pending.append(pool.submit(_load, utterance))
            if len(pending) >= depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def score(
    utterance: Any, hyp: str, duration: float, latency: float | None, error: str | None
) -> Prediction:
    """Normalize both texts and count word and character edits."""
    normalize = english_normalizer()
    ref = utterance.text or ""
    ref_norm = normalize(ref)
    hyp_norm = normalize(hyp) if error is None else ""
    words = word_errors(ref_norm, hyp_norm) if error is None else ErrorCounts()
    chars = char_errors(ref_norm, hyp_norm) if error is None else ErrorCounts()
    return Prediction(
        id=str(utterance.id),
        source=getattr(utterance, "source", None) or ALL_SLICES,
        ref=ref,
        hyp=hyp,
        ref_norm=ref_norm,
        hyp_norm=hyp_norm,
        wer=None if error else words.rate,
        cer=None if error else chars.rate,
        ref_words=len(ref_norm.split()),
        substitutions=words.substitutions,
        insertions=words.insertions,
        deletions=words.deletions,
        duration=duration,
        latency=latency,
        error=error,
    )


class _Transcriber:
    """Times `recognizer.transcribe` per batch; a failing batch is retried item by item so one
    bad clip costs only itself."""

    def __init__(self, recognizer: Recognizer, options: dict[str, Any]) -> None:
        self.recognizer = recognizer
        self.options = options

    def warm_up(self, waveform: np.ndarray) -> None:
        if getattr(self.recognizer, "needs_warmup", True):
            self.recognizer.transcribe([waveform], **self.options)

    def run(self, batch: list[_Loaded]) -> list[Prediction]:
        try:
            texts, seconds = self._timed([item.waveform for item in batch])  # type: ignore[misc]
        except Exception as error:
            if len(batch) == 1:
                return [self._failed(batch[0], error)]
            return [prediction for item in batch for prediction in self.run([item])]
        latency = seconds / len(batch)
        return [
            score(item.utterance, text, _seconds(item.waveform), latency, None)
            for item, text in zip(batch, texts, strict=True)
        ]

    def _timed(self, waveforms: list[np.ndarray]) -> tuple[list[str], float]:
        start = time.perf_counter()
        texts = self.recognizer.transcribe(waveforms, **self.options)
        seconds = time.perf_counter() - start
        if len(texts) != len(waveforms):
            raise RuntimeError(f"{len(texts)} texts for {len(waveforms)} clips")
        return [str(text) for text in texts], seconds

    def _failed(self, item: _Loaded, error: BaseException) -> Prediction:
        return score(item.utterance, "", _seconds(item.waveform), None, _describe_error(error))


def _seconds(waveform: np.ndarray | None) -> float:
    return 0.0 if waveform is None else len(waveform) / SAMPLE_RATE


def evaluate(
    recognizer: Recognizer,
    utterances: Iterable[Any],
    *,
    batch_size: int = 1,
    num_beams: int = 1,
    workers: int = 1,
    on_item: Callable[[int], None] | None = None,
) -> list[Prediction]:
    """Transcribe and score every utterance, in input order; failures come back as predictions
    with `error` set. `on_item(count)` reports progress."""
    transcriber = _Transcriber(recognizer, {"num_beams": num_beams, "batch_size": batch_size})
    predictions: dict[int, Prediction] = {}
    batch: list[tuple[int, _Loaded]] = []
    warmed = False

    def record(results: dict[int, Prediction]) -> None:
        predictions.update(results)
        if on_item is not None:
            on_item(len(results))

    def flush() -> None:
        outcomes = transcriber.run([item for _, item in batch])
        record(dict(zip([index for index, _ in batch], outcomes, strict=True)))
        batch.clear()

    for index, item in enumerate(
        _prefetch(utterances, workers, depth=2 * max(workers, batch_size))
    ):
        if item.error is not None:
            record({index: score(item.utterance, "", 0.0, None, item.error)})
            continue
        if not warmed:
            # A failing warm-up is not recorded: the timed call fails the same way and is.
            with contextlib.suppress(Exception):
                transcriber.warm_up(item.waveform)  # type: ignore[arg-type]
            warmed = True
        batch.append((index, item))
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return [predictions[index] for index in sorted(predictions)]


def summarize(predictions: list[Prediction]) -> dict[str, Any]:
    """Corpus figures overall and per slice (the utterance's "source")."""
    by_slice: dict[str, list[Prediction]] = defaultdict(list)
    for prediction in predictions:
        by_slice[prediction.source].append(prediction)
    summary = _figures(predictions)
    if set(by_slice) != {ALL_SLICES}:
        summary["slices"] = {name: _figures(group) for name, group in sorted(by_slice.items())}
    return summary


def _figures(predictions: list[Prediction]) -> dict[str, Any]:
    scored = [p for p in predictions if p.error is None]
    words = ErrorCounts()
    chars = ErrorCounts()
    for prediction in scored:
        words = words + word_errors(prediction.ref_norm, prediction.hyp_norm)
        chars = chars + char_errors(prediction.ref_norm, prediction.hyp_norm)
    audio_seconds = sum(p.duration for p in scored)
    transcription_seconds = sum(p.latency or 0.0 for p in scored)
    reference_words = max(words.reference_length, 1)
    return {
        "n": len(predictions),
        "scored": len(scored),
        "failed": len(predictions) - len(scored),
        "wer": words.rate,
        "cer": chars.rate,
        "substitution_rate": words.substitutions / reference_words,
        "insertion_rate": words.insertions / reference_words,
        "deletion_rate": words.deletions / reference_words,
        "words": words.as_dict(),
        "reference_words": words.reference_length,
        "audio_seconds": audio_seconds,
        "transcription_seconds": transcription_seconds,
        "rtfx": rtfx(audio_seconds, transcription_seconds),
    }


def write_run(directory: Path, predictions: list[Prediction], metrics: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / PREDICTIONS_FILE, "w") as file:
        for prediction in predictions:
            file.write(json.dumps(asdict(prediction), ensure_ascii=False) + "\n")
    (directory / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")


def run_eval(
    models: list[str],
    datasets: list[str],
    *,
    output_dir: Path,
    split: str = "test",
    max_samples: int | None = None,
    batch_size: int = 1,
    num_beams: int = 1,
    workers: int = 1,
    console: Console | None = None,
) -> list[dict[str, Any]]:
    """Evaluate every model on every dataset; returns the metrics of each pair."""
    from tiny_audio.data.sources import load_source
    from tiny_audio.recognizer import load_recognizer

    console = console or Console(stderr=True)
    folders = distinct_slugs(models) | distinct_slugs(datasets)
    results = []
    for model in models:
        with console.status(f"loading {model}"):
            recognizer = load_recognizer(model)
        for dataset in datasets:
            with _progress(console) as progress:
                task = progress.add_task(f"{model} on {dataset}", total=max_samples)
                predictions = evaluate(
                    recognizer,
                    load_source(dataset, split=split, max_samples=max_samples),
                    batch_size=batch_size,
                    num_beams=num_beams,
                    workers=workers,
                    on_item=functools.partial(progress.advance, task),
                )
            metrics = {
                "model": model,
                "dataset": dataset,
                "split": split,
                "options": {"batch_size": batch_size, "num_beams": num_beams, "workers": workers},
                "normalizer": "whisper-english (Open ASR Leaderboard)",
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "machine": machine_description(),
                **summarize(predictions),
            }
            write_run(output_dir / folders[model] / folders[dataset], predictions, metrics)
            results.append(metrics)
        del recognizer
    (output_dir / "summary.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def machine_description() -> str:
    """CPU model and core count, e.g. "AMD EPYC 9554 64-Core Processor, 2 CPUs"."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu}, {os.cpu_count()} CPUs"


def comparison_table(results: list[dict[str, Any]]) -> Table:
    table = Table(title="WER (Whisper English normalizer, corpus-level)")
    for column in ("model", "dataset", "slice"):
        table.add_column(column, overflow="fold")
    for column in ("n", "failed", "WER %", "CER %", "ins %", "RTFx"):
        table.add_column(column, justify="right")

    def row(result: dict[str, Any], model: str, dataset: str, name: str) -> None:
        table.add_row(
            model,
            dataset,
            name,
            str(result["n"]),
            str(result["failed"]),
            f"{100 * result['wer']:.2f}",
            f"{100 * result['cer']:.2f}",
            f"{100 * result['insertion_rate']:.2f}",
            f"{result['rtfx']:.1f}" if result["rtfx"] >= 10 else f"{result['rtfx']:.2f}",
        )

    for result in results:
        row(result, result["model"], result["dataset"], ALL_SLICES)
        slices = result.get("slices", {})
        for name, figures in slices.items() if len(slices) > 1 else ():
            row(figures, "", "", name)
        table.add_section()
    return table
