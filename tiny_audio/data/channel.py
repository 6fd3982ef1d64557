"""`ta data channel`: a copy of a corpus heard through phone lines and lossy codecs.

Each clip goes through one channel of `augment.CHANNELS`, taken in turn so that every channel
gets a share of the clips, and its slice (`source`) names the channel: `ta eval` on the copy
then reports WER per channel, beside the clean original."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import soundfile as sf

from tiny_audio.audio import SAMPLE_RATE
from tiny_audio.data.augment import CHANNELS
from tiny_audio.data.manifest import Utterance, clips_folder, decoded, write_manifest
from tiny_audio.errors import UserError


def through_channels(
    clips: Iterable[Utterance], out: Path, channels: Sequence[str] = tuple(CHANNELS), seed: int = 0
) -> list[Utterance]:
    """Write each of `clips` through a channel to OUT's folder (OUT_STEM/) and OUT (a manifest)."""
    unknown = sorted(set(channels) - set(CHANNELS))
    if unknown or not channels:
        raise UserError(
            f"unknown channel {', '.join(unknown) or '(none given)'} (known: {', '.join(CHANNELS)})"
        )
    rng = random.Random(seed)
    folder = clips_folder(out)
    written = []
    for index, (utterance, waveform) in enumerate(decoded(clips)):
        channel = channels[index % len(channels)]
        path = folder / f"{index:06d}-{channel}.flac"
        sf.write(path, CHANNELS[channel](waveform, rng), SAMPLE_RATE, subtype="PCM_16")
        written.append(
            replace(utterance, id=f"{utterance.id}-{channel}", audio=str(path), source=channel)
        )
    write_manifest(out, written)
    return written
