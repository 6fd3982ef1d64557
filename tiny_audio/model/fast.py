"""The fast inference form of a tiny-audio model (`ASRModel.prepare_for_inference`), each part
kept because it paid on a 2-core CPU: LoRA merged into the decoder's weights, the prompt's text
before the audio computed once and its KV cache reused for every clip, and, inside tiny-audio,
the Whisper encoder run by CTranslate2 in int8 from the zoo's files. The decoder stays fp32:
PyTorch's bfloat16 matrix-vector products (one new token per row) measured ~10x slower here.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache

from .configuration import ASRConfig
from .encoders import AudioEncoder, CTranslate2WhisperEncoder

try:  # the zoo's CTranslate2 originals exist only inside tiny-audio
    from tiny_audio.zoo import ZOO, resolve
    from tiny_audio.zoo.registry import CT2_FOLDER
except ImportError:
    ZOO = {}


class PrefixCache:
    """Keys and values of a frozen decoder for a prompt's text before the audio, computed once
    per distinct text and expanded to each batch."""

    def __init__(self, decoder: Any) -> None:
        self.decoder = decoder
        self.entries: dict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = {}

    @torch.no_grad()
    def for_batch(self, prefix_ids: list[int], batch_size: int) -> DynamicCache:
        key = tuple(prefix_ids)
        if key not in self.entries:
            ids = torch.tensor([prefix_ids], device=self.decoder.device)
            cache = self.decoder(input_ids=ids, use_cache=True).cache
            self.entries[key] = [(layer.keys, layer.values) for layer in cache.layers]
        return DynamicCache(
            [
                (keys.expand(batch_size, -1, -1, -1), values.expand(batch_size, -1, -1, -1))
                for keys, values in self.entries[key]
            ],
            config=self.decoder.config,
        )


def ct2_encoder(config: ASRConfig) -> AudioEncoder | None:
    """The CTranslate2 int8 twin of the config's Whisper encoder where the zoo holds its files
    and training did not adapt it (encoder LoRA); otherwise None."""
    name = config.audio_encoder
    if config.encoder_lora_rank > 0 or name not in ZOO:
        return None
    folder = resolve(name)
    if not (folder / CT2_FOLDER).is_dir():  # an encoder of another kind than Whisper
        return None
    return CTranslate2WhisperEncoder(str(folder / CT2_FOLDER), str(folder))
