"""ASRProcessor: waveforms -> encoder features, and the decoder's tokenizer with an <audio> token."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from transformers import ProcessorMixin

from .features import MIN_SAMPLES, SAMPLE_RATE


class ASRProcessor(ProcessorMixin):
    def __init__(self, feature_extractor: Any, tokenizer: Any, **kwargs: Any) -> None:
        super().__init__(feature_extractor, tokenizer, **kwargs)

    def add_audio_token(self, audio_token: str) -> int:
        if audio_token not in self.tokenizer.get_vocab():
            self.tokenizer.add_special_tokens({"additional_special_tokens": [audio_token]})
        return int(self.tokenizer.convert_tokens_to_ids(audio_token))

    def features(self, waveforms: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Each clip on its own (so a batch equals its clips one by one), then zero-padded.

        Returns features (B, ..., T) and lengths (B,) along the last axis."""
        per_clip = []
        for waveform in waveforms:
            waveform = np.asarray(waveform, dtype=np.float32)
            if len(waveform) < MIN_SAMPLES:
                waveform = np.pad(waveform, (0, MIN_SAMPLES - len(waveform)))
            extracted = self.feature_extractor(
                waveform, sampling_rate=SAMPLE_RATE, padding="longest", return_tensors="np"
            )
            values = extracted.get("input_features", extracted.get("input_values"))
            per_clip.append(torch.from_numpy(np.asarray(values[0], dtype=np.float32)))
        lengths = torch.tensor([clip.shape[-1] for clip in per_clip])
        longest = int(lengths.max())
        batch = torch.stack(
            [torch.nn.functional.pad(clip, (0, longest - clip.shape[-1])) for clip in per_clip]
        )
        return batch, lengths

    def __call__(
        self, audio: list[np.ndarray] | np.ndarray, **kwargs: Any
    ) -> dict[str, torch.Tensor]:
        waveforms = [audio] if isinstance(audio, np.ndarray) and audio.ndim == 1 else list(audio)
        features, lengths = self.features(waveforms)
        return {"input_features": features, "feature_lengths": lengths}

    def batch_decode(self, *args: Any, **kwargs: Any) -> list[str]:
        return self.tokenizer.batch_decode(*args, **kwargs)


ASRProcessor.register_for_auto_class("AutoProcessor")
