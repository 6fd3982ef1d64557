"""The folder `ta push` uploads: the model's weights, config and processor files, the code that
loads it, requirements.txt for that code, and the model card."""

from __future__ import annotations

import ast
import importlib.metadata
import shutil
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from tiny_audio.hub.card import CARD_FILE, PROJECT, Card, find_metrics, model_card
from tiny_audio.hub.families import Family
from tiny_audio.train.run_folder import METRICS

REQUIREMENTS_FILE = "requirements.txt"
# Never published: pickles (unsafe to load from a download), code (the family's current code is
# written instead: the code `ta eval` scored the model with) and training bookkeeping.
UNPUBLISHED_SUFFIXES = {".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt", ".py"}
UNPUBLISHED_NAMES = {METRICS, CARD_FILE, REQUIREMENTS_FILE}  # the card holds them
UNPUBLISHED_DIRS = {"eval", "runs", "logs", "__pycache__"}


def publishable_files(model_dir: Path) -> list[Path]:
    """Relative paths of what goes on the Hub: weights, config, processor and tokenizer files."""
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


def imported_modules(sources: Iterable[Path]) -> set[str]:
    """Top-level modules the files need, leaving out the standard library, each other, and
    imports inside try blocks: the code runs without those (transformers skips them too)."""
    sources = list(sources)
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Try):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        for child in ast.iter_child_nodes(node):
            visit(child)

    for path in sources:
        visit(ast.parse(path.read_text()))
    local = {path.stem for path in sources}
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
    family: Family,
    destination: Path,
    *,
    model_id: str,
    eval_dirs: Sequence[Path] = (),
) -> Card:
    """Copy what is publishable, add the family's code with its requirements.txt and the card;
    returns the card."""
    for relative in publishable_files(model_dir):
        (destination / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(model_dir / relative, destination / relative)
    family.write_code(destination)
    (destination / REQUIREMENTS_FILE).write_text(
        requirements(destination.glob("*.py"), leave_out=family.optional_requirements)
    )
    card = model_card(
        model_dir, family, model_id=model_id, metrics=find_metrics(model_dir, eval_dirs)
    )
    (destination / CARD_FILE).write_text(card.render())
    return card
