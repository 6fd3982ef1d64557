"""`ta models list | pull NAME... | path NAME`."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from tiny_audio.errors import UserError
from tiny_audio.zoo.registry import BUNDLED, ZOO, folder_bytes, is_cached, model_dir, pull, resolve


@click.group()
def models() -> None:
    """List, pull and locate pretrained models."""


@models.command("list")
def list_models() -> None:
    """Zoo models and whether they are in the cache."""
    table = Table("name", "role", "parameters", "license", "cached", "default")
    table.columns[0].no_wrap = True  # names are what users copy
    for name, model in ZOO.items():
        cached = f"{folder_bytes(model_dir(name)) / 1e6:.0f} MB" if is_cached(name) else "no"
        default = "yes" if model.default else ""
        table.add_row(name, model.role, model.parameters, model.license, cached, default)
    for name in BUNDLED:
        table.add_row(name, "asr", "", "", "bundled", "")
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
