"""Where tiny-audio keeps what it downloads, and how entries appear there all at once: each is
built in a hidden folder named after the building process and renamed into place when complete,
so a killed build leaves nothing that looks finished, and the next build sweeps it away."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from tiny_audio.errors import UserError

PARTIAL_MARK = ".partial-"
HOME_VARIABLE = "TINY_AUDIO_HOME"
# What writing into a read-only or someone else's folder raises, whoever the user is.
NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)
# In the text of whatever a full disk raises: an OSError, pip's output, a SafetensorError.
NO_SPACE = os.strerror(errno.ENOSPC)


def cache_home() -> Path:
    """`TINY_AUDIO_HOME`, or ~/.cache/tiny_audio."""
    return Path(os.environ.get(HOME_VARIABLE) or Path.home() / ".cache" / "tiny_audio").expanduser()


def disk_full(doing: str) -> UserError:
    return UserError(
        f"no space left on the disk while {doing}: free some space, or set {HOME_VARIABLE} to a "
        f"folder on a disk with room (now {cache_home()})"
    )


def not_writable(folder: Path, error: OSError) -> UserError:
    return UserError(
        f"the cache folder {folder} is not writable ({error.strerror}): set {HOME_VARIABLE} "
        "to a folder you can write"
    )


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def remove_dead_partials(folder: Path) -> list[Path]:
    """Delete the half-built entries in `folder` whose builder is gone, whatever they were
    building (a pull killed while another finished the same entry is never built again);
    return them."""
    removed = []
    for partial in folder.glob(f".*{PARTIAL_MARK}*"):
        pid = partial.name.rpartition(PARTIAL_MARK)[2]
        if not pid.isdigit() or not _process_alive(int(pid)):
            shutil.rmtree(partial, ignore_errors=True)
            removed.append(partial)
    return removed


def build_atomically(destination: Path, build: Callable[[Path], None]) -> Path:
    """Run `build(folder)` on an empty folder beside `destination`, then rename it into place.
    An existing `destination` is returned untouched (another process may have finished first).
    A cache folder that cannot be written, or a disk that fills up, is one clear UserError and
    leaves nothing behind."""
    if destination.is_dir():
        return destination
    partial = destination.with_name(f".{destination.name}{PARTIAL_MARK}{os.getpid()}")
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        remove_dead_partials(destination.parent)
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
    except OSError as error:
        if error.errno in NOT_WRITABLE:
            raise not_writable(cache_home(), error) from None
        raise
    try:
        build(partial)
        try:
            os.replace(partial, destination)
        except OSError:
            if not destination.is_dir():
                raise
    except Exception as error:
        if NO_SPACE in str(error):
            raise disk_full(f"writing {destination}") from None
        raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return destination
