"""What a checkpoint holds besides its model: optimizer, scheduler, RNG state and step, saved
into the run folder's checkpoint-N (tiny_audio.train.run_folder) and loaded to resume."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tiny_audio.errors import UserError
from tiny_audio.train import run_folder


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
    save_model: Callable[[Path], object],
    training_state: dict[str, Any],
    metrics: dict[str, float],
) -> Path:
    def write(folder: Path) -> None:
        save_model(folder)
        state = {**training_state, "step": step, "rng": rng_state()}
        torch.save(state, folder / run_folder.TRAINING_STATE)

    return run_folder.save_checkpoint(output_dir, step, write, metrics)


def load_training_state(checkpoint: Path) -> dict[str, Any]:
    # weights_only: tensors and plain containers, never arbitrary pickled objects
    return torch.load(checkpoint / run_folder.TRAINING_STATE, map_location="cpu", weights_only=True)


def checkpoint_to_resume(setting: str, run_dir: Path) -> Path | None:
    """training.resume_from_checkpoint: "latest" (the run's newest complete checkpoint, None for
    a fresh run) or a checkpoint folder, which must be complete."""
    if setting == "latest":
        return run_folder.latest_checkpoint(run_dir)
    checkpoint = Path(setting)
    if not run_folder.is_checkpoint(checkpoint):
        raise UserError(
            f"training.resume_from_checkpoint: {checkpoint} is not a complete checkpoint"
        )
    return checkpoint


def restore_training_state(checkpoint: Path, optimizer: Any, scheduler: Any) -> dict[str, Any]:
    """Load the optimizer, scheduler and RNG state saved in `checkpoint`; returns the rest of
    its training state (the step and what the recipe saved beside it)."""
    state = load_training_state(checkpoint)
    optimizer.load_state_dict(state.pop("optimizer"))
    scheduler.load_state_dict(state.pop("scheduler"))
    set_rng_state(state.pop("rng"))
    return state
