"""Joined clips: several clips of a manifest end to end, with pauses, and their texts joined."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from tiny_audio.audio import load_audio
from tiny_audio.data.join import PAUSE_SECONDS, join_clips
from tiny_audio.data.manifest import Utterance, read_manifest


def test_joined_clips_hold_their_parts_in_order_with_pauses_between(tmp_path: Path) -> None:
    clips = []
    for i in range(5):
        path = tmp_path / f"c{i}.wav"
        sf.write(path, np.full(8000 * (i + 1), 0.1 * (i + 1), dtype=np.float32), 16000)
        clips.append(Utterance(f"c{i}", str(path), f"clip {i}.", 0.5 * (i + 1), "s", "x"))
    joined = join_clips(clips, tmp_path / "out" / "joined.jsonl", count=12, max_seconds=4.0)
    assert joined and read_manifest(tmp_path / "out" / "joined.jsonl") == joined
    by_text = {c.text: c for c in clips}
    for utterance in joined:
        parts = [by_text[f"{t}."] for t in utterance.text.rstrip(".").split(". ")]
        assert len(parts) >= 2
        audio = load_audio(utterance.audio)
        assert utterance.duration is not None and utterance.duration <= 4.0
        speech = sum(len(load_audio(p.audio)) for p in parts)
        pauses = (len(audio) - speech) / 16000
        assert PAUSE_SECONDS[0] * (len(parts) - 1) <= pauses + 1e-3
        assert pauses <= PAUSE_SECONDS[1] * (len(parts) - 1) + 1e-3
        # the first part's level opens the clip: parts keep their order
        assert abs(float(audio[100]) - 0.1 * (int(parts[0].id[1:]) + 1)) < 0.01
