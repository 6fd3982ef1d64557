"""`ta train` / `python -m tiny_audio.train`: compose the Hydra config, then train its model family.

ta train +experiments=mlp training.learning_rate=1e-4
ta train +experiments=mlp training.resume_from_checkpoint=latest
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import itertools
import logging
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from omegaconf import DictConfig, OmegaConf

from tiny_audio.data.sources import SPEC_KEYS
from tiny_audio.errors import UserError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
EXPERIMENTS_DIR = CONFIG_DIR / "experiments"


@dataclass(frozen=True)
class Family:
    """How one model family trains: "module:attribute" targets, imported when it runs."""

    train: str  # a function taking the composed config and returning the best checkpoint
    model_settings: str  # the config class whose fields (or __init__ arguments) model.* sets
    training_settings: str | None = None  # a dataclass of training.* beyond the base ones


FAMILIES: dict[str, Family] = {
    "tiny_audio": Family(
        "tiny_audio.train.trainer:train", "tiny_audio.model.configuration:ASRConfig"
    ),
    "lact": Family(
        "tiny_audio.lact.train:train",
        "tiny_audio.lact.config:LaCTConfig",
        "tiny_audio.lact.train:TrainingArgs",
    ),
}
# model.* keys that the training loops read themselves, not the model's config class.
MODEL_KEYS_OF_TRAINING = ("family", "init_from")
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


def setting_names(target: str) -> set[str]:
    """The settings a config class takes: its __init__ arguments and, for a dataclass, its fields
    (transformers' configs are dataclasses whose own settings are __init__ arguments)."""
    cls = _import(target)
    parameters = inspect.signature(cls.__init__).parameters.values()
    named = {p.name for p in parameters if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD}
    fields = (
        {field.name for field in dataclasses.fields(cls)}
        if dataclasses.is_dataclass(cls)
        else set()
    )
    return named | fields


def experiments() -> dict[str, str]:
    """Preset name -> the first sentence of its leading comment."""
    described = {}
    for preset in sorted(EXPERIMENTS_DIR.glob("*.yaml")):
        comment = " ".join(
            line.lstrip("# ").strip()
            for line in itertools.takewhile(
                lambda line: line.startswith("#"), preset.read_text().splitlines()
            )
            if not line.startswith("# @package")
        )
        described[preset.stem] = comment.split(". ")[0].rstrip(".")
    return described


def unknown_key(full_key: str, known: Collection[str]) -> UserError:
    """One line naming a setting that does not exist, with the nearest one that does."""
    parent, _, name = full_key.rpartition(".")
    nearest = difflib.get_close_matches(name, [str(key) for key in known], n=1)
    if not nearest:
        return UserError(f"{full_key} is not a setting")
    suggestion = f"{parent}.{nearest[0]}" if parent else nearest[0]
    return UserError(f"{full_key} is not a setting (did you mean {suggestion}?)")


def check_syntax(overrides: list[str]) -> None:
    """Every override is key=value: an option such as `--max_steps 3`, or a bare word, is one
    line saying how to write it (Hydra's own message is a lexer error)."""
    for index, word in enumerate(overrides):
        if word.startswith("-"):
            key, _, value = word.lstrip("-").partition("=")
            following = overrides[index + 1] if index + 1 < len(overrides) else ""
            if not value and following and "=" not in following:
                value = following
            if "." not in key and key in OmegaConf.load(TRAINING_DEFAULTS):
                key = f"training.{key}"
            raise UserError(
                f"{word}: ta train takes Hydra overrides, not options: write "
                f"{key}={value or 'VALUE'}"
            )
        if "=" not in word and not word.startswith("~"):  # ~KEY deletes a setting
            hint = f" (did you mean +experiments={word}?)" if word in experiments() else ""
            raise UserError(f"{word}: an override is KEY=VALUE{hint}")


def added_keys(overrides: list[str]) -> list[str]:
    """Keys that `+key=value` (or `++key=value`) overrides add; a config group's choice, such as
    +experiments=mlp, adds a preset instead and is not one."""
    keys = [override.partition("=")[0] for override in overrides if override.startswith("+")]
    return [key.lstrip("+") for key in keys if not (CONFIG_DIR / key.lstrip("+")).is_dir()]


def check_added(cfg: DictConfig, overrides: list[str], model_settings: Collection[str]) -> None:
    """A key that `+` adds must be one the run reads: Hydra adds any key, so a misspelt one
    would be ignored in silence. training.* is check_training's."""
    added = added_keys(overrides)
    if not added:
        return
    schema = compose([o for o in overrides if o.partition("=")[0].lstrip("+") not in added])
    absent = object()
    for key in added:
        if (
            key.startswith("training.")
            or OmegaConf.select(schema, key, default=absent) is not absent
        ):
            continue  # checked by check_training; or ++ setting a key the config has
        parent_key, _, name = key.rpartition(".")
        parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
        if parent_key == "model":
            known: Collection[str] = {*model_settings, *MODEL_KEYS_OF_TRAINING}
        elif isinstance(parent, DictConfig) and "source" in parent:  # a data.train/dev entry
            known = SPEC_KEYS
        else:
            before = OmegaConf.select(schema, parent_key) if parent_key else schema
            known = [str(k) for k in before] if isinstance(before, DictConfig) else []
        if name not in known:
            raise unknown_key(key, known)


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
    check_syntax(overrides)
    cfg = compose(overrides)
    name = cfg.model.get("family", "tiny_audio")
    if name not in FAMILIES:
        raise UserError(f"model.family={name!r} is not one of {', '.join(sorted(FAMILIES))}")
    family = FAMILIES[name]
    check_added(cfg, overrides, setting_names(family.model_settings))
    extra = setting_names(family.training_settings) if family.training_settings else set()
    check_training(cfg.training, extra)
    train: Any = _import(family.train)
    return train(cfg)


class TrainCommand(click.Command):
    """`ta train --help` ends with the presets that +experiments= chooses from."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Experiments (+experiments=NAME)"):
            formatter.write_dl(list(experiments().items()))


@click.command(
    "train",
    cls=TrainCommand,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
@click.argument("overrides", nargs=-1, type=click.UNPROCESSED)
def train_command(overrides: tuple[str, ...]) -> None:
    """Train a model: Hydra OVERRIDES such as +experiments=mlp training.max_steps=1000
    (KEY=VALUE; +KEY=VALUE adds a setting a preset lacks)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", force=True)
    best = run(list(overrides))
    click.echo(f"best checkpoint: {best}")
