"""Optional parts: which extra of pyproject.toml installs a package that a command found missing,
read from the installed metadata so that pyproject.toml stays the one list."""

from __future__ import annotations

import importlib.metadata
import importlib.util

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

DISTRIBUTION = "tiny-audio"
# Top-level import names that are not their distribution's name.
DISTRIBUTIONS = {"hydra": "hydra-core", "piper": "piper-tts", "hibari": "hibari-tts"}


def extras_providing(module: str) -> list[str]:
    """The extras of tiny-audio that install top-level `module`; [] for none (or no metadata)."""
    try:
        metadata = importlib.metadata.metadata(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return []
    wanted = canonicalize_name(DISTRIBUTIONS.get(module, module))
    extras = metadata.get_all("Provides-Extra") or []
    found: list[str] = []
    for line in metadata.get_all("Requires-Dist") or []:
        requirement = Requirement(line)
        if canonicalize_name(requirement.name) == wanted and requirement.marker is not None:
            found += [extra for extra in extras if requirement.marker.evaluate({"extra": extra})]
    return found


def install_command(extra: str) -> str:
    """The command that installs one extra of tiny-audio."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def missing_extra(error: ModuleNotFoundError) -> str | None:
    """One line naming the extra to install for a package an extra provides; None for others."""
    module = (error.name or "").partition(".")[0]
    if not module or importlib.util.find_spec(module) is not None:  # a submodule is missing
        return None
    extras = extras_providing(module)
    if not extras:
        return None
    first, *others = extras
    alternatives = f" (or {', '.join(f'[{extra}]' for extra in others)})" if others else ""
    return f"{module} is not installed: {install_command(first)}{alternatives}"
