"""PNG charts for the analysis reports. Figures are built with matplotlib's object API and
saved through its Agg canvas, so no display or pyplot state is involved."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def grouped_bars(
    path: Path, categories: list[str], series: dict[str, list[float]], title: str, ylabel: str
) -> Path:
    """One group of bars per category, one bar per series (e.g. WER per length bucket per model)."""
    figure = Figure(figsize=(max(6.0, 1.2 * len(categories) + 2), 4.0), layout="constrained")
    axes = figure.subplots()
    width = 0.8 / max(len(series), 1)
    positions = np.arange(len(categories))
    for index, (name, values) in enumerate(series.items()):
        axes.bar(positions + index * width, values, width, label=name)
    axes.set_xticks(positions + width * (len(series) - 1) / 2, categories)
    axes.set_title(title)
    axes.set_ylabel(ylabel)
    if len(series) > 1:
        axes.legend(fontsize="small")
    figure.savefig(path, dpi=110)
    return path


def stacked_bars(
    path: Path, labels: list[str], stacks: dict[str, list[float]], title: str, ylabel: str
) -> Path:
    """One bar per label split into stacks (e.g. substitution/insertion/deletion rates per model)."""
    figure = Figure(figsize=(max(5.0, 1.1 * len(labels) + 2), 4.0), layout="constrained")
    axes = figure.subplots()
    bottom = np.zeros(len(labels))
    for name, values in stacks.items():
        axes.bar(labels, values, bottom=bottom, label=name)
        bottom += np.asarray(values, dtype=float)
    axes.set_title(title)
    axes.set_ylabel(ylabel)
    axes.legend(fontsize="small")
    axes.tick_params(axis="x", labelrotation=20)
    figure.savefig(path, dpi=110)
    return path


def histogram(path: Path, values: list[float], threshold: float, title: str, xlabel: str) -> Path:
    """Distribution of per-utterance values with a vertical line at `threshold`."""
    figure = Figure(figsize=(6.0, 4.0), layout="constrained")
    axes = figure.subplots()
    axes.hist(values, bins=min(30, max(len(values), 1)))
    axes.axvline(threshold, color="red", linestyle="--", label=f"threshold {threshold:g}")
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("utterances")
    axes.legend(fontsize="small")
    figure.savefig(path, dpi=110)
    return path


def horizontal_bars(
    path: Path,
    labels: list[str],
    values: list[float],
    title: str,
    xlabel: str,
    counts: bool = False,
) -> Path:
    """Ranked items, largest on top (e.g. the most frequent substitution pairs); `counts` puts
    ticks on whole numbers only."""
    figure = Figure(figsize=(7.0, max(2.5, 0.3 * len(labels) + 1)), layout="constrained")
    axes = figure.subplots()
    axes.barh(labels[::-1], values[::-1])
    if counts:
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    figure.savefig(path, dpi=110)
    return path
