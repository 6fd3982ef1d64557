"""The real sample clips unpack once, as 16 kHz mono wav files with their transcripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf

from tiny_audio.zoo.samples import manifest_path, sample_clips, samples_dir


@pytest.fixture(scope="module")
def fresh_samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TINY_AUDIO_HOME", str(home))
        manifest_path()
    return home


def test_clips_are_real_transcribed_speech(
    fresh_samples: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TINY_AUDIO_HOME", str(fresh_samples))
    clips = sample_clips()
    assert len(clips) == 11
    for path, text in clips:
        info = sf.info(path)
        assert (info.samplerate, info.channels) == (16000, 1)
        assert 0.5 < info.duration < 10
        assert text and text == text.strip() and "<s>" not in text
        assert path.is_relative_to(samples_dir())
    texts = {path.stem: text for path, text in clips}
    assert texts["goforward"] == "go forward ten meters"
    assert texts["001"] == "ten of clubs"
    assert (
        texts["sense_and_sensibility_01_austen_64kb-0880"] == "he was not an ill disposed young man"
    )


def test_manifest_uses_the_shared_fields(
    fresh_samples: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TINY_AUDIO_HOME", str(fresh_samples))
    records = [json.loads(line) for line in manifest_path().read_text().splitlines()]
    assert {record["source"] for record in records} == {"librivox", "cards", "goforward"}
    for record in records:
        assert set(record) == {"id", "audio", "text", "duration", "source"}
        assert abs(sf.info(record["audio"]).duration - record["duration"]) < 1e-3
