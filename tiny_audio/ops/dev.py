"""Developer commands: `ta dev lint|typecheck|test|check` (ruff, mypy, pytest in the source
checkout, with their exit codes) and `ta doctor` (is this machine set up, and what to fix)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
from packaging.requirements import Requirement
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tiny_audio.errors import UserError
from tiny_audio.extras import DISTRIBUTION, install_command

SOURCES = ["tiny_audio", "tests"]
# step -> commands, each run as `python -m TOOL ARGS...` in the checkout.
STEPS: dict[str, list[list[str]]] = {
    "lint": [["ruff", "check", *SOURCES], ["ruff", "format", "--check", *SOURCES]],
    "typecheck": [["mypy", "tiny_audio"]],
    "test": [["pytest", "-q"]],
}
DEV_TOOLS_HINT = "pip install -e '.[dev]'"

console = Console(highlight=False)


def source_root() -> Path:
    root = Path(__file__).resolve().parents[2]  # tiny_audio/ops/dev.py -> the checkout
    if not (root / "pyproject.toml").is_file():
        raise UserError(
            "`ta dev` needs a source checkout (git clone, then pip install -e '.[dev]')"
        )
    return root


def run_step(step: str, extra: tuple[str, ...] = ()) -> int:
    """Run one step's commands, each with the extra arguments; the first non-zero exit code."""
    root = source_root()
    for tool, *arguments in STEPS[step]:
        if importlib.util.find_spec(tool) is None:
            raise UserError(f"{tool} is not installed: {DEV_TOOLS_HINT}")
        console.print(f"[bold]$ {tool} {' '.join([*arguments, *extra])}[/bold]")
        code = subprocess.run([sys.executable, "-m", tool, *arguments, *extra], cwd=root).returncode
        if code != 0:
            return code
    return 0


@click.group()
def dev() -> None:
    """Lint, type-check and test the source checkout."""


def _step_command(step: str, help_text: str) -> click.Command:
    @click.command(
        step,
        help=help_text,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )
    @click.argument("extra", nargs=-1, type=click.UNPROCESSED)
    def command(extra: tuple[str, ...]) -> None:
        sys.exit(run_step(step, extra))

    return command


# step -> help; extra command-line arguments are passed on to the step's tools.
STEP_HELP: dict[str, str] = {
    "lint": "Run ruff check and ruff format --check (extra arguments go to both).",
    "typecheck": "Run mypy on the package (extra arguments go to mypy).",
    "test": "Run pytest (extra arguments go to pytest: -k zoo, -x, -m 'not slow').",
}
for step_name, step_help in STEP_HELP.items():
    dev.add_command(_step_command(step_name, step_help))


@dev.command("check")
def check() -> None:
    """Run lint, typecheck and test; exit with the first failing step's code."""
    codes = {step: run_step(step) for step in STEPS}
    table = Table("step", "exit code")
    for step, code in codes.items():
        table.add_row(step, f"[green]{code}[/green]" if code == 0 else f"[red]{code}[/red]")
    console.print(table)
    sys.exit(next((code for code in codes.values() if code != 0), 0))


# ---- doctor -------------------------------------------------------------------------------

STATUS_STYLES = {"ok": "green", "optional": "dim", "warn": "yellow", "missing": "bold red"}


@dataclass
class Finding:
    check: str
    status: str  # a key of STATUS_STYLES; "missing" means required and absent
    detail: str
    fix: str = ""


# System tool -> (executables to look for, Debian package, what needs it).
SYSTEM_TOOLS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "sox": (("sox",), "sox", "speed/pitch/noise augmentation"),
    "espeak-ng": (("espeak-ng",), "espeak-ng", "synthetic speech"),
    "flite": (("flite",), "flite", "synthetic speech"),
    "text2wave": (("text2wave",), "festival", "synthetic speech (festival)"),
    "chromium": (
        ("chromium", "chromium-browser", "google-chrome"),
        "chromium",
        "demo browser tests",
    ),
    "sshd": (("sshd",), "openssh-server", "remote-training tests"),
    "tmux": (("tmux",), "tmux", "remote training sessions"),
}
SYSTEM_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/local/sbin"])
MIN_FREE_BYTES = 3 * 10**9


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def check_python() -> list[Finding]:
    from packaging.specifiers import SpecifierSet

    required = importlib.metadata.metadata(DISTRIBUTION)["Requires-Python"] or ""
    version = ".".join(map(str, sys.version_info[:3]))
    if version in SpecifierSet(required):
        return [Finding("python", "ok", f"{version} ({sys.executable})")]
    return [Finding("python", "missing", f"{version}, needs {required}", f"use Python {required}")]


def _importable_modules() -> dict[str, list[str]]:
    """Normalized distribution name -> the top-level modules it installs."""
    modules_of: dict[str, list[str]] = {}
    for module, distributions in importlib.metadata.packages_distributions().items():
        for distribution in distributions:
            modules_of.setdefault(_normalize(distribution), []).append(module)
    return modules_of


def _problem(requirement: Requirement, modules_of: dict[str, list[str]]) -> str | None:
    """What is wrong with an installed requirement ("not installed", a wrong version), or None."""
    try:
        version = importlib.metadata.version(requirement.name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
    modules = modules_of.get(_normalize(requirement.name), [])
    if not any(importlib.util.find_spec(module) for module in modules):
        return f"{version} installed but not importable"
    if not requirement.specifier.contains(version, prereleases=True):
        return f"{version}, needs {requirement.specifier}"
    return None


def _extra_status(extra: str) -> str:
    """How much a missing extra matters here: training's, and W&B's once its key is set, warn."""
    if extra == "train" or (extra == "wandb" and os.environ.get("WANDB_API_KEY")):
        return "warn"
    return "optional"


def check_packages() -> list[Finding]:
    """Each core requirement, then each extra as a whole: one line, one install command."""
    modules_of = _importable_modules()
    extras: dict[str, list[str]] = {}
    findings = []
    for line in importlib.metadata.requires(DISTRIBUTION) or []:
        requirement = Requirement(line)
        if requirement.marker is None:
            problem = _problem(requirement, modules_of)
            name = f"package {requirement.name}"
            findings.append(
                Finding(name, "missing", problem, f"pip install '{requirement}'")
                if problem
                else Finding(name, "ok", importlib.metadata.version(requirement.name))
            )
            continue
        if _normalize(requirement.name) == DISTRIBUTION:  # [all] names the other extras
            continue
        for extra in importlib.metadata.metadata(DISTRIBUTION).get_all("Provides-Extra") or []:
            if requirement.marker.evaluate({"extra": extra}):
                problem = _problem(requirement, modules_of)
                extras.setdefault(extra, [])
                if problem:
                    extras[extra].append(f"{requirement.name} ({problem})")
    for extra, problems in extras.items():
        fix = DEV_TOOLS_HINT if extra == "dev" else install_command(extra)
        findings.append(
            Finding(f"extra [{extra}]", _extra_status(extra), "; ".join(problems), fix)
            if problems
            else Finding(f"extra [{extra}]", "ok", "installed")
        )
    return findings


def check_training_data() -> list[Finding]:
    """The corpora `ta train` (the base config, which +experiments=mlp keeps) reads."""
    if importlib.util.find_spec("hydra") is None:  # the [train] extra's line says what to do
        return []
    from tiny_audio.data.sources import missing_data, source_specs
    from tiny_audio.train.main import compose

    data = compose([]).data
    findings = []
    for split, specs in (("train", data.train), ("dev", data.dev)):
        for spec in source_specs(specs):
            name = f"{split} data {Path(str(spec['source'])).parent.name or spec['source']}"
            missing = missing_data(str(spec["source"]), spec.get("split", split))
            findings.append(
                Finding(
                    name, "warn", f"{missing.missing} is missing (ta train reads it)", missing.fix
                )
                if missing
                else Finding(name, "ok", str(spec["source"]))
            )
    return findings


def check_torch() -> list[Finding]:
    import torch

    detail = f"{torch.get_num_threads()} threads on {os.cpu_count()} cores"
    if torch.cuda.is_available():
        detail += f", GPU {torch.cuda.get_device_name(0)}"
    return [Finding("torch threads", "ok", detail)]


def check_cache() -> list[Finding]:
    from tiny_audio.data.sources import data_home
    from tiny_audio.zoo import ZOO, cache_home, is_cached, model_dir

    home = cache_home()
    existing = next(parent for parent in (home, *home.parents) if parent.exists())
    findings = []
    if not os.access(existing, os.W_OK):
        findings.append(
            Finding("cache", "missing", f"{home} is not writable", "set TINY_AUDIO_HOME")
        )
    else:
        free = shutil.disk_usage(existing).free
        status = "ok" if free >= MIN_FREE_BYTES else "warn"
        findings.append(
            Finding(
                "cache",
                status,
                f"{home} ({free / 1e9:.1f} GB free)",
                "" if status == "ok" else "free disk space",
            )
        )
    for name, model in ZOO.items():
        if is_cached(name):
            findings.append(Finding(f"model {name}", "ok", str(model_dir(name))))
        else:
            status = "warn" if model.default else "optional"
            fix = "ta models pull --defaults" if model.default else f"ta models pull {name}"
            findings.append(
                Finding(f"model {name}", status, "not pulled (pulled on first use)", fix)
            )
    real = data_home() / "real"
    if any(real.glob("*.jsonl")):
        findings.append(Finding("real speech slices", "ok", str(real)))
    else:
        findings.append(
            Finding(
                "real speech slices",
                "optional",
                "built on first use from apt-get download",
                "ta data real",
            )
        )
    return findings


def check_system_tools() -> list[Finding]:
    findings = []
    for tool, (executables, package, purpose) in SYSTEM_TOOLS.items():
        found = next(
            (path for exe in executables if (path := shutil.which(exe, path=SYSTEM_PATH))), None
        )
        if found:
            findings.append(Finding(f"tool {tool}", "ok", found))
        else:
            findings.append(
                Finding(
                    f"tool {tool}",
                    "warn",
                    f"not found; needed for {purpose}",
                    f"apt-get install {package}",
                )
            )
    return findings


CHECKS: list[Callable[[], list[Finding]]] = [
    check_python,
    check_packages,
    check_torch,
    check_cache,
    check_training_data,
    check_system_tools,
]


@click.command()
def doctor() -> None:
    """Check Python, packages, cached models, training data and system tools; say what to fix."""
    findings = [finding for check in CHECKS for finding in check()]
    table = Table("check", "status", "detail", "fix")
    for column in table.columns:
        column.overflow = "fold"  # a path or command is cut nowhere, only wrapped
    for finding in findings:
        style = STATUS_STYLES[finding.status]
        table.add_row(  # "extra [train]", "pip install 'tiny-audio[train]'": text, not markup
            escape(finding.check),
            f"[{style}]{finding.status}[/{style}]",
            escape(finding.detail),
            escape(finding.fix),
        )
    console.print(table)
    problems = [f for f in findings if f.status in ("missing", "warn") and f.fix]
    for finding in problems:  # one line each, never wrapped: copy the command and run it
        click.echo(f"to fix {finding.check}: {finding.fix}")
    missing = [finding.check for finding in findings if finding.status == "missing"]
    warnings = sum(finding.status == "warn" for finding in findings)
    if missing:
        console.print(
            f"[bold red]{len(missing)} required check(s) failed:[/bold red] {', '.join(missing)}"
        )
        sys.exit(1)
    console.print(f"[green]ready[/green]: all required checks passed ({warnings} warning(s))")
