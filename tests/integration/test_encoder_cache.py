"""The encoder-output cache serves each clip its own rows: across builds, killed builds, damaged
indexes and two builders at once (two training runs side by side share one cache)."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from tiny_audio.data.manifest import Utterance, content_key
from tiny_audio.train.data import EncoderCache

DIM = 8


def fake_encode(waves: list[np.ndarray], delay: float = 0.0) -> list[np.ndarray]:
    """Rows that identify their clip: frame count and values follow from the waveform."""
    time.sleep(delay)
    return [
        np.full((len(wave) // 800, DIM), float(np.abs(wave).max()), dtype=np.float32)
        + np.arange(DIM, dtype=np.float32) / 100
        for wave in waves
    ]


def make_clips(folder: Path, count: int) -> list[Utterance]:
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for i in range(count):
        path = folder / f"clip{i}.wav"
        t = np.arange(16000 + 800 * i) / 16000
        sf.write(path, (0.01 * (i + 1) * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
        clips.append(Utterance(id=f"clip{i}", audio=str(path), text="x"))
    return clips


def assert_rows_match(cache: EncoderCache, clips: list[Utterance]) -> None:
    from tiny_audio.audio import load_audio

    for clip in clips:
        expected = fake_encode([load_audio(clip.audio)])[0]
        np.testing.assert_allclose(cache[content_key(clip)], expected, atol=1e-3, err_msg=clip.id)


def build_slowly(directory: Path, clips: list[Utterance]) -> None:
    EncoderCache(directory, DIM).build(clips, lambda waves: fake_encode(waves, 0.05), batch_size=2)


def test_builds_resume_and_killed_builds_leave_no_stray_rows(tmp_path: Path) -> None:
    clips = make_clips(tmp_path / "audio", 9)
    directory = tmp_path / "cache"
    EncoderCache(directory, DIM).build(clips[:4], fake_encode, batch_size=3)
    # A build killed after writing rows but before saving the index leaves rows nobody indexed.
    with (directory / "frames.f16").open("ab") as data:
        data.write(np.ones((7, DIM), dtype=np.float16).tobytes())
    cache = EncoderCache(directory, DIM)
    assert cache.missing(clips) == clips[4:]
    cache.build(clips + clips[5:7], fake_encode, batch_size=3)  # duplicates are encoded once
    assert_rows_match(EncoderCache(directory, DIM), clips)


def test_two_builders_at_once_each_clip_keeps_its_rows(tmp_path: Path) -> None:
    clips = make_clips(tmp_path / "audio", 12)
    directory = tmp_path / "cache"
    context = multiprocessing.get_context("spawn")
    builders = [
        context.Process(target=build_slowly, args=(directory, part))
        for part in (clips[:8], clips[4:])
    ]
    for builder in builders:
        builder.start()
    for builder in builders:
        builder.join(timeout=120)
        assert builder.exitcode == 0
    cache = EncoderCache(directory, DIM)
    assert not cache.missing(clips)
    assert_rows_match(cache, clips)


def test_damaged_index_is_rebuilt_not_served(tmp_path: Path) -> None:
    clips = make_clips(tmp_path / "audio", 4)
    directory = tmp_path / "cache"
    EncoderCache(directory, DIM).build(clips[:3], fake_encode)
    index = json.loads((directory / "index.json").read_text())
    index[content_key(clips[0])][0] += 1000  # points past the end of the data
    (directory / "index.json").write_text(json.dumps(index))
    cache = EncoderCache(directory, DIM)
    cache.build(clips, fake_encode)
    assert_rows_match(cache, clips)


def test_a_corpus_rebuilt_at_the_same_paths_is_encoded_again(tmp_path: Path) -> None:
    """Synthetic clip names are positional (train-000000.flac, ...): a rebuilt corpus reuses
    them for other sentences, and training must see the new audio's frames, not the old."""
    from tiny_audio.data.manifest import read_manifest
    from tiny_audio.data.synth import SynthConfig, build_corpus

    corpus, directory = tmp_path / "corpus", tmp_path / "cache"

    def build(seed: int) -> list[Utterance]:
        shutil.rmtree(corpus, ignore_errors=True)
        config = SynthConfig(hours=0.003, voices=("flite-kal16", "flite-rms"), seed=seed)
        build_corpus(corpus, config, workers=2)
        clips = read_manifest(corpus / "train.jsonl")
        EncoderCache(directory, DIM).build(clips, fake_encode)
        return clips

    first, second = build(0), build(1)
    assert {c.audio for c in first} & {c.audio for c in second}  # same paths, other sentences
    assert_rows_match(EncoderCache(directory, DIM), second)


def test_an_overwritten_clip_is_encoded_again(tmp_path: Path) -> None:
    clips = make_clips(tmp_path / "audio", 2)
    directory = tmp_path / "cache"
    EncoderCache(directory, DIM).build(clips, fake_encode)
    sf.write(clips[0].audio, np.full(24000, 0.5, dtype=np.float32), 16000)
    cache = EncoderCache(directory, DIM)
    assert cache.missing(clips) == clips[:1]
    cache.build(clips, fake_encode)
    assert_rows_match(cache, clips)
