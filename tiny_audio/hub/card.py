"""The model card (README.md) `ta push` publishes: Hub metadata, how to load the model, its parts,
the training recipe and every `ta eval` result found for it.

A folder that already carries a card (the bundled `default`, a model downloaded from the Hub)
keeps its author's sections: only the sections that depend on where it goes and what it holds
are rebuilt, and fresh `ta eval` results replace its evaluation."""

from __future__ import annotations

import importlib.metadata
import json
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from tiny_audio.hub.families import Family
from tiny_audio.recognizer import CONFIG_FILE
from tiny_audio.train.run_folder import METRICS, run_config

CARD_FILE = "README.md"
PROJECT = "tiny_audio"  # the import name; its distribution's licence is the card's
EVALUATION = "Evaluation"
# Rebuilt on every push, from the destination and the folder's files; an own card's other
# sections are its author's and are kept.
GENERATED_SECTIONS = ("Use it", "Model")
# The whole training config, as a card embeds it for reproducing the run.
CONFIG_BLOCK = "<details><summary>The full <code>ta train</code> config</summary>\n\n```yaml\n{}\n```\n\n</details>"
CONFIG_BLOCK_PATTERN = re.compile(r"```yaml\n(.*?)\n```", re.DOTALL)


def template(name: str) -> string.Template:
    return string.Template(files("tiny_audio.hub_templates").joinpath(name).read_text())


@dataclass
class Card:
    metadata: dict[str, Any]
    title: str
    summary: str
    sections: dict[str, str]  # heading -> text, in order

    @classmethod
    def parse(cls, text: str) -> Card:
        metadata: dict[str, Any] = {}
        if text.startswith("---\n"):
            _, header, text = text.split("---\n", 2)
            metadata = yaml.safe_load(header) or {}
        head, *sections = re.split(r"^## (.+)\n", text, flags=re.MULTILINE)
        title = re.search(r"^# (.+)$", head, flags=re.MULTILINE)
        return cls(
            metadata=metadata,
            title=title.group(1).strip() if title else "",
            summary=(head[title.end() :] if title else head).strip(),
            sections={
                heading.strip(): body.strip()
                for heading, body in zip(sections[::2], sections[1::2])
            },
        )

    def render(self) -> str:
        metadata = yaml.safe_dump(self.metadata, sort_keys=False, allow_unicode=True)
        body = "\n\n".join(f"## {heading}\n\n{text}" for heading, text in self.sections.items())
        return f"---\n{metadata}---\n\n# {self.title}\n\n{self.summary}\n\n{body}\n"

    def result_count(self) -> int:
        """Evaluation results in the metadata (one per dataset or slice)."""
        return sum(len(entry.get("results", [])) for entry in self.metadata.get("model-index", []))

    def keeping(self, own: Card, fresh_evaluation: bool) -> Card:
        """This generated card with the sections and metadata of the folder's own card."""
        kept = {
            heading: text
            for heading, text in own.sections.items()
            if heading not in GENERATED_SECTIONS
            and not (heading == EVALUATION and fresh_evaluation)
        }
        metadata = self.metadata | {k: v for k, v in own.metadata.items() if k not in self.metadata}
        if "model-index" in metadata:  # named after the repo, like the title
            metadata["model-index"] = [
                {**entry, "name": self.title} for entry in metadata["model-index"]
            ]
        return Card(metadata, self.title, self.summary, {**self.sections, **kept})


# ---- what the folder and its run recorded -------------------------------------------------


def find_metrics(model_dir: Path, eval_dirs: Sequence[Path] = ()) -> list[dict[str, Any]]:
    """`ta eval` results for this model: those inside its folder (`ta eval -o CHECKPOINT/eval`)
    and those under eval_dirs whose "model" is this folder. The newest per (dataset, split) wins."""
    candidates = list(model_dir.rglob(METRICS))
    for directory in eval_dirs:
        candidates += directory.rglob(METRICS) if directory.is_dir() else []
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


def training_config(model_dir: Path) -> str | None:
    """The composed `ta train` config as YAML: saved beside the checkpoint, or else the copy the
    folder's own card embeds (a model published or bundled without its run)."""
    beside = run_config(model_dir.resolve().parent)  # resolved: best/ is a link into the run
    if beside:
        return beside.read_text().replace(str(Path.home()), "~")
    own = model_dir / CARD_FILE
    embedded = CONFIG_BLOCK_PATTERN.search(own.read_text()) if own.is_file() else None
    return embedded.group(1) if embedded else None


def dataset_label(dataset: str) -> str:
    """A dataset as a card names it: a local path (a manifest or a folder of clips) by its last
    two parts, since the absolute path is only true on the machine that evaluated it."""
    path = Path(dataset).expanduser()
    return "/".join(path.parts[1:][-2:]) if path.is_absolute() else dataset


def training_datasets(config: Mapping[str, Any]) -> list[str]:
    """The training sources, a Hub dataset by its repo id and local data by its card label."""
    from tiny_audio.data.sources import HUB_DATASETS

    names = []
    for entry in (config.get("data") or {}).get("train") or []:
        source = str(entry.get("source"))
        splits = HUB_DATASETS.get(source)
        names.append(next(iter(splits.values())).repo if splits else dataset_label(source))
    return list(dict.fromkeys(names))


def recipe_rows(config: Mapping[str, Any], model_dir: Path) -> dict[str, Any]:
    """The card's recipe table: the run's settings and the checkpoint's own step and dev WER."""
    rows: dict[str, Any] = {}
    data, training = config.get("data") or {}, config.get("training") or {}
    augment = {name: p for name, p in (data.get("augment") or {}).items() if p}
    rows["experiment"] = config.get("experiment")
    rows["training data"] = ", ".join(training_datasets(config))
    if data:
        rows["augmentation"] = ", ".join(f"{name} {p}" for name, p in augment.items()) or "none"
    if training:
        rows["batch size"] = training.get("per_device_train_batch_size", 1) * training.get(
            "gradient_accumulation_steps", 1
        )
        schedule = [training.get("lr_scheduler"), f"{training.get('warmup_steps')} warmup steps"]
        rows["learning rate"] = (
            f"{training.get('learning_rate')} ({', '.join(str(s) for s in schedule if s)})"
        )
        rows["planned steps"] = training.get("max_steps")
    checkpoint_file = model_dir / METRICS
    if checkpoint_file.is_file():
        checkpoint = json.loads(checkpoint_file.read_text())
        rows["checkpoint step"] = checkpoint.get("step")
        if checkpoint.get("dev_wer") is not None:
            rows["dev WER at this step"] = f"{percent(checkpoint['dev_wer'])}%"
    return {name: value for name, value in rows.items() if value not in (None, "")}


# ---- formatting ---------------------------------------------------------------------------


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def percent(value: Any) -> str:
    return f"{100 * float(value):.2f}" if value is not None else "-"


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


def model_index(title: str, evaluation: Sequence[tuple[str, Mapping[str, Any]]]) -> list[Any]:
    """The Hub's machine-readable form of the evaluation table (WER per dataset)."""
    results = [
        {
            "task": {"type": "automatic-speech-recognition", "name": "Speech Recognition"},
            "dataset": {"name": label, "type": label.split(" ")[0]},
            "metrics": [
                {"type": "wer", "value": round(100 * float(figures["wer"]), 2), "name": "WER"}
            ],
        }
        for label, figures in evaluation
        if figures.get("wer") is not None
    ]
    return [{"name": title, "results": results}]


def evaluation_text(evaluation: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    if not evaluation:
        return (
            "No `ta eval` results were found next to this checkpoint. "
            "`ta eval -m CHECKPOINT -d DATASET -o CHECKPOINT/eval` before pushing adds them here."
        )
    table = markdown_table(
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
    return (
        f"{table}\n\nWER and CER after Whisper's English text normalizer (as the Open ASR "
        "Leaderboard scores); RTFx = audio seconds per second of transcription, measured by "
        "`ta eval`."
    )


def project_license() -> str:
    """The Hub licence id of this project's own licence (its distribution's metadata)."""
    distribution = importlib.metadata.packages_distributions()[PROJECT][0]
    return str(importlib.metadata.metadata(distribution)["License"]).lower()


# ---- the card -----------------------------------------------------------------------------


def model_card(
    model_dir: Path, family: Family, *, model_id: str, metrics: Sequence[Mapping[str, Any]] = ()
) -> Card:
    """The card (README.md) for a saved model of `family`, to be published as `model_id`."""
    config = json.loads((model_dir / CONFIG_FILE).read_text())
    described = family.describe(config, model_dir)
    title = model_id.split("/")[-1]
    config_text = training_config(model_dir)
    run = (yaml.safe_load(config_text) or {}) if config_text else {}
    recipe = recipe_rows(run, model_dir)
    evaluation = evaluation_rows(metrics)

    metadata: dict[str, Any] = {
        "license": project_license(),
        "library_name": "transformers",
        "pipeline_tag": "automatic-speech-recognition",
        "language": ["en"],
        "tags": list(family.tags),
        "base_model": described.base_models,
        "datasets": training_datasets(run),
        "model-index": model_index(title, evaluation) if evaluation else None,
    }
    sections = {
        "Use it": template(f"usage_{family.model_type}.md").substitute(model_id=model_id).strip(),
        "Model": "\n\n".join(
            text
            for text in (markdown_table(("part", "value"), described.architecture), described.notes)
            if text
        ),
        "Training recipe": "\n\n".join(
            text
            for text in (
                markdown_table(("setting", "value"), recipe.items())
                if recipe
                else "Not recorded with this checkpoint.",
                CONFIG_BLOCK.format(config_text.strip()) if config_text else "",
            )
            if text
        ),
        EVALUATION: evaluation_text(evaluation),
        "Limitations": template(f"limitations_{family.model_type}.md")
        .substitute(trained=described.trained)
        .strip(),
    }
    card = Card(
        {key: value for key, value in metadata.items() if value},
        title,
        described.summary,
        sections,
    )
    own = model_dir / CARD_FILE
    if own.is_file():
        return card.keeping(Card.parse(own.read_text()), fresh_evaluation=bool(evaluation))
    return card
