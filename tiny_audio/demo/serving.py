"""The demo server's temporary files: uploads and recorded chunks go to a folder of its own,
removed when the server stops, by Ctrl-C, SIGTERM or a closed terminal (not SIGKILL)."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

UPLOAD_FOLDER_VARIABLE = "GRADIO_TEMP_DIR"  # where Gradio writes every upload and chunk


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # Gradio closes its server on this, as for Ctrl-C


@contextmanager
def private_upload_folder() -> Iterator[Path]:
    """A fresh folder inside Gradio's usual one for this server's files, removed on exit.
    Enter it before building the page: Gradio's components read the folder when made."""
    from gradio.utils import get_upload_folder

    parent = Path(get_upload_folder())
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="tiny-audio-demo-", dir=parent))
    previous = os.environ.get(UPLOAD_FOLDER_VARIABLE)
    os.environ[UPLOAD_FOLDER_VARIABLE] = str(folder)
    handlers = {
        number: signal.signal(number, _interrupt) for number in (signal.SIGTERM, signal.SIGHUP)
    }
    try:
        yield folder
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
        if previous is None:
            os.environ.pop(UPLOAD_FOLDER_VARIABLE)
        else:
            os.environ[UPLOAD_FOLDER_VARIABLE] = previous
        shutil.rmtree(folder, ignore_errors=True)
