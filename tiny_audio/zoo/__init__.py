"""Pretrained parts by name: `resolve("whisper-tiny.en")` -> a local transformers folder."""

from tiny_audio.zoo.cache import cache_home
from tiny_audio.zoo.registry import (
    BUNDLED,
    ZOO,
    ZooModel,
    ct2_path,
    is_cached,
    model_dir,
    pull,
    resolve,
)

__all__ = [
    "BUNDLED",
    "ZOO",
    "ZooModel",
    "cache_home",
    "ct2_path",
    "is_cached",
    "model_dir",
    "pull",
    "resolve",
]
