"""Parts both training recipes build from (trainer.py for tiny-audio models, lact.py for LaCT):
the learning-rate schedule, the precision setting and the `data.augment` block. Each recipe keeps
its own loop; what they share is written here once. Nothing here imports torch at import time:
`ta train` checks settings against SCHEDULES before any model loads."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from tiny_audio.data.augment import FeatureAugmenter

logger = logging.getLogger("tiny_audio")

# training.lr_scheduler: the learning rate's decay after the warm-up, by progress from 0 to 1.
SCHEDULES: dict[str, Callable[[float], float]] = {
    "cosine": lambda progress: 0.5 * (1 + math.cos(math.pi * progress)),
    "linear": lambda progress: 1 - progress,
    "constant": lambda progress: 1.0,
}


def lr_lambda(warmup: int, total: int, schedule: str) -> Callable[[int], float]:
    """The factor on the base learning rate at each step: a linear warm-up over `warmup` steps,
    then SCHEDULES[schedule] to step `total`."""
    decay = SCHEDULES[schedule]

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return decay(min(1.0, (step - warmup) / max(1, total - warmup)))

    return factor


def native_bf16() -> bool:
    """Whether this machine multiplies bfloat16 natively: a CUDA GPU that supports it, or a CPU
    with AVX512-BF16 or AMX. Elsewhere PyTorch's bfloat16 matrix products fall back to scalar
    code, many times slower than float32 (about 30x measured on a 2-core AVX2 CPU)."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def bf16_enabled(setting: bool | str) -> bool:
    """training.bf16: true, false, or "auto" (where the hardware has native bfloat16)."""
    if setting == "auto":
        return native_bf16()
    if setting and not native_bf16():
        logger.warning(
            "training.bf16=true on hardware without native bfloat16: training runs many times "
            "slower than float32 (training.bf16=auto picks for you)"
        )
    return bool(setting)


def augmenters(
    block: Mapping[str, float],
) -> tuple[Callable[[np.ndarray], np.ndarray] | None, FeatureAugmenter | None]:
    """Waveform and feature augmentation functions for a `data.augment` block (name ->
    probability), or None for each kind that is off; `silence` shapes the data set instead."""
    augment = {name: p for name, p in block.items() if p > 0 and name != "silence"}
    if not augment:
        return None, None
    from tiny_audio.data.augment import feature_augmenter, waveform_augmenter

    return waveform_augmenter(augment), feature_augmenter(augment)
