"""Checkpoints that survive being killed at any moment.

A checkpoint is a loadable model folder (save_pretrained) plus `training_state.pt` (optimizer,
scheduler, RNG, step). It is written under a temporary name and renamed into place, so a kill
during a save leaves only a `.tmp` folder, which is ignored and later removed."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE_NAME = "training_state.pt"
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")


def rng_state() -> dict[str, Any]:
    numpy_state: Any = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [
            numpy_state[0],
            torch.from_numpy(numpy_state[1].astype(np.int64)),
            *numpy_state[2:],
        ],
        "torch": torch.get_rng_state(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])


def save_checkpoint(
    output_dir: Path,
    step: int,
    save_model: Any,
    training_state: dict[str, Any],
    metrics: dict[str, float],
) -> Path:
    final = output_dir / f"checkpoint-{step}"
    staging = output_dir / f"checkpoint-{step}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    save_model(staging)
    torch.save({**training_state, "step": step, "rng": rng_state()}, staging / STATE_NAME)
    (staging / "metrics.json").write_text(json.dumps({"step": step, **metrics}, indent=2))
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    return final


def load_training_state(checkpoint: Path) -> dict[str, Any]:
    # weights_only: tensors and plain containers, never arbitrary pickled objects
    return torch.load(checkpoint / STATE_NAME, map_location="cpu", weights_only=True)


def checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    found = []
    for path in output_dir.glob("checkpoint-*"):
        match = CHECKPOINT_PATTERN.match(path.name)
        if match and (path / STATE_NAME).is_file():
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def latest_checkpoint(output_dir: Path) -> Path | None:
    complete = checkpoints(output_dir)
    return complete[-1] if complete else None


def clean_partial(output_dir: Path) -> None:
    for staging in output_dir.glob("checkpoint-*.tmp"):
        shutil.rmtree(staging, ignore_errors=True)


def prune(output_dir: Path, keep_last: int, keep: Path | None) -> None:
    """Remove all but the newest `keep_last` checkpoints and `keep` (the best one)."""
    complete = checkpoints(output_dir)
    for path in complete[: max(0, len(complete) - keep_last)]:
        if keep is None or path.resolve() != keep.resolve():
            shutil.rmtree(path, ignore_errors=True)


def point_link(link: Path, target: Path) -> None:
    """Atomically make `link` (e.g. output_dir/best) a symlink to `target`."""
    staging = link.with_name(link.name + ".tmp")
    if staging.is_symlink() or staging.exists():
        staging.unlink()
    staging.symlink_to(target.name)
    os.replace(staging, link)
