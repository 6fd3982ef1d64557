"""`ta eval`: run recognizers over dataset sources, score them the Open ASR Leaderboard way,
write predictions and metrics per (model, dataset), and print one comparison table.

Timing follows the leaderboard: each batch is timed from the waveforms in memory (features
included) to the texts out; decoding the audio files is done beforehand by loader threads and
is not timed; one untimed warm-up call comes first. RTFx = audio seconds / timed seconds.

Predictions are written a batch at a time, so Ctrl-C or a full disk keeps every one made so far;
the same command run again continues an interrupted run from them.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import platform
import re
import time
from collections import Counter, defaultdict, deque
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
from tiny_audio.errors import UserError
from tiny_audio.evaluate.metrics import ErrorCounts, char_errors, rtfx, word_errors
from tiny_audio.normalize import english_normalizer
from tiny_audio.recognizer import Recognizer
from tiny_audio.train.run_folder import METRICS

DEFAULT_OUTPUT_DIR = Path("outputs/eval")
PREDICTIONS_FILE = "predictions.jsonl"
SUMMARIES_FOLDER = "summaries"  # one file per `ta eval`, named by when it ran
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
        if self.recognizer.needs_warmup:
            self.recognizer.transcribe([waveform], **self.options)

    def run(self, batch: list[_Loaded]) -> list[Prediction]:
        if not batch:
            return []
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
    on_predictions: Callable[[list[Prediction]], None] | None = None,
) -> list[Prediction]:
    """Transcribe and score every utterance, in input order; failures come back as predictions
    with `error` set. `on_predictions` gets each batch's predictions, in input order, as soon as
    they are made."""
    transcriber = _Transcriber(recognizer, {"num_beams": num_beams, "batch_size": batch_size})
    predictions: list[Prediction] = []
    batch: list[_Loaded] = []
    warmed = False

    def flush() -> None:
        outcomes = iter(transcriber.run([item for item in batch if item.error is None]))
        results = [
            next(outcomes)
            if item.error is None
            else score(item.utterance, "", 0.0, None, item.error)
            for item in batch
        ]
        predictions.extend(results)
        batch.clear()
        if on_predictions is not None:
            on_predictions(results)

    for item in _prefetch(utterances, workers, depth=2 * max(workers, batch_size)):
        if item.error is None and not warmed:
            # A failing warm-up is not recorded: the timed call fails the same way and is.
            with contextlib.suppress(Exception):
                transcriber.warm_up(item.waveform)  # type: ignore[arg-type]
            warmed = True
        batch.append(item)
        # An item that failed to load waits for the clips before it, keeping the input order.
        loaded = sum(queued.error is None for queued in batch)
        if loaded in (0, batch_size):
            flush()
    if batch:
        flush()
    return predictions


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

    def measured(value: float) -> float | None:
        return value if scored else None  # nothing scored is no evidence, not 0% WER

    return {
        "n": len(predictions),
        "scored": len(scored),
        "failed": len(predictions) - len(scored),
        "wer": measured(words.rate),
        "cer": measured(chars.rate),
        "substitution_rate": measured(words.substitutions / reference_words),
        "insertion_rate": measured(words.insertions / reference_words),
        "deletion_rate": measured(words.deletions / reference_words),
        "words": words.as_dict(),
        "reference_words": words.reference_length,
        "audio_seconds": audio_seconds,
        "transcription_seconds": transcription_seconds,
        "rtfx": measured(rtfx(audio_seconds, transcription_seconds)),
    }


def write_run(directory: Path, predictions: list[Prediction], metrics: dict[str, Any]) -> None:
    RunFiles(directory).finish(predictions, metrics)


def _identity(metrics: dict[str, Any]) -> dict[str, Any]:
    """What kept predictions must share with a run to count in it: the folder name is a slug,
    which two models or datasets can share; a checkpoint retrained in place is another model;
    beams change the text."""
    return {
        "model": metrics.get("model"),
        "model files": metrics.get("model_modified"),
        "dataset": metrics.get("dataset"),
        "split": metrics.get("split"),
        "num_beams": metrics.get("options", {}).get("num_beams"),
    }


def _prediction_lines(predictions: Iterable[Prediction]) -> bytes:
    return "".join(json.dumps(asdict(p), ensure_ascii=False) + "\n" for p in predictions).encode()


class RunFiles:
    """A run's predictions.jsonl and metrics.json, written as the run goes: metrics.json names
    the run at the start and gets "complete" and every figure at the end. A failed write (a full
    disk) leaves whole lines only and is one UserError that says what is kept."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.predictions_file = folder / PREDICTIONS_FILE
        self.kept = 0

    def resumable(self, metrics: dict[str, Any]) -> dict[str, Prediction]:
        """By id, the error-free predictions of the same run interrupted here; none where the
        run here finished (it is made afresh). Failed items are tried again."""
        metrics_file = self.folder / METRICS
        if not metrics_file.is_file():
            return {}
        previous = json.loads(metrics_file.read_text())
        if previous.get("complete", True):
            return {}
        ours = _identity(metrics)
        differs = [key for key, value in _identity(previous).items() if ours[key] != value]
        if differs:
            raise UserError(
                f"{self.folder} holds an interrupted run with another {', '.join(differs)}; "
                "remove it or pass another --output-dir"
            )
        kept = {}
        lines = (
            self.predictions_file.read_text().splitlines()
            if self.predictions_file.is_file()
            else []
        )
        for line in lines:
            with contextlib.suppress(ValueError, TypeError):  # a line cut short is made again
                prediction = Prediction(**json.loads(line))
                if prediction.error is None:
                    kept[prediction.id] = prediction
        return kept

    def start(self, kept: list[Prediction], metrics: dict[str, Any]) -> None:
        with self._writing(self.predictions_file):
            self.folder.mkdir(parents=True, exist_ok=True)
            _replace(self.predictions_file, _prediction_lines(kept))
        self.kept = len(kept)
        self._write_metrics({**metrics, "complete": False})

    def append(self, predictions: list[Prediction]) -> None:
        with (
            self._writing(self.predictions_file),
            open(self.predictions_file, "ab", buffering=0) as file,
        ):
            end = file.tell()
            try:
                data = memoryview(_prediction_lines(predictions))
                while data:
                    data = data[file.write(data) or 0 :]
            except OSError:
                os.ftruncate(file.fileno(), end)  # whole lines only
                raise
        self.kept += len(predictions)

    def finish(self, predictions: list[Prediction], metrics: dict[str, Any]) -> None:
        """The predictions in dataset order, then the figures: the run is complete."""
        with self._writing(self.predictions_file):
            self.folder.mkdir(parents=True, exist_ok=True)
            _replace(self.predictions_file, _prediction_lines(predictions))
        self._write_metrics({**metrics, "complete": True})

    def _write_metrics(self, metrics: dict[str, Any]) -> None:
        with self._writing(self.folder / METRICS):
            _replace(self.folder / METRICS, (json.dumps(metrics, indent=2) + "\n").encode())

    @contextlib.contextmanager
    def _writing(self, path: Path) -> Iterator[None]:
        try:
            yield
        except OSError as error:
            raise UserError(
                f"{path}: {error.strerror or error}; the {self.kept} predictions made so far are "
                f"kept in {self.folder}: make room and run the same command again to continue"
            ) from None


def _replace(path: Path, data: bytes) -> None:
    """Write `path` whole or not at all: on a full disk the old file stays as it was."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_bytes(data)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def _model_modified(model: str) -> str | None:
    """When a model folder's newest file changed; None for zoo names, Hub ids and peers."""
    path = Path(model).expanduser()
    files = [file for file in path.iterdir() if file.is_file()] if path.is_dir() else []
    newest = max((file.stat().st_mtime for file in files), default=None)
    return None if newest is None else datetime.fromtimestamp(newest, timezone.utc).isoformat()


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
    fp32: bool = False,
    console: Console | None = None,
) -> list[dict[str, Any]]:
    """Evaluate every model on every dataset; returns the metrics of each pair. A pair whose run
    was interrupted in the same output folder continues from the predictions kept there.
    `fp32`: tiny-audio models in their exact training-time form, named "MODEL (fp32)" and kept
    in their own folders."""
    from tiny_audio.recognizer import load_recognizer

    console = console or Console(stderr=True)
    folders = distinct_slugs(models) | distinct_slugs(datasets)
    results = []
    for model in models:
        with console.status(f"loading {model}"):
            recognizer = load_recognizer(model, fast=not fp32)
        for dataset in datasets:
            metrics = {
                "model": f"{model} (fp32)" if fp32 else model,
                "model_modified": _model_modified(model),
                "dataset": dataset,
                "split": split,
                "options": {"batch_size": batch_size, "num_beams": num_beams, "workers": workers},
                "normalizer": "whisper-english (Open ASR Leaderboard)",
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "machine": machine_description(),
            }
            model_folder = folders[model] + ("-fp32" if fp32 else "")
            files = RunFiles(output_dir / model_folder / folders[dataset])
            predictions = _predict(recognizer, files, metrics, max_samples, console)
            errors = Counter(p.error for p in predictions if p.error is not None)
            metrics |= summarize(predictions)
            metrics["most_common_error"] = errors.most_common(1)[0][0] if errors else None
            files.finish(predictions, metrics)
            results.append(metrics)
        del recognizer
    return results


def write_summary(output_dir: Path, results: list[dict[str, Any]]) -> Path:
    """This eval's metrics in a file of its own, SUMMARIES_FOLDER/<UTC time>.json: an eval of
    other models or datasets into the same folder keeps the earlier summaries."""
    folder = output_dir / SUMMARIES_FOLDER
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    names = (folder / f"{stamp}{f'-{n}' if n else ''}.json" for n in itertools.count())
    summary = next(path for path in names if not path.exists())
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _replace(summary, (json.dumps(results, indent=2) + "\n").encode())
    except OSError as error:
        raise UserError(
            f"{summary}: {error.strerror or error}; each run's files are written"
        ) from None
    return summary


def _predict(
    recognizer: Recognizer,
    files: RunFiles,
    metrics: dict[str, Any],
    max_samples: int | None,
    console: Console,
) -> list[Prediction]:
    """A prediction per utterance, in dataset order: those kept from an interrupted run of the
    same command, the rest made now and written as they are made."""
    from tiny_audio.data.sources import load_source

    kept = files.resumable(metrics)
    files.start(list(kept.values()), metrics)
    if kept:
        console.out(f"continuing from {len(kept)} predictions kept in {files.folder}")
    order: list[Prediction | None] = []  # a kept prediction, or None for one made now

    def pending(utterances: Iterable[Any]) -> Iterator[Any]:
        for utterance in utterances:
            prediction = kept.pop(str(utterance.id), None)
            if prediction is not None and prediction.ref != (utterance.text or ""):
                raise UserError(
                    f"{files.folder}: the kept prediction for {utterance.id} has another "
                    f"reference than {metrics['dataset']} now; remove the folder to start afresh"
                )
            order.append(prediction)
            if prediction is None:
                yield utterance

    options = metrics["options"]
    source = load_source(metrics["dataset"], split=metrics["split"], max_samples=max_samples)
    try:
        with _progress(console) as progress:
            task = progress.add_task(
                f"{metrics['model']} on {metrics['dataset']}",
                total=max_samples,
                completed=files.kept,
            )

            def record(predictions: list[Prediction]) -> None:
                files.append(predictions)
                progress.advance(task, len(predictions))

            made = iter(
                evaluate(
                    recognizer,
                    pending(source),
                    batch_size=options["batch_size"],
                    num_beams=options["num_beams"],
                    workers=options["workers"],
                    on_predictions=record,
                )
            )
    except KeyboardInterrupt:
        console.out(
            f"interrupted: the {files.kept} predictions made so far are kept in {files.folder}; "
            "run the same command again to continue"
        )
        raise
    return [prediction or next(made) for prediction in order]


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
    """One row per run and slice; a figure with nothing scored behind it reads "n/a"."""
    table = Table(title="WER (Whisper English normalizer, corpus-level)")
    for column in ("model", "dataset", "slice"):
        table.add_column(column, overflow="fold")
    for column in ("n", "failed", "WER %", "CER %", "ins %", "RTFx"):
        table.add_column(column, justify="right")

    def percent(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.2f}"

    def row(result: dict[str, Any], model: str, dataset: str, name: str) -> None:
        speed = result["rtfx"]
        table.add_row(
            model,
            dataset,
            name,
            str(result["n"]),
            f"[bold red]{result['failed']}[/]" if result["failed"] else "0",
            percent(result["wer"]),
            percent(result["cer"]),
            percent(result["insertion_rate"]),
            "n/a" if speed is None else f"{speed:.1f}" if speed >= 10 else f"{speed:.2f}",
        )

    for result in results:
        row(result, result["model"], result["dataset"], ALL_SLICES)
        slices = result.get("slices", {})
        for name, figures in slices.items() if len(slices) > 1 else ():
            row(figures, "", "", name)
        table.add_section()
    return table
