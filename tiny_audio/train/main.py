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
from importlib.resources import files
from pathlib import Path
from typing import Any

import click
from omegaconf import DictConfig, OmegaConf

from tiny_audio.data.sources import SPEC_KEYS, data_home
from tiny_audio.errors import UserError
from tiny_audio.train.components import SCHEDULES

# The Hydra tree ships inside the package: `ta train` works from an installed wheel, not only a clone.
CONFIG_DIR = Path(str(files("tiny_audio") / "configs"))
EXPERIMENTS_DIR = CONFIG_DIR / "experiments"
# The sections whose every key must be one the chosen model family reads.
SECTIONS = ("model", "training", "data")
FAMILY_KEY = "family"  # model.family: which family trains (family/NAME.yaml sets it)


@dataclass(frozen=True)
class Family:
    """How one model family trains: "module:attribute" targets, imported when it runs. Where a
    section has no settings class, the keys of the family's defaults (family/NAME.yaml) are all
    it reads there."""

    train: str  # a function taking the composed config and returning the best checkpoint
    model_settings: str  # the config class whose fields (or __init__ arguments) model.* sets
    training_settings: str | None = None  # a dataclass of every training.* it reads
    data_settings: str | None = None  # a dataclass of every data.* it reads
    model_keys_of_training: tuple[str, ...] = (FAMILY_KEY,)  # model.* its loop reads itself


FAMILIES: dict[str, Family] = {
    "tiny_audio": Family(
        "tiny_audio.train.trainer:train",
        "tiny_audio.model.configuration:ASRConfig",
        model_keys_of_training=(FAMILY_KEY, "init_from"),
    ),
    "lact": Family(
        "tiny_audio.train.lact:train",
        "tiny_audio.lact.config:LaCTConfig",
        "tiny_audio.train.lact:TrainingArgs",
        "tiny_audio.train.lact:DataArgs",
    ),
}
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
            if "." not in key and key in compose([]).training:
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


def check_added(cfg: DictConfig, overrides: list[str]) -> None:
    """A key that `+` adds must be one the run reads: Hydra adds any key, so a misspelt one
    would be ignored in silence. A key of a section itself (model.*, training.*, data.*) is
    check_keys'."""
    added = added_keys(overrides)
    if not added:
        return
    schema = compose([o for o in overrides if o.partition("=")[0].lstrip("+") not in added])
    absent = object()
    for key in added:
        parent_key, _, name = key.rpartition(".")
        if parent_key in SECTIONS or OmegaConf.select(schema, key, default=absent) is not absent:
            continue  # checked by check_keys; or ++ setting a key the config has
        parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
        known: Collection[str]
        if isinstance(parent, DictConfig) and "source" in parent:  # a data.train/dev entry
            known = SPEC_KEYS
        else:
            before = OmegaConf.select(schema, parent_key) if parent_key else schema
            known = [str(k) for k in before] if isinstance(before, DictConfig) else []
        if name not in known:
            raise unknown_key(key, known)


def open_sections(overrides: list[str]) -> list[str]:
    """`model.KEY=VALUE` (training.*, data.* too) as `++model.KEY=VALUE`: set whether or not the
    preset has the key. check_keys then checks it against what the family reads, and names a key
    of the other family as such (Hydra would only say that it is not in the config)."""
    opened = []
    for override in overrides:
        key = override.lstrip("+").partition("=")[0]
        section, _, name = key.partition(".")
        in_section = section in SECTIONS and bool(name) and "." not in name
        opened.append(f"++{override.lstrip('+')}" if in_section else override)
    return opened


def compose(overrides: list[str]) -> DictConfig:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    if not OmegaConf.has_resolver("data_home"):  # ${data_home:}: where `ta data` builds corpora
        OmegaConf.register_new_resolver("data_home", lambda: str(data_home()))
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = hydra_compose("config", overrides=open_sections(overrides))
        OmegaConf.resolve(cfg)
    except (HydraException, OmegaConfBaseException) as error:
        cause = error.__cause__
        # Hydra's own advice for a key the config lacks, `+key=value`, adds a setting nothing reads.
        if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and cause.full_key:
            raise unknown_key(cause.full_key, cause.parent_node or ()) from None
        raise UserError(" ".join(str(error).split())) from None
    return cfg


def read_keys(name: str) -> dict[str, set[str]]:
    """Section -> the keys model family `name` reads there: its settings class's names, or where
    it has none, the keys of its defaults."""
    family = FAMILIES[name]
    settings = (family.model_settings, family.training_settings, family.data_settings)
    keys: dict[str, set[str]] = {}
    defaults: DictConfig | None = None
    for section, target in zip(SECTIONS, settings):
        if target:
            keys[section] = setting_names(target)
        else:
            defaults = defaults or compose([f"family={name}"])
            keys[section] = {str(key) for key in defaults[section]}
    keys["model"] |= set(family.model_keys_of_training)
    return keys


def check_keys(cfg: DictConfig, name: str) -> None:
    """Every model.*, training.* and data.* key is one that family `name` reads: a key meant for
    another family, or misspelt, would be ignored in silence. One line names the first."""
    read = read_keys(name)
    for section in SECTIONS:
        for key in sorted({str(key) for key in cfg[section]} - read[section]):
            readers = [other for other in FAMILIES if key in read_keys(other)[section]]
            if readers:
                raise UserError(
                    f"{section}.{key} is a setting of model.{FAMILY_KEY}={readers[0]}, not of "
                    f"this run's model.{FAMILY_KEY}={name}"
                )
            raise unknown_key(f"{section}.{key}", read[section])


def check_training(training: DictConfig) -> None:
    """A training.* number of the wrong type or below its least value, or an unknown schedule, is
    one line naming the key."""
    for key, (kind, least) in TRAINING_NUMBERS.items():
        value = training.get(key)
        number = isinstance(value, int if kind is int else (int, float))
        if not number or isinstance(value, bool) or value < least:
            expected = "an integer" if kind is int else "a number"
            raise UserError(f"training.{key}={value!r}: must be {expected} >= {least}")
    if training.lr_scheduler not in SCHEDULES:
        raise UserError(
            f"training.lr_scheduler={training.lr_scheduler!r} is not one of {', '.join(SCHEDULES)}"
        )


def run(overrides: list[str]) -> Path:
    check_syntax(overrides)
    cfg = compose(overrides)
    name = cfg.model.get(FAMILY_KEY, "tiny_audio")
    if name not in FAMILIES:
        raise UserError(f"model.family={name!r} is not one of {', '.join(sorted(FAMILIES))}")
    check_added(cfg, overrides)
    check_keys(cfg, name)
    check_training(cfg.training)
    train: Any = _import(FAMILIES[name].train)
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
