"""Where tiny-audio keeps what it downloads, and how entries appear there all at once: each is
built in a hidden folder named after the building process and renamed into place when complete,
so a killed build leaves nothing that looks finished, and the next build sweeps it away."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

PARTIAL_MARK = ".partial-"


def cache_home() -> Path:
    """`TINY_AUDIO_HOME`, or ~/.cache/tiny_audio."""
    return Path(
        os.environ.get("TINY_AUDIO_HOME") or Path.home() / ".cache" / "tiny_audio"
    ).expanduser()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def remove_dead_partials(destination: Path) -> list[Path]:
    """Delete half-built copies of `destination` whose builder is gone; return them."""
    removed = []
    for partial in destination.parent.glob(f".{destination.name}{PARTIAL_MARK}*"):
        pid = partial.name.rpartition(PARTIAL_MARK)[2]
        if not pid.isdigit() or not _process_alive(int(pid)):
            shutil.rmtree(partial, ignore_errors=True)
            removed.append(partial)
    return removed


def build_atomically(destination: Path, build: Callable[[Path], None]) -> Path:
    """Run `build(folder)` on an empty folder beside `destination`, then rename it into place.
    An existing `destination` is returned untouched (another process may have finished first)."""
    if destination.is_dir():
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_partials(destination)
    partial = destination.with_name(f".{destination.name}{PARTIAL_MARK}{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        build(partial)
        try:
            os.replace(partial, destination)
        except OSError:
            if not destination.is_dir():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return destination
