"""Publish on the Hugging Face Hub: a trained checkpoint as a model repo with its card
(`ta push`), and a Gradio Space that serves a model (`ta deploy`). Both build a folder first;
`--dry-run DIR` stops there, so what would be uploaded can be read and tested offline."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import shutil
import string
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console

from tiny_audio.errors import UserError

console = Console(stderr=True)

# Never published: pickles (unsafe to load from a download) and training bookkeeping.
UNPUBLISHED_SUFFIXES = {".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt"}
UNPUBLISHED_NAMES = {"metrics.json", "README.md", "requirements.txt"}  # the card holds them
UNPUBLISHED_DIRS = {"eval", "runs", "logs", "__pycache__"}
METRICS_FILE = (
    "metrics.json"  # `ta eval` writes one per model and dataset; `ta train` one per checkpoint
)
TRAINING_CONFIG = "config.yaml"  # `ta train` saves its composed config beside the checkpoints
BUNDLED_MODEL_DIR = "model"  # inside a Space folder, when the model ships with the app
PREINSTALLED_ON_SPACES = {"gradio"}  # the Space's sdk_version pins it
PROJECT = "tiny_audio"  # remote code imports it only optionally (try/except ImportError)


def template(name: str) -> string.Template:
    return string.Template(files("tiny_audio.hub_templates").joinpath(name).read_text())


# ---- the model folder ---------------------------------------------------------------------


def resolve_model_dir(model: str) -> Path:
    """A checkpoint directory, or a zoo / bundled model name, as a folder with config.json."""
    path = Path(model).expanduser()
    if not path.is_dir():
        from tiny_audio.zoo import resolve

        path = Path(resolve(model))
    config = path / "config.json"
    if not config.is_file() or "auto_map" not in json.loads(config.read_text()):
        raise UserError(
            f"{model}: no config.json with auto_map; save the model with save_pretrained "
            "(checkpoints from `ta train` have it)"
        )
    return path


def publishable_files(model_dir: Path) -> list[Path]:
    """Relative paths of what goes on the Hub: weights, config, code, processor files."""
    chosen = []
    for path in sorted(model_dir.rglob("*")):
        relative = path.relative_to(model_dir)
        if (
            path.is_file()
            and path.suffix not in UNPUBLISHED_SUFFIXES
            and not (len(relative.parts) == 1 and relative.name in UNPUBLISHED_NAMES)
            and not UNPUBLISHED_DIRS.intersection(relative.parts[:-1])
        ):
            chosen.append(relative)
    return chosen


def find_metrics(model_dir: Path, eval_dirs: Sequence[Path] = ()) -> list[dict[str, Any]]:
    """`ta eval` results for this model: those inside its folder (`ta eval -o CHECKPOINT/eval`)
    and those under eval_dirs whose "model" is this folder. The newest per (dataset, split) wins."""
    candidates = list(model_dir.rglob(METRICS_FILE))
    for directory in eval_dirs:
        candidates += directory.rglob(METRICS_FILE) if directory.is_dir() else []
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for path in candidates:
        metrics = json.loads(path.read_text())
        if "dataset" not in metrics or "wer" not in metrics:  # a checkpoint's own dev figures
            continue
        inside = path.is_relative_to(model_dir)
        if not inside and Path(str(metrics.get("model", ""))).resolve() != model_dir.resolve():
            continue
        key = (str(metrics["dataset"]), str(metrics.get("split", "")))
        if key not in newest or str(metrics.get("date", "")) > str(newest[key].get("date", "")):
            newest[key] = metrics
    return [newest[key] for key in sorted(newest)]


def training_recipe(model_dir: Path) -> tuple[dict[str, Any], str | None]:
    """(rows for the card, the full training config as YAML) from what `ta train` left: its
    composed config beside the checkpoints and the checkpoint's own step and dev WER."""
    rows: dict[str, Any] = {}
    config_file = model_dir.resolve().parent / TRAINING_CONFIG
    config_text = None
    if config_file.is_file():
        config_text = config_file.read_text().replace(str(Path.home()), "~")
        config = yaml.safe_load(config_text) or {}
        data, training = config.get("data") or {}, config.get("training") or {}
        augment = {name: p for name, p in (data.get("augment") or {}).items() if p}
        rows["experiment"] = config.get("experiment")
        rows["training data"] = ", ".join(
            str(entry.get("source")) for entry in data.get("train") or []
        )
        rows["augmentation"] = ", ".join(f"{name} {p}" for name, p in augment.items()) or "none"
        if training:
            rows["batch size"] = training.get("per_device_train_batch_size", 1) * training.get(
                "gradient_accumulation_steps", 1
            )
            rows["learning rate"] = (
                f"{training.get('learning_rate')} ({training.get('lr_scheduler')}, "
                f"{training.get('warmup_steps')} warmup steps)"
            )
            rows["planned steps"] = training.get("max_steps")
    checkpoint_file = model_dir / METRICS_FILE
    if checkpoint_file.is_file():
        checkpoint = json.loads(checkpoint_file.read_text())
        rows["checkpoint step"] = checkpoint.get("step")
        if checkpoint.get("dev_wer") is not None:
            rows["dev WER at this step"] = f"{percent(checkpoint['dev_wer'])}%"
    return {name: value for name, value in rows.items() if value not in (None, "")}, config_text


def count_parameters(model_dir: Path) -> int:
    """Numbers stored in the folder's safetensors files (read from headers, no tensors loaded)."""
    from safetensors import safe_open

    total = 0
    for weights in model_dir.glob("*.safetensors"):
        with safe_open(str(weights), framework="numpy") as file:
            for name in file.keys():  # noqa: SIM118 (safe_open is not a dict)
                shape = file.get_slice(name).get_shape()
                count = 1
                for size in shape:
                    count *= size
                total += count
    return total


def hub_id(part: str) -> str | None:
    """The Hub repo a zoo part or Hub id comes from (None for a local folder)."""
    from tiny_audio.model.modeling import ZOO_HUB_IDS

    if part in ZOO_HUB_IDS:
        return ZOO_HUB_IDS[part]
    if part.count("/") == 1 and not Path(part).exists():
        return part
    return None


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def percent(value: Any) -> str:
    return f"{100 * float(value):.2f}" if value is not None else "-"


def dataset_label(dataset: str) -> str:
    """A dataset as a card names it: a local path (a manifest or a folder of clips) by its last
    two parts, since the absolute path is only true on the machine that evaluated it."""
    path = Path(dataset).expanduser()
    return "/".join(path.parts[1:][-2:]) if path.is_absolute() else dataset


def evaluation_rows(metrics: Sequence[Mapping[str, Any]]) -> list[tuple[str, Mapping[str, Any]]]:
    """(label, figures) per dataset, then per slice of it; a slice that is the whole dataset (a
    manifest of one source) would only repeat its row."""
    rows = []
    for result in metrics:
        dataset = f"{dataset_label(str(result.get('dataset')))} ({result.get('split', 'test')})"
        rows.append((dataset, result))
        for slice_name, figures in result.get("slices", {}).items():
            if figures.get("n") != result.get("n"):
                rows.append((f"{dataset} / {slice_name}", figures))
    return rows


def model_card(
    model_dir: Path,
    *,
    model_id: str,
    metrics: Sequence[Mapping[str, Any]] = (),
    recipe: Mapping[str, Any] | None = None,
) -> str:
    """README.md for a saved model: Hub metadata, usage, architecture, training recipe and the
    `ta eval` figures. `recipe` adds or overrides rows (data, training time, ...)."""
    config = json.loads((model_dir / "config.json").read_text())
    encoder, decoder = config.get("audio_encoder"), config.get("text_decoder")
    lora = int(config.get("lora_rank") or 0)
    title = model_id.split("/")[-1]

    architecture_rows = [
        ("audio encoder (frozen)", encoder),
        (
            "projector (trained)",
            f"{config.get('projector_type')}, frame stacking k={config.get('projector_pool_stride')}, "
            f"hidden {config.get('projector_hidden_dim')}",
        ),
        ("language model (frozen)", decoder),
        (
            "LoRA on the language model",
            f"rank {lora}, alpha {config.get('lora_alpha')}" if lora else "none",
        ),
        ("trained parameters", f"{count_parameters(model_dir):,}"),
    ]
    recorded, training_config = training_recipe(model_dir)
    recipe_rows = {**recorded, **(recipe or {})}
    evaluation = evaluation_rows(metrics)

    metadata: dict[str, Any] = {
        "library_name": "transformers",
        "pipeline_tag": "automatic-speech-recognition",
        "language": ["en"],
        "tags": ["tiny-audio", "speech", "asr", "custom_code"],
    }
    base_models = [hub for part in (encoder, decoder) if part and (hub := hub_id(str(part)))]
    if base_models:
        metadata["base_model"] = base_models
    if evaluation:
        metadata["model-index"] = [
            {
                "name": title,
                "results": [
                    {
                        "task": {
                            "type": "automatic-speech-recognition",
                            "name": "Speech Recognition",
                        },
                        "dataset": {"name": label, "type": label.split(" ")[0]},
                        "metrics": [
                            {
                                "type": "wer",
                                "value": round(100 * float(figures["wer"]), 2),
                                "name": "WER",
                            }
                        ],
                    }
                    for label, figures in evaluation
                    if figures.get("wer") is not None
                ],
            }
        ]

    if evaluation:
        evaluation_text = (
            markdown_table(
                ("dataset", "utterances", "WER %", "CER %", "RTFx"),
                (
                    (
                        label,
                        figures.get("n", "-"),
                        percent(figures.get("wer")),
                        percent(figures.get("cer")),
                        f"{float(figures['rtfx']):.1f}" if figures.get("rtfx") else "-",
                    )
                    for label, figures in evaluation
                ),
            )
            + "\n\nWER and CER after Whisper's English text normalizer (as the Open ASR Leaderboard "
            "scores); RTFx = audio seconds per second of transcription, measured by `ta eval`."
        )
    else:
        evaluation_text = (
            "No `ta eval` results were found next to this checkpoint. "
            "`ta eval -m CHECKPOINT -d DATASET -o CHECKPOINT/eval` before pushing adds them here."
        )

    return template("model_card.md").substitute(
        metadata=yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True),
        title=title,
        summary=(
            f"A speech recognizer built with tiny-audio: the frozen `{encoder}` audio encoder, "
            f"a trained `{config.get('projector_type')}` projector and the frozen `{decoder}` "
            "language model, which writes the transcript."
        ),
        model_id=model_id,
        architecture=markdown_table(("part", "value"), architecture_rows),
        recipe=(
            markdown_table(("setting", "value"), recipe_rows.items())
            if recipe_rows
            else "Not recorded with this checkpoint."
        )
        + (
            "\n\n<details><summary>The full <code>ta train</code> config</summary>\n\n"
            f"```yaml\n{training_config.strip()}\n```\n\n</details>"
            if training_config
            else ""
        ),
        evaluation=evaluation_text,
        trained="the projector and the LoRA adapters were trained"
        if lora
        else "the projector was trained",
    )


def imported_modules(sources: Iterable[Path]) -> set[str]:
    """Top-level modules the files import, leaving out the standard library and each other."""
    sources = list(sources)
    local = {path.stem for path in sources}
    found: set[str] = set()
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - local - set(sys.stdlib_module_names) - {"__future__", PROJECT}


def requirements(sources: Iterable[Path], leave_out: Iterable[str] = ()) -> str:
    """requirements.txt for code that imports what `sources` import, at least the versions here."""
    distributions = importlib.metadata.packages_distributions()
    left_out = {name.lower() for name in leave_out}
    lines: set[str] = set()
    for module in imported_modules(sources):
        for name in distributions.get(module, [module]):
            if name.lower() in left_out:
                continue
            try:
                version = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                lines.add(name)
                continue
            major_minor = ".".join(version.split(".")[:2])
            lines.add(f"{name}>={major_minor}")
    return "".join(f"{line}\n" for line in sorted(lines, key=str.lower))


def write_model_folder(
    model_dir: Path,
    destination: Path,
    *,
    model_id: str,
    eval_dirs: Sequence[Path] = (),
    recipe: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Copy what is publishable, add README.md (card) and requirements.txt; returns the metrics
    that went into the card."""
    for relative in publishable_files(model_dir):
        (destination / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(model_dir / relative, destination / relative)
    metrics = find_metrics(model_dir, eval_dirs)
    card = model_card(model_dir, model_id=model_id, metrics=metrics, recipe=recipe)
    (destination / "README.md").write_text(card)
    (destination / "requirements.txt").write_text(requirements(destination.glob("*.py")))
    return metrics


# ---- the Space folder ---------------------------------------------------------------------


def space_model(model: str) -> tuple[str, Path | None]:
    """(what app.py loads, a local model folder to bundle with the Space or None)."""
    path = Path(model).expanduser()
    if path.is_dir():
        return BUNDLED_MODEL_DIR, resolve_model_dir(model)
    from tiny_audio.zoo import BUNDLED

    if model in BUNDLED:
        return BUNDLED_MODEL_DIR, resolve_model_dir(model)
    if model.count("/") == 1:
        return model, None
    raise UserError(
        f"{model}: not a model folder, a bundled model ({', '.join(BUNDLED) or 'none yet'}) "
        "or a Hub id (user/name)"
    )


def write_space_folder(destination: Path, *, space_id: str, model: str) -> str:
    """app.py, requirements.txt and README.md (Space metadata) for a Gradio Space serving
    `model`; a local model is copied into the Space. Returns what app.py loads."""
    import gradio

    loads, local_model = space_model(model)
    title = f"{space_id.split('/')[-1]} speech recognition"
    app = files("tiny_audio.hub_templates").joinpath("space_app.py").read_text()
    app = app.replace('"__MODEL__"', json.dumps(loads)).replace('"__TITLE__"', json.dumps(title))
    (destination / "app.py").write_text(app)

    code = [destination / "app.py"]
    if local_model is not None:
        bundled = destination / BUNDLED_MODEL_DIR
        write_model_folder(local_model, bundled, model_id=space_id)
        code += bundled.glob("*.py")
    else:  # the Hub model runs this package's remote code
        package = Path(__file__).parent
        code += [*package.joinpath("model").glob("*.py"), package / "audio.py"]
    (destination / "requirements.txt").write_text(
        requirements(code, leave_out=PREINSTALLED_ON_SPACES)
    )

    metadata: dict[str, Any] = {
        "title": title,
        "emoji": "🎙️",
        "colorFrom": "indigo",
        "colorTo": "blue",
        "sdk": "gradio",
        "sdk_version": gradio.__version__,
        "app_file": "app.py",
        "pinned": False,
        "short_description": "Speech recognition with a tiny-audio model",
    }
    if local_model is None:
        metadata["models"] = [loads]
    link = (
        f"[{loads}](https://huggingface.co/{loads})" if local_model is None else "the bundled model"
    )
    readme = template("space_readme.md").substitute(
        metadata=yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True),
        title=title,
        model_link=link,
    )
    (destination / "README.md").write_text(readme)
    return loads


# ---- upload -------------------------------------------------------------------------------


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
    model_dir = resolve_model_dir(model)

    def write(destination: Path) -> str:
        metrics = write_model_folder(model_dir, destination, model_id=repo_id, eval_dirs=eval_dirs)
        return f"model folder for {repo_id} ({len(metrics)} eval results in the card):"

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

    def write(destination: Path) -> str:
        loads = write_space_folder(destination, space_id=repo_id, model=model)
        return f"Space folder for {repo_id}, serving {loads}:"

    publish(write, repo_id, "space", private, "Deploy with tiny-audio", dry_run)
