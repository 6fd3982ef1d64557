"""The `ta` command line. Each subcommand lives beside the code it drives and is imported
only when it runs, so `ta --help` stays fast and one broken optional part cannot break the rest."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from tiny_audio.errors import UserError

# name -> ("module:attribute" of a click command, one-line help); one line per command.
COMMANDS: dict[str, tuple[str, str]] = {
    "transcribe": ("tiny_audio.transcribe:transcribe_command", "Transcribe audio files."),
    "models": ("tiny_audio.zoo.cli:models", "List, pull and locate pretrained models."),
}
ALIASES: dict[str, str] = {"runpod": "remote"}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(ALIASES.get(cmd_name, cmd_name))
        if entry is None:
            return None
        module_name, attribute = entry[0].split(":")
        return getattr(importlib.import_module(module_name), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Listing must not import every command (and torch with them).
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_text) for name, (_, help_text) in sorted(COMMANDS.items())])

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tiny-audio")
def cli() -> None:
    """tiny-audio: train, evaluate, inspect, demo and publish your own speech recognizer."""


def main() -> None:
    cli()
