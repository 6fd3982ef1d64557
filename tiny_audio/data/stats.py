"""Corpus statistics: hours, utterances, speakers, per-source counts and a duration histogram."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tiny_audio.audio import SAMPLE_RATE, AudioError, load_audio
from tiny_audio.data.manifest import Utterance

logger = logging.getLogger(__name__)


def corpus_stats(utterances: Iterable[Utterance], check_audio: bool = False) -> dict[str, Any]:
    """Summary figures. Durations come from the entries; audio is decoded only when an entry has
    none or `check_audio` asks for it, and undecodable audio is counted and skipped."""
    durations: list[float] = []
    speakers: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    unreadable: list[str] = []
    for utterance in utterances:
        duration = utterance.duration
        if duration is None or check_audio:
            try:
                duration = len(load_audio(utterance.audio)) / SAMPLE_RATE
            except AudioError as error:
                logger.warning("skipped %s: %s", utterance.id, error)
                unreadable.append(utterance.id)
                continue
        durations.append(duration)
        speakers[utterance.speaker or "unknown"] += 1
        sources[utterance.source or "unknown"] += 1
    total = sum(durations)
    return {
        "utterances": len(durations),
        "hours": round(total / 3600, 4),
        "seconds": round(total, 2),
        "speakers": len(speakers),
        "mean_seconds": round(total / len(durations), 3) if durations else 0.0,
        "min_seconds": round(min(durations), 3) if durations else 0.0,
        "max_seconds": round(max(durations), 3) if durations else 0.0,
        "per_source": dict(sources.most_common()),
        "per_speaker": dict(speakers.most_common()),
        "unreadable": unreadable,
        "durations": durations,
    }


def duration_histogram(durations: list[float], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.5))
    axes.hist(durations, bins=40, color="#3b7dd8")
    axes.set_xlabel("duration (s)")
    axes.set_ylabel("utterances")
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
