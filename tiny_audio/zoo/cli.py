"""`ta models list | pull NAME... | path NAME`."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from tiny_audio.errors import UserError
from tiny_audio.zoo.registry import BUNDLED, ZOO, is_cached, model_dir, pull, resolve


def _disk_size(folder: Path) -> str:
    total = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    return f"{total / 1e6:.0f} MB"


@click.group()
def models() -> None:
    """List, pull and locate pretrained models."""


@models.command("list")
def list_models() -> None:
    """Zoo models and whether they are in the cache."""
    table = Table("name", "role", "parameters", "license", "cached", "description")
    for name, model in ZOO.items():
        cached = _disk_size(model_dir(name)) if is_cached(name) else "no"
        label = f"{name} (default)" if model.default else name
        table.add_row(label, model.role, model.parameters, model.license, cached, model.description)
    for name, folder in BUNDLED.items():
        table.add_row(name, "asr", "", "", "bundled", str(folder))
    Console().print(table)


@models.command("pull")
@click.argument("names", nargs=-1)
@click.option("--defaults", is_flag=True, help="Pull the models `make run` needs.")
def pull_models(names: tuple[str, ...], defaults: bool) -> None:
    """Download and convert zoo models (already cached ones are skipped)."""
    wanted = list(names) + [name for name, model in ZOO.items() if defaults and model.default]
    if not wanted:
        raise UserError("name a zoo model to pull, or pass --defaults")
    for name in dict.fromkeys(wanted):
        click.echo(f"{name}: {pull(name)}")


@models.command("path")
@click.argument("name")
def model_path(name: str) -> None:
    """Print the local folder of a zoo model, local directory or Hub id (fetched if needed)."""
    click.echo(resolve(name))
