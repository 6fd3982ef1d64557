"""`ta bench`: a tiny-audio model against faster-whisper with the same encoder, on the same
clips, in one run; figures are appended to BENCHMARKS.md.

Each system is measured in its own fresh process (so peak RSS, the process's `VmHWM`, is that
system's alone) with the same thread count. Per system: load time; RTFx at batch 1 and batched (audio
seconds / transcription seconds, after one untimed warm-up call, audio decoded beforehand);
time to first token (the median time to transcribe one clip with generation capped at one new
token: features, encoder and the first decoding step); WER on the clips; peak RSS; cold start
(cold_start.py: process start to text for the first clip, `ta transcribe` against a minimal
faster-whisper script, with that process's peak RSS).

Figures that concern only the tiny-audio model (training throughput, once training exists)
plug in through `MODEL_FIGURES`: name -> "module:function" taking the model directory and
returning a dict of figures, run in a fresh process of its own.
"""

from __future__ import annotations

import importlib
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from tiny_audio.audio import SAMPLE_RATE, load_audio
from tiny_audio.errors import UserError
from tiny_audio.evaluate.cold_start import cold_start

# Encoder zoo name of a tiny-audio model -> the faster-whisper peer with that encoder.
PEER_FOR_ENCODER: dict[str, str] = {
    "whisper-tiny.en": "whisper:tiny.en",
    "whisper-base": "whisper:base",
}
# Extra figures for the tiny-audio model only: name -> "module:function(model_dir) -> dict".
MODEL_FIGURES: dict[str, str] = {
    "training": "tiny_audio.train.throughput:measure",
}
FIRST_TOKEN_CLIPS = 5


@dataclass
class Clip:
    id: str
    text: str
    waveform: np.ndarray


@dataclass
class BenchSettings:
    batch_size: int = 8
    num_beams: int = 1
    threads: int = 2
    fp32: bool = False  # the tiny-audio model's exact training form instead of its fast one


def peer_for(model: str) -> str:
    """The faster-whisper peer with the same encoder as tiny-audio model `model`."""
    from tiny_audio.recognizer import find_model

    encoder = find_model(model).config.get("audio_encoder", "")
    if encoder not in PEER_FOR_ENCODER:
        known = ", ".join(PEER_FOR_ENCODER)
        raise UserError(
            f"{model}: encoder {encoder!r} has no faster-whisper peer ({known}); pass --peer"
        )
    return PEER_FOR_ENCODER[encoder]


def load_clips(dataset: str, split: str, max_samples: int | None) -> list[Clip]:
    """Decode the benchmark clips once; bad items are skipped with a note on stderr."""
    from tiny_audio.data.sources import load_source

    clips = []
    for utterance in load_source(dataset, split=split, max_samples=max_samples):
        try:
            clips.append(Clip(str(utterance.id), utterance.text or "", load_audio(utterance.audio)))
        except Exception as error:
            print(f"skipping {utterance.id}: {error}", file=sys.stderr)
    if not clips:
        raise UserError(f"{dataset}: no usable clips")
    return clips


def measure_system(name: str, clips: list[Clip], settings: BenchSettings) -> dict[str, Any]:
    """Runs inside a fresh process: every figure for one recognizer."""
    os.environ["OMP_NUM_THREADS"] = str(settings.threads)
    from tiny_audio.evaluate.metrics import corpus_counts
    from tiny_audio.normalize import english_normalizer
    from tiny_audio.recognizer import load_recognizer

    started = time.perf_counter()
    recognizer = load_recognizer(name, fast=not settings.fp32)
    load_seconds = time.perf_counter() - started
    waveforms = [clip.waveform for clip in clips]
    options: dict[str, Any] = {"num_beams": settings.num_beams}
    recognizer.transcribe(waveforms[:1], batch_size=1, **options)  # warm-up

    def timed(batch: list[np.ndarray], **extra: Any) -> tuple[list[str], float]:
        started = time.perf_counter()
        texts = recognizer.transcribe(batch, batch_size=len(batch), **options, **extra)
        return texts, time.perf_counter() - started

    batch1 = [timed([waveform]) for waveform in waveforms]
    texts = [text for output, _ in batch1 for text in output]
    batch1_seconds = sum(seconds for _, seconds in batch1)
    batched_seconds = sum(
        timed(waveforms[start : start + settings.batch_size])[1]
        for start in range(0, len(waveforms), settings.batch_size)
    )
    first_token = [
        timed([waveform], max_new_tokens=1)[1] for waveform in waveforms[:FIRST_TOKEN_CLIPS]
    ]

    normalize = english_normalizer()
    words = corpus_counts(
        (normalize(clip.text), normalize(text)) for clip, text in zip(clips, texts, strict=True)
    )
    audio_seconds = sum(len(w) for w in waveforms) / SAMPLE_RATE
    return {
        "name": name,
        "clips": len(clips),
        "audio_seconds": audio_seconds,
        "load_seconds": load_seconds,
        "rtfx_batch1": audio_seconds / batch1_seconds,
        "rtfx_batched": audio_seconds / batched_seconds,
        "first_token_ms": 1000 * statistics.median(first_token),
        "peak_rss_mib": peak_rss_mib(),
        "wer": words.rate,
    }


def peak_rss_mib() -> float:
    """Peak resident memory of this process image. Linux carries `ru_maxrss` across fork and exec,
    so a spawned child would report its parent's peak; `VmHWM` starts afresh at exec."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_model_figure(target: str, model: str) -> dict[str, Any]:
    module_name, _, function_name = target.partition(":")
    return getattr(importlib.import_module(module_name), function_name)(model)


def _in_fresh_process(function: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def run_bench(
    model: str,
    peer: str,
    clips: list[Clip],
    settings: BenchSettings,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    # Other processes skew every figure on a shared machine; the load average says how much.
    load_before = os.getloadavg()[0]
    systems = []
    for name in (model, peer):
        progress(f"measuring {name} on {len(clips)} clips")
        systems.append(_in_fresh_process(measure_system, name, clips, settings))
    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "clip.wav"
        sf.write(clip, clips[0].waveform, SAMPLE_RATE)
        for system in systems:
            progress(f"cold start of {system['name']} on one {clips[0].id} clip")
            system |= cold_start(system["name"], clip, settings.threads, settings.fp32)
    extra = {}
    for figure, target in MODEL_FIGURES.items() if is_tiny_audio_model(model) else ():
        progress(f"measuring {figure} of {model}")
        extra[figure] = _in_fresh_process(run_model_figure, target, model)
    ours, theirs = systems
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "settings": vars(settings),
        "systems": systems,
        "ratio": {
            "rtfx_batch1": ours["rtfx_batch1"] / theirs["rtfx_batch1"],
            "rtfx_batched": ours["rtfx_batched"] / theirs["rtfx_batched"],
            "cold_start": ours["cold_start_s"] / theirs["cold_start_s"],
        },
        "model_figures": extra,
    }


def is_tiny_audio_model(name: str) -> bool:
    """Model figures (the training throughput of its recipe) apply to tiny-audio models, not to
    LaCT models or peers."""
    from tiny_audio.recognizer import PEERS, find_model

    return name.partition(":")[0] not in PEERS and find_model(name).model_type == "tiny_audio"


def markdown_block(result: dict[str, Any], command: str, machine: str, note: str = "") -> str:
    settings = result["settings"]
    batch = settings["batch_size"]
    load_before, load_after = result["load_average"]
    lines = [
        f"### `{command}`",
        "",
        f"{result['date']} · {machine} · {settings['threads']} thread(s) per system · "
        f"{result['systems'][0]['clips']} clips, {result['systems'][0]['audio_seconds']:.1f} s of audio · "
        f"load average {load_before} → {load_after}",
        "",
        *([note, ""] if note else []),
        f"| system | RTFx batch 1 | RTFx batch {batch} | first token ms | peak RSS MiB | load s | "
        "cold start s | cold RSS MiB | WER % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for system in result["systems"]:
        lines.append(
            f"| {system['name']} | {system['rtfx_batch1']:.1f} | {system['rtfx_batched']:.1f} | "
            f"{system['first_token_ms']:.0f} | {system['peak_rss_mib']:.0f} | "
            f"{system['load_seconds']:.1f} | {system['cold_start_s']:.2f} | "
            f"{system['cold_start_rss_mib']:.0f} | {100 * system['wer']:.1f} |"
        )
    ratio = result["ratio"]
    lines += [
        "",
        f"RTFx ratio {result['systems'][0]['name']} / {result['systems'][1]['name']}: "
        f"{ratio['rtfx_batch1']:.2f}x at batch 1, {ratio['rtfx_batched']:.2f}x at batch {batch}; "
        f"cold start {ratio['cold_start']:.2f}x the time.",
    ]
    for figure, values in result["model_figures"].items():
        shown = (
            f"{key} {value:.3g}" if isinstance(value, float) else f"{key} {value}"
            for key, value in values.items()
        )
        lines.append(f"{figure}: " + ", ".join(shown))
    return "\n".join(lines) + "\n"


def append_to_benchmarks(path: Path, block: str) -> None:
    """Add `block` at the end of this tool's section of BENCHMARKS.md (created if missing),
    leaving other areas' sections where they are."""
    heading = "## Evaluation: `ta bench` (tiny-audio vs faster-whisper, same encoder, same clips)"
    text = path.read_text() if path.is_file() else "# Benchmarks\n"
    if heading not in text:
        text = (
            text.rstrip()
            + f"\n\n{heading}\n\n"
            + (
                "Each system runs in a fresh process. RTFx = audio seconds / transcription seconds "
                "(after a warm-up, audio decoded beforehand); first token = median time to "
                "transcribe one clip with generation capped at one token; peak RSS = VmHWM.\n"
            )
        )
    section_start = text.index(heading)
    next_section = text.find("\n## ", section_start + len(heading))
    end = len(text) if next_section < 0 else next_section
    updated = (
        text[:end].rstrip()
        + "\n\n"
        + block
        + ("\n" + text[end:].lstrip("\n") if next_section >= 0 else "")
    )
    path.write_text(updated)
