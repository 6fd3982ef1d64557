"""What one request may ask of the demo, so that no one request holds a worker for long:
uploads are bounded in bytes by Gradio before any handler sees them, files and live recordings
in seconds of audio here."""

from __future__ import annotations

import soundfile as sf

from tiny_audio.errors import UserError

MAX_UPLOAD_MB = 50
MAX_AUDIO_S = 300  # five minutes; `ta transcribe` takes any length


def check_duration(path: str) -> None:
    """Refuse a file whose header promises more than MAX_AUDIO_S, before decoding any of it.
    A file without a readable header passes: decoding it names what is wrong."""
    try:
        seconds = sf.info(path).duration
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        return
    if seconds > MAX_AUDIO_S:
        raise UserError(
            f"{path}: {seconds:.0f} s of audio, over the demo's limit of {MAX_AUDIO_S} s; "
            "`ta transcribe` takes any length"
        )
