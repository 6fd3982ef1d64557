"""Cold start: process start to printed text for one short clip, as a user meets it. A
tiny-audio model (or any recognizer) runs `ta transcribe CLIP`; a faster-whisper peer runs the
few lines its own README shows, so that neither side carries the other's start-up costs."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tiny_audio.errors import UserError

# The whole of a user's faster-whisper script: load the model, transcribe, print.
FASTER_WHISPER_SCRIPT = """
import sys
from faster_whisper import WhisperModel
model = WhisperModel(sys.argv[1], device="cpu", compute_type="int8", cpu_threads=int(sys.argv[3]))
segments, _ = model.transcribe(sys.argv[2], language="en", beam_size=1, without_timestamps=True)
print(" ".join(segment.text.strip() for segment in segments))
"""


def command_for(name: str, clip: Path, threads: int, fp32: bool) -> list[str]:
    peer, _, variant = name.partition(":")
    if peer == "whisper":
        from tiny_audio.evaluate.peers import WHISPER_VARIANTS
        from tiny_audio.zoo import ct2_path

        directory = str(ct2_path(WHISPER_VARIANTS[variant or "tiny.en"]))
        return [sys.executable, "-c", FASTER_WHISPER_SCRIPT, directory, str(clip), str(threads)]
    command = [sys.executable, "-m", "tiny_audio", "transcribe", str(clip), "-m", name]
    return command + (["--fp32"] if fp32 else [])


def cold_start(name: str, clip: Path, threads: int, fp32: bool = False) -> dict[str, float]:
    """Wall seconds from process start to its text, and the process's peak RSS."""
    environment = os.environ | {"OMP_NUM_THREADS": str(threads)}
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(
            command_for(name, clip, threads, fp32),
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
        _, status, usage = os.wait4(process.pid, 0)  # the child's own peak, not the parent's
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            errors.seek(0)
            last = errors.read().decode(errors="replace").strip().splitlines()[-1:] or ["?"]
            raise UserError(f"cold start of {name} failed: {last[0]}")
    return {"cold_start_s": seconds, "cold_start_rss_mib": usage.ru_maxrss / 1024}
