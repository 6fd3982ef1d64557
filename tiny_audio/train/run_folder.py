"""The folder a training run writes, as both loops write it and `ta push`, `ta remote pull`,
`ta eval` and the LaCT ablation read it:

    outputs/EXPERIMENT/
        config.yaml            the composed training config (RUN_CONFIG): the card's recipe
        checkpoint-N/          a loadable model folder, its training state and dev figures
        checkpoint-N.tmp/      a checkpoint being written, renamed into place once complete
        best -> checkpoint-N   a link to the checkpoint with the best dev figures
        metrics.jsonl          (LaCT) one line per logged step or dev evaluation (METRICS_LOG)

A run killed at any moment leaves complete checkpoints and at most a staging folder, which is
ignored and later removed. Nothing here imports torch: the readers need only the names."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

RUN_CONFIG = "config.yaml"
# LaCT runs saved their config under the second name before both loops shared RUN_CONFIG.
RUN_CONFIGS = (RUN_CONFIG, "training_config.yaml")
# A checkpoint's dev figures ({"step", "dev_wer", ...}); `ta eval` names its results
# ({"dataset", "wer", ...}) the same way, in its own folders or in CHECKPOINT/eval.
METRICS = "metrics.json"
# The LaCT recipe's running log ({"step", "loss", ...} or {"step", "cer", ...}), which the
# LaCT ablation plots.
METRICS_LOG = "metrics.jsonl"
BEST = "best"
TRAINING_STATE = "training_state.pt"  # what makes a model folder a checkpoint to resume from
CHECKPOINT_GLOB = "checkpoint-*"  # complete checkpoints and staging folders alike
STAGING_SUFFIX = ".tmp"
CHECKPOINT_PATTERN = re.compile(r"checkpoint-(\d+)")


def checkpoint_name(step: int) -> str:
    return f"checkpoint-{step}"


def checkpoint_step(name: str) -> int | None:
    """The step of a checkpoint folder's name; None for anything else (a staging folder)."""
    match = CHECKPOINT_PATTERN.fullmatch(name)
    return int(match.group(1)) if match else None


def is_checkpoint(path: Path) -> bool:
    return (path / TRAINING_STATE).is_file()


def run_config(run_dir: Path) -> Path | None:
    """The run's saved config, under its current name or the one older LaCT runs used."""
    return next((path for name in RUN_CONFIGS if (path := run_dir / name).is_file()), None)


def save_checkpoint(
    run_dir: Path, step: int, write: Callable[[Path], None], metrics: dict[str, float]
) -> Path:
    """checkpoint-N holding what `write` puts in a folder, plus the step's dev figures; built
    under its staging name and renamed, so it is either complete or absent."""
    final = run_dir / checkpoint_name(step)
    staging = final.with_name(final.name + STAGING_SUFFIX)
    shutil.rmtree(staging, ignore_errors=True)
    write(staging)
    (staging / METRICS).write_text(json.dumps({"step": step, **metrics}, indent=2))
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    return final


def checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    found = []
    for path in run_dir.glob(CHECKPOINT_GLOB):
        step = checkpoint_step(path.name)
        if step is not None and is_checkpoint(path):
            found.append((step, path))
    return [path for _, path in sorted(found)]


def latest_checkpoint(run_dir: Path) -> Path | None:
    complete = checkpoints(run_dir)
    return complete[-1] if complete else None


def clean_partial(run_dir: Path) -> None:
    for staging in run_dir.glob(CHECKPOINT_GLOB + STAGING_SUFFIX):
        shutil.rmtree(staging, ignore_errors=True)


def prune(run_dir: Path, keep_last: int) -> None:
    """Remove all but the newest `keep_last` checkpoints and the one `best` points to."""
    best = (run_dir / BEST).resolve()
    complete = checkpoints(run_dir)
    for path in complete[: max(0, len(complete) - keep_last)]:
        if path.resolve() != best:
            shutil.rmtree(path, ignore_errors=True)


def point_best(run_dir: Path, checkpoint: Path) -> None:
    """Atomically make run_dir/best a relative link to `checkpoint` (one of run_dir's), so the
    run folder can move. Readers follow it: `ta remote pull` copies what it points to."""
    best = run_dir / BEST
    if best.is_dir() and not best.is_symlink():
        shutil.rmtree(best)  # a LaCT run from before best was a link, now resumed
    staging = best.with_name(BEST + STAGING_SUFFIX)
    if staging.is_symlink() or staging.exists():
        staging.unlink()
    staging.symlink_to(checkpoint.name)
    os.replace(staging, best)
