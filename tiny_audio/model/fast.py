"""The fast inference form of a tiny-audio model (`ASRModel.prepare_for_inference`), each part
kept because it paid on a 2-core CPU: LoRA merged into the decoder's weights, and the prompt's
text before the audio computed once and its KV cache reused for every clip. What did not pay
(BENCHMARKS.md): a bfloat16 decoder (PyTorch's bfloat16 matrix-vector products, one new token
per row, measured ~10x slower here) and the Whisper encoder run by CTranslate2 in int8 (it takes
no padding mask, so clips are encoded one by one: slower than the batched fp32 encoder).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache


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
