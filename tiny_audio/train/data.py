"""Training data: examples from named sources, length-grouped batches that can be resumed at any
step, a memory-mapped cache of frozen-encoder outputs, and the collator."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm import tqdm

from tiny_audio.audio import AudioError, duration_seconds, load_audio
from tiny_audio.data.manifest import Utterance, content_key
from tiny_audio.data.sources import load_spec
from tiny_audio.normalize import normalize_label

if TYPE_CHECKING:
    from tiny_audio.data.augment import FeatureAugmenter

logger = logging.getLogger("tiny_audio")


def load_examples(
    specs: list[dict[str, Any]], default_split: str, min_seconds: float, max_seconds: float
) -> list[Utterance]:
    """Utterances of every source spec (`load_spec`) within the duration range."""
    examples = []
    for spec in specs:
        for utterance in load_spec(spec, default_split):
            if utterance.duration is None or min_seconds <= utterance.duration <= max_seconds:
                examples.append(utterance)
    return examples


class LengthGroupedBatches:
    """Batch i of the whole run is a pure function of (seed, i): resuming at step n needs no state.

    Each epoch shuffles, sorts windows of 50 batches by duration (so a batch pads little) and
    shuffles the batches again. With several processes, each takes its slice of a global batch."""

    def __init__(
        self,
        durations: list[float],
        batch_size: int,
        seed: int,
        group_by_length: bool,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.durations, self.batch_size, self.seed = durations, batch_size, seed
        self.group_by_length, self.rank, self.world = group_by_length, rank, world
        self.global_batch = batch_size * world
        self.per_epoch = max(1, len(durations) // self.global_batch)
        self._epoch: tuple[int, list[list[int]]] | None = None

    def _batches(self, epoch: int) -> list[list[int]]:
        if self._epoch is None or self._epoch[0] != epoch:
            rng = random.Random(self.seed * 100_003 + epoch)
            order = list(range(len(self.durations)))
            rng.shuffle(order)
            if self.group_by_length:
                window = self.global_batch * 50
                order = [
                    i
                    for start in range(0, len(order), window)
                    for i in sorted(order[start : start + window], key=self.durations.__getitem__)
                ]
            batches = [
                order[i : i + self.global_batch]
                for i in range(0, self.per_epoch * self.global_batch, self.global_batch)
            ]
            rng.shuffle(batches)
            self._epoch = (epoch, batches)
        return self._epoch[1]

    def __getitem__(self, index: int) -> list[int]:
        global_batch = self._batches(index // self.per_epoch)[index % self.per_epoch]
        return global_batch[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]


class EncoderCache:
    """Frozen encoder outputs, float16, one memory-mapped file; an index maps keys to rows.

    Built once per encoder and shared by every experiment on the same data, including runs side
    by side: building holds a lock on the folder, so two builders never append at once. Rows are
    appended and the index rewritten atomically after them, so a killed build resumes where it
    stopped (rows past the index are dropped) and readers only see rows that are complete."""

    def __init__(self, directory: Path, dim: int) -> None:
        self.directory, self.dim = directory, dim
        directory.mkdir(parents=True, exist_ok=True)
        self.data_path, self.index_path = directory / "frames.f16", directory / "index.json"
        self.index: dict[str, list[int]] = self._read_index()
        self._frames: np.ndarray | None = None

    def _read_index(self) -> dict[str, list[int]]:
        return json.loads(self.index_path.read_text()) if self.index_path.exists() else {}

    def _indexed_frames(self) -> int:
        return max((offset + frames for offset, frames in self.index.values()), default=0)

    def missing(self, utterances: list[Utterance]) -> list[Utterance]:
        return [u for u in utterances if content_key(u) not in self.index]

    def build(
        self,
        utterances: list[Utterance],
        encode: Callable[[list[np.ndarray]], list[np.ndarray]],
        batch_size: int = 16,
    ) -> list[str]:
        """Encode what is missing; returns the keys of clips that could not be read."""
        row_bytes = self.dim * 2
        with (self.directory / "lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            self.index = self._read_index()  # another builder may have added rows meanwhile
            stored = self.data_path.stat().st_size // row_bytes if self.data_path.exists() else 0
            if self._indexed_frames() > stored:
                logger.warning("encoder cache %s is damaged; rebuilding it", self.directory)
                self.index = {}
            offset = self._indexed_frames()
            self.data_path.touch()
            os.truncate(self.data_path, offset * row_bytes)  # rows a killed build left unindexed
            todo = list({content_key(u): u for u in self.missing(utterances)}.values())
            unreadable = []
            with self.data_path.open("ab") as data:
                for start in tqdm(
                    range(0, len(todo), batch_size),
                    desc="encoding (cached once)",
                    disable=not todo,
                ):
                    keys, waves = [], []
                    for utterance in todo[start : start + batch_size]:
                        try:
                            waves.append(load_audio(utterance.audio))
                            keys.append(content_key(utterance))
                        except AudioError as error:
                            unreadable.append(content_key(utterance))
                            logger.warning("skipped %s: %s", utterance.id, error)
                    for key, hidden in zip(keys, encode(waves) if waves else []):
                        data.write(hidden.astype(np.float16).tobytes())
                        self.index[key] = [offset, len(hidden)]
                        offset += len(hidden)
                    data.flush()
                    self._save_index()
        self._frames = None
        return unreadable

    def _save_index(self) -> None:
        staging = self.index_path.with_suffix(".tmp")
        staging.write_text(json.dumps(self.index))
        os.replace(staging, self.index_path)

    def __contains__(self, key: str) -> bool:
        return key in self.index

    def __getitem__(self, key: str) -> np.ndarray:
        if self._frames is None:
            self._frames = np.memmap(self.data_path, dtype=np.float16, mode="r").reshape(
                -1, self.dim
            )
        offset, frames = self.index[key]
        return np.asarray(self._frames[offset : offset + frames], dtype=np.float32)


def encoder_cache_dir(root: Path, encoder: str, pad_to_window: bool = False) -> Path:
    slug = hashlib.sha1(encoder.encode()).hexdigest()[:12]
    mode = "-window" if pad_to_window else ""
    return root / "encoder_cache" / f"{Path(encoder).name}-{slug}{mode}"


def pad_frames(frames: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """(T_i, D) arrays -> (B, T, D) zero-padded tensor and (B, T) mask."""
    longest = max(len(f) for f in frames)
    batch = torch.zeros(len(frames), longest, frames[0].shape[1])
    for i, f in enumerate(frames):
        batch[i, : len(f)] = torch.from_numpy(f)
    lengths = torch.tensor([len(f) for f in frames])
    return batch, torch.arange(longest)[None, :] < lengths[:, None]


class Collator:
    """Utterances -> a model batch. Unreadable clips are reported and left out of the batch."""

    def __init__(
        self,
        model: Any,
        cache: EncoderCache | None,
        lowercase_labels: bool,
        augment_waveform: Callable[[np.ndarray], np.ndarray] | None = None,
        augment_features: FeatureAugmenter | None = None,
    ) -> None:
        self.model, self.cache, self.lowercase_labels = model, cache, lowercase_labels
        self.augment_waveform, self.augment_features = augment_waveform, augment_features

    def __call__(self, utterances: list[Utterance]) -> dict[str, Any] | None:
        texts = [normalize_label(u.text, lowercase=self.lowercase_labels) for u in utterances]
        if self.cache is not None:
            kept = [i for i, u in enumerate(utterances) if content_key(u) in self.cache]
            if not kept:
                return None
            hidden, mask = pad_frames([self.cache[content_key(utterances[i])] for i in kept])
            counts = self.model.projector.output_lengths(mask.sum(dim=1)).tolist()
            batch: dict[str, Any] = {"encoder_hidden": hidden, "encoder_mask": mask}
            seconds = [utterances[i].duration or 0.0 for i in kept]
        else:
            kept, waves = [], []
            for i, utterance in enumerate(utterances):
                try:
                    wave = load_audio(utterance.audio)
                except AudioError as error:
                    logger.warning("skipped %s: %s", utterance.id, error)
                    continue
                kept.append(i)
                waves.append(self.augment_waveform(wave) if self.augment_waveform else wave)
            if not kept:
                return None
            features, lengths = self.model.processor.features(waves)
            if self.augment_features is not None:
                features = self.augment_features(features, lengths)
            batch = {"input_features": features, "feature_lengths": lengths}
            counts = self.model.audio_token_counts(lengths)
            seconds = [duration_seconds(w) for w in waves]
        batch.update(self.model.processor.text_inputs(counts, texts=[texts[i] for i in kept]))
        batch["audio_seconds"] = float(sum(seconds))
        return batch
