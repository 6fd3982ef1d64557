"""`ta push` and `ta deploy`: write the folder, show it, and upload it as one commit (needs a
Hugging Face token); `--dry-run DIR` stops after writing, so what would be uploaded can be read
and tested offline."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import click
from rich.console import Console

from tiny_audio.errors import UserError
from tiny_audio.hub.families import resolve_model
from tiny_audio.hub.model_folder import write_model_folder
from tiny_audio.hub.space import space_model, write_space_folder

console = Console(stderr=True)


def hub_token() -> str:
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise UserError(
            "no Hugging Face token: set HF_TOKEN to a write token "
            "(https://huggingface.co/settings/tokens) or run `hf auth login`"
        )
    return token


def upload(folder: Path, repo_id: str, *, repo_type: str, private: bool, message: str) -> str:
    """Create the repo if needed and upload the folder as one commit; returns the repo's URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=hub_token())
    try:
        url = api.create_repo(
            repo_id,
            repo_type=repo_type,
            private=private,
            exist_ok=True,
            space_sdk="gradio" if repo_type == "space" else None,
        )
        api.upload_folder(
            repo_id=repo_id, folder_path=folder, repo_type=repo_type, commit_message=message
        )
    except Exception as error:  # network, auth, quota, name: each ends the same way for the user
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UserError(f"uploading to {repo_id} failed: {first_line}") from error
    return str(url)


def prepare_destination(dry_run: Path | None) -> Path:
    if dry_run is None:
        return Path(tempfile.mkdtemp(prefix="tiny-audio-hub-"))
    if dry_run.exists() and any(dry_run.iterdir()):
        raise UserError(f"{dry_run} is not empty; give --dry-run a new or empty folder")
    dry_run.mkdir(parents=True, exist_ok=True)
    return dry_run


def report_folder(folder: Path) -> None:
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        console.print(f"  {path.relative_to(folder)}  ({path.stat().st_size:,} bytes)")


dry_run_option = click.option(
    "--dry-run",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Write the folder to DIR and upload nothing.",
)


def publish(
    write: Callable[[Path], str],
    repo_id: str,
    repo_type: str,
    private: bool,
    message: str,
    dry_run: Path | None,
) -> None:
    """Write a folder with `write` (which returns a heading), show it, and upload it to the Hub;
    with `dry_run`, only write it there. The token is checked before any work."""
    if dry_run is None:
        hub_token()
    destination = prepare_destination(dry_run)
    try:
        console.print(write(destination))
        report_folder(destination)
        if dry_run is None:
            with console.status(f"uploading to {repo_id}"):
                url = upload(
                    destination, repo_id, repo_type=repo_type, private=private, message=message
                )
            click.echo(url)
    finally:
        if dry_run is None:
            shutil.rmtree(destination, ignore_errors=True)


@click.command()
@click.option("-m", "--model", required=True, help="Checkpoint folder (or a bundled model name).")
@click.option("--repo-id", required=True, help="user/name on the Hub.")
@click.option("--private", is_flag=True, help="Create the repo private.")
@click.option(
    "--eval-dir",
    "eval_dirs",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    default=(Path("outputs/eval"),),
    show_default=True,
    help="Where else to look for this model's `ta eval` results.",
)
@dry_run_option
def push_command(
    model: str, repo_id: str, private: bool, eval_dirs: tuple[Path, ...], dry_run: Path | None
) -> None:
    """Publish a trained model on the Hugging Face Hub with its model card (needs HF_TOKEN)."""
    model_dir, family = resolve_model(model)

    def write(destination: Path) -> str:
        card = write_model_folder(
            model_dir, family, destination, model_id=repo_id, eval_dirs=eval_dirs
        )
        return f"model folder for {repo_id} ({card.result_count()} eval results in the card):"

    publish(write, repo_id, "model", private, f"Upload {model_dir.name} with tiny-audio", dry_run)


@click.command()
@click.option("--repo-id", required=True, help="user/name of the Space.")
@click.option(
    "-m",
    "--model",
    default="default",
    show_default=True,
    help="Hub id of a pushed model, or a local model folder to ship inside the Space.",
)
@click.option("--private", is_flag=True, help="Create the Space private.")
@dry_run_option
def deploy_command(repo_id: str, model: str, private: bool, dry_run: Path | None) -> None:
    """Publish a Gradio Space that transcribes speech with a model (needs HF_TOKEN)."""
    loads, local_model = space_model(model)

    def write(destination: Path) -> str:
        write_space_folder(destination, space_id=repo_id, loads=loads, local_model=local_model)
        return f"Space folder for {repo_id}, serving {loads}:"

    publish(write, repo_id, "space", private, "Deploy with tiny-audio", dry_run)
