"""`ta data join`: longer training clips made of several short ones.

A model trained only on single lines learns to stop after one sentence, and then transcribes a
window of long audio as its first sentence alone. Joined clips (2-4 clips of one manifest,
with a short pause between them, their texts joined) teach it to go on to the end of the audio.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import soundfile as sf

from tiny_audio.audio import SAMPLE_RATE
from tiny_audio.data.manifest import Utterance, clips_folder, decoded, write_manifest
from tiny_audio.errors import UserError

PAUSE_SECONDS = (0.2, 0.8)
CLIPS_PER_JOIN = (2, 4)


def join_clips(
    clips: Iterable[Utterance], out: Path, count: int, max_seconds: float = 25.0, seed: int = 0
) -> list[Utterance]:
    """Write `count` joined clips to OUT (a manifest) and its folder OUT_STEM/; each joins
    2-4 of `clips` that fit in `max_seconds` with their pauses."""
    rng = random.Random(seed)
    pool = [u for u in clips if u.duration]
    if not pool:
        raise UserError("no clips with a duration to join")
    folder = clips_folder(out)
    joined = []
    for index in range(count):
        parts = _draw(rng, pool, max_seconds)
        pieces: list[np.ndarray] = []
        used: list[Utterance] = []
        for utterance, waveform in decoded(parts):
            if pieces:
                pause = rng.uniform(*PAUSE_SECONDS)
                pieces.append(np.zeros(int(pause * SAMPLE_RATE), dtype=np.float32))
            pieces.append(waveform)
            used.append(utterance)
        if len(used) < 2:
            continue
        audio = np.concatenate(pieces)
        path = folder / f"joined-{index:06d}.flac"
        sf.write(path, audio, SAMPLE_RATE, subtype="PCM_16")
        speakers = {u.speaker for u in used}
        joined.append(
            Utterance(
                f"{out.stem}-{index:06d}",
                str(path),
                " ".join(u.text for u in used),
                round(len(audio) / SAMPLE_RATE, 3),
                speakers.pop() if len(speakers) == 1 else None,
                used[0].source,
                " ".join(u.heard for u in used) if any(u.spoken for u in used) else None,
            )
        )
    write_manifest(out, joined)
    return joined


def _draw(rng: random.Random, pool: list[Utterance], max_seconds: float) -> list[Utterance]:
    """Up to 2-4 clips whose durations and pauses fit in `max_seconds`."""
    wanted = rng.randint(*CLIPS_PER_JOIN)
    parts: list[Utterance] = []
    total = 0.0
    for _ in range(wanted * 4):  # a few tries to find clips short enough
        candidate = rng.choice(pool)
        length = (candidate.duration or 0.0) + (PAUSE_SECONDS[1] if parts else 0.0)
        if total + length <= max_seconds:
            parts.append(candidate)
            total += length
            if len(parts) == wanted:
                break
    return parts
