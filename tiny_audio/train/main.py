"""`ta train` / `python -m tiny_audio.train`: compose the Hydra config, then train its model family.

ta train +experiments=mlp training.learning_rate=1e-4
ta train +experiments=mlp training.resume_from_checkpoint=latest
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

import click
from omegaconf import DictConfig, OmegaConf

from tiny_audio.errors import UserError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
# model.family -> "module:function" taking the composed config and returning the best checkpoint.
FAMILIES: dict[str, str] = {
    "tiny_audio": "tiny_audio.train.trainer:train",
    "lact": "tiny_audio.lact.train:train",
}


def compose(overrides: list[str]) -> DictConfig:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if not CONFIG_DIR.is_dir():
        raise UserError(
            f"config folder {CONFIG_DIR} not found (train from a clone of the repository)"
        )
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = hydra_compose("config", overrides=overrides)
        OmegaConf.resolve(cfg)
    except (HydraException, OmegaConfBaseException) as error:
        raise UserError(" ".join(str(error).split())) from None
    return cfg


def run(overrides: list[str]) -> Path:
    cfg = compose(overrides)
    family = cfg.model.get("family", "tiny_audio")
    if family not in FAMILIES:
        raise UserError(f"model.family={family!r} is not one of {', '.join(sorted(FAMILIES))}")
    module_name, function = FAMILIES[family].split(":")
    train: Any = getattr(importlib.import_module(module_name), function)
    return train(cfg)


@click.command("train", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("overrides", nargs=-1, type=click.UNPROCESSED)
def train_command(overrides: tuple[str, ...]) -> None:
    """Train a model: Hydra OVERRIDES such as +experiments=mlp training.max_steps=1000."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", force=True)
    best = run(list(overrides))
    click.echo(f"best checkpoint: {best}")
