"""The `ta` command line. Each subcommand lives beside the code it drives and is imported
only when it runs, so `ta --help` stays fast and one broken optional part cannot break the rest."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from tiny_audio.errors import UserError

# name -> ("module:attribute" of a click command, one-line help); one line per command.
COMMANDS: dict[str, tuple[str, str]] = {
    "remote": ("tiny_audio.ops.remote:remote", "Train on a GPU host over SSH (alias: runpod)."),
    "slurm": (
        "tiny_audio.ops.slurm:slurm",
        "Train on a Slurm cluster: submit, status, logs, cancel.",
    ),
    "push": ("tiny_audio.hub:push_command", "Publish a checkpoint to the Hugging Face Hub."),
    "demo": ("tiny_audio.demo.app:demo", "Launch the Gradio web demo."),
    "deploy": ("tiny_audio.hub:deploy_command", "Publish a Gradio Space that serves a model."),
    "transcribe": ("tiny_audio.transcribe:transcribe_command", "Transcribe audio files."),
    "models": ("tiny_audio.zoo.cli:models", "List, pull and locate pretrained models."),
    "quickstart": (
        "tiny_audio.quickstart:quickstart",
        "Transcribe and score the real sample clips (make run).",
    ),
    "train": (
        "tiny_audio.train.main:train_command",
        "Train a model with Hydra overrides (+experiments=NAME).",
    ),
    "data": ("tiny_audio.data.cli:data", "Build and inspect speech corpora (synth, real, stats)."),
    "debug": (
        "tiny_audio.ops.debug:debug",
        "Model health: MoE routing, LoRA, gradient flow, scale.",
    ),
    "dev": ("tiny_audio.ops.dev:dev", "Lint, type-check and test the source checkout."),
    "doctor": ("tiny_audio.ops.dev:doctor", "Check the set-up and say what to fix."),
    "eval": ("tiny_audio.evaluate.cli:eval_command", "Score models on datasets (WER, CER, RTFx)."),
    "analysis": (
        "tiny_audio.evaluate.cli:analysis",
        "Analyse eval runs: high-wer, compare, errors.",
    ),
    "bench": (
        "tiny_audio.evaluate.cli:bench_command",
        "Speed and memory: tiny-audio vs faster-whisper.",
    ),
    "bench-words": (
        "tiny_audio.evaluate.word_timing:bench_words_command",
        "Word-time error at known clip boundaries: ours vs faster-whisper.",
    ),
    "bench-long": (
        "tiny_audio.evaluate.long_form:bench_long_command",
        "A long recording of real clips: windows at pauses vs fixed.",
    ),
}
ALIASES: dict[str, str] = {"runpod": "remote"}
QUIET_LOADING = "HF_HUB_DISABLE_PROGRESS_BARS"


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
            formatter.write_dl(
                [(name, help_text) for name, (_, help_text) in sorted(COMMANDS.items())]
            )

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (UserError, ModuleNotFoundError) as error:
            from tiny_audio.extras import missing_extra  # here, so that `ta --help` stays fast

            message = str(error) if isinstance(error, UserError) else missing_extra(error)
            if message is None:  # not a package an extra provides: a bug, keep the traceback
                raise
            click.echo(f"error: {message}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tiny-audio")
def cli() -> None:
    """tiny-audio: train, evaluate, inspect, demo and publish your own speech recognizer."""
    # No "Loading weights" bar from transformers on every model load (it reads this when first
    # imported, after this line); HF_HUB_DISABLE_PROGRESS_BARS=0 brings the bars back.
    os.environ.setdefault(QUIET_LOADING, "1")


def main() -> None:
    cli()
