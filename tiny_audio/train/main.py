"""`ta train` / `python -m tiny_audio.train`: compose the Hydra config, then train its model family.

ta train +experiments=mlp training.learning_rate=1e-4
ta train +experiments=mlp training.resume_from_checkpoint=latest
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import logging
from collections.abc import Collection
from pathlib import Path
from typing import Any

import click
from omegaconf import DictConfig, OmegaConf

from tiny_audio.errors import UserError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
# model.family -> "module:function" taking the composed config and returning the best checkpoint,
# and the "module:dataclass" of any training.* settings it reads beyond the base ones.
FAMILIES: dict[str, tuple[str, str | None]] = {
    "tiny_audio": ("tiny_audio.train.trainer:train", None),
    "lact": ("tiny_audio.lact.train:train", "tiny_audio.lact.train:TrainingArgs"),
}
# The base training.* settings, which every composed config holds.
TRAINING_DEFAULTS = CONFIG_DIR / "training" / "default.yaml"
# training.* numbers every family reads: name -> (type, least allowed value). Checked before any
# model loads, so a typo costs a second, not a traceback after minutes of loading.
TRAINING_NUMBERS: dict[str, tuple[type[int] | type[float], int]] = {
    "max_steps": (int, 1),
    "per_device_train_batch_size": (int, 1),
    "gradient_accumulation_steps": (int, 1),
    "logging_steps": (int, 1),
    "eval_steps": (int, 1),
    "save_steps": (int, 1),
    "warmup_steps": (int, 0),
    "save_total_limit": (int, 0),
    "learning_rate": (float, 0),
    "weight_decay": (float, 0),
    "max_grad_norm": (float, 0),
}


def _import(target: str) -> Any:
    module_name, attribute = target.split(":")
    return getattr(importlib.import_module(module_name), attribute)


def unknown_key(full_key: str, known: Collection[str]) -> UserError:
    """One line naming a setting that does not exist, with the nearest one that does."""
    parent, _, name = full_key.rpartition(".")
    nearest = difflib.get_close_matches(name, [str(key) for key in known], n=1)
    if not nearest:
        return UserError(f"{full_key} is not a setting")
    suggestion = f"{parent}.{nearest[0]}" if parent else nearest[0]
    return UserError(f"{full_key} is not a setting (did you mean {suggestion}?)")


def compose(overrides: list[str]) -> DictConfig:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    if not CONFIG_DIR.is_dir():
        raise UserError(
            f"config folder {CONFIG_DIR} not found (train from a clone of the repository)"
        )
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = hydra_compose("config", overrides=overrides)
        OmegaConf.resolve(cfg)
    except (HydraException, OmegaConfBaseException) as error:
        cause = error.__cause__
        # Hydra's own advice for a key the config lacks, `+key=value`, adds a setting nothing reads.
        if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and cause.full_key:
            raise unknown_key(cause.full_key, cause.parent_node or ()) from None
        raise UserError(" ".join(str(error).split())) from None
    return cfg


def check_training(training: DictConfig, extra_settings: Collection[str]) -> None:
    """A training.* key no trainer of this family reads (a misspelt one added with +), or a number
    of the wrong type or below its least value, is one line naming the key."""
    known = {str(key) for key in OmegaConf.load(TRAINING_DEFAULTS)} | set(extra_settings)
    unknown = sorted({str(key) for key in training} - known)
    if unknown:
        raise unknown_key(f"training.{unknown[0]}", known)
    for key, (kind, least) in TRAINING_NUMBERS.items():
        value = training.get(key)
        number = isinstance(value, int if kind is int else (int, float))
        if not number or isinstance(value, bool) or value < least:
            expected = "an integer" if kind is int else "a number"
            raise UserError(f"training.{key}={value!r}: must be {expected} >= {least}")


def run(overrides: list[str]) -> Path:
    cfg = compose(overrides)
    family = cfg.model.get("family", "tiny_audio")
    if family not in FAMILIES:
        raise UserError(f"model.family={family!r} is not one of {', '.join(sorted(FAMILIES))}")
    train_target, settings_target = FAMILIES[family]
    train: Any = _import(train_target)
    settings = dataclasses.fields(_import(settings_target)) if settings_target else ()
    check_training(cfg.training, [field.name for field in settings])
    return train(cfg)


@click.command("train", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("overrides", nargs=-1, type=click.UNPROCESSED)
def train_command(overrides: tuple[str, ...]) -> None:
    """Train a model: Hydra OVERRIDES such as +experiments=mlp training.max_steps=1000."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", force=True)
    best = run(list(overrides))
    click.echo(f"best checkpoint: {best}")
