"""Frozen audio encoders behind one interface: features and their lengths in, frames and a mask out.

Whisper runs either on the real length of each clip (the convolutions see zeros past the end,
exactly as they would for that clip alone, and position embeddings are sliced) or, with
`pad_to_window`, on its whole 30 s window with the clip's log-mel followed by the log-mel of
silence, as Whisper was trained; then only the clip's frames are kept. HuBERT, wav2vec2 and their
kin take the raw waveform.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, WhisperModel

from .features import SAMPLE_RATE
from .layers import length_mask


class AudioEncoder(nn.Module):
    """Base: a frozen pretrained encoder. `hidden_size` is its output width."""

    encoder: Any  # the Hugging Face model (or its LoRA wrapper)
    hidden_size: int
    frames_per_second: float

    def forward(
        self, features: torch.Tensor, feature_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def output_lengths(self, feature_lengths: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class WhisperAudioEncoder(AudioEncoder):
    # Whisper's normalised log-mel is max(log_mel, peak - 8) / 4 + 1, so silence reads peak - 2.
    SILENCE_BELOW_PEAK = 2.0

    def __init__(self, path: str) -> None:
        super().__init__()
        self.encoder = WhisperModel.from_pretrained(path).get_encoder()
        self.hidden_size = self.encoder.config.d_model
        self.max_frames = self.encoder.config.max_source_positions
        self.frames_per_second = 50.0
        self.pad_to_window = False

    def output_lengths(self, feature_lengths: torch.Tensor) -> torch.Tensor:
        return (feature_lengths - 1) // 2 + 1  # conv2 has stride 2, kernel 3, padding 1

    def forward(
        self, features: torch.Tensor, feature_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.pad_to_window:
            return self._forward_window(features, feature_lengths)
        encoder = self.encoder
        features = features.to(encoder.conv1.weight.dtype)
        hidden = F.gelu(encoder.conv1(features))
        # Zero conv1's output past each clip's end so conv2 sees what a lone clip would.
        hidden = hidden * length_mask(feature_lengths, hidden.shape[-1])[:, None, :].to(
            hidden.dtype
        )
        hidden = F.gelu(encoder.conv2(hidden)).transpose(1, 2)
        if hidden.shape[1] > self.max_frames:
            raise ValueError(f"audio longer than the encoder's {self.max_frames} frames; chunk it")
        hidden = hidden + encoder.embed_positions.weight[: hidden.shape[1]]
        lengths = self.output_lengths(feature_lengths)
        mask = length_mask(lengths, hidden.shape[1])
        attention_mask = _additive_key_mask(mask, hidden.dtype)
        for layer in encoder.layers:
            hidden = layer(hidden, attention_mask=attention_mask)
            if isinstance(hidden, tuple):
                hidden = hidden[0]
        return encoder.layer_norm(hidden), mask

    def _forward_window(
        self, features: torch.Tensor, feature_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each clip in a full window of silence; the frames past the longest clip are dropped."""
        window_features = 2 * self.max_frames
        if features.shape[-1] > window_features:
            raise ValueError(f"audio longer than the encoder's {self.max_frames} frames; chunk it")
        real = length_mask(feature_lengths, features.shape[-1])[:, None, :]
        peak = features.masked_fill(~real, float("-inf")).amax(dim=(1, 2), keepdim=True)
        window = (peak - self.SILENCE_BELOW_PEAK).expand(-1, features.shape[1], window_features)
        window = window.clone()
        window[..., : features.shape[-1]] = torch.where(real, features, window[..., :1])
        encoder = self.encoder
        hidden = encoder(window.to(encoder.conv1.weight.dtype)).last_hidden_state
        lengths = self.output_lengths(feature_lengths)
        longest = int(lengths.max())
        return hidden[:, :longest], length_mask(lengths, longest)


class WaveformAudioEncoder(AudioEncoder):
    """HuBERT, wav2vec2, WavLM, data2vec-audio: raw 16 kHz waveform in, ~50 frames per second out."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.encoder = AutoModel.from_pretrained(path)
        config = self.encoder.config
        self.hidden_size = config.hidden_size
        self.frames_per_second = SAMPLE_RATE / float(torch.tensor(config.conv_stride).prod())
        # Models with group-norm feature extractors were trained on zero-padded, unmasked input.
        self.uses_attention_mask = getattr(config, "feat_extract_norm", "layer") == "layer"

    def output_lengths(self, feature_lengths: torch.Tensor) -> torch.Tensor:
        return self.encoder._get_feat_extract_output_lengths(feature_lengths).long()

    def forward(
        self, features: torch.Tensor, feature_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        sample_mask = length_mask(feature_lengths, features.shape[-1])
        hidden = self.encoder(
            features.to(self.encoder.dtype),
            attention_mask=sample_mask.long() if self.uses_attention_mask else None,
        ).last_hidden_state
        lengths = self.output_lengths(feature_lengths).clamp(max=hidden.shape[1])
        return hidden, length_mask(lengths, hidden.shape[1])


def _additive_key_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, T) bool -> (B, 1, T, T) additive mask hiding padded keys."""
    blocked = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    blocked = blocked.masked_fill(~mask, torch.finfo(dtype).min)
    return blocked[:, None, None, :].expand(-1, 1, mask.shape[1], -1)


# Hugging Face model_type -> encoder wrapper.
ENCODERS: dict[str, type[AudioEncoder]] = {
    "whisper": WhisperAudioEncoder,
    "hubert": WaveformAudioEncoder,
    "wav2vec2": WaveformAudioEncoder,
    "wav2vec2-conformer": WaveformAudioEncoder,
    "wavlm": WaveformAudioEncoder,
    "data2vec-audio": WaveformAudioEncoder,
}


def load_encoder(path: str, pad_to_window: bool = False) -> AudioEncoder:
    model_type = AutoConfig.from_pretrained(path).model_type
    if model_type not in ENCODERS:
        raise ValueError(
            f"{path}: unsupported encoder type {model_type!r}; known: {sorted(ENCODERS)}"
        )
    encoder = ENCODERS[model_type](path)
    if pad_to_window:
        if not isinstance(encoder, WhisperAudioEncoder):
            raise ValueError(f"{path}: encoder_pad_to_window needs Whisper, not {model_type}")
        encoder.pad_to_window = True
    encoder.requires_grad_(False)
    return encoder.eval()


def load_feature_extractor(path: str) -> Any:
    return AutoFeatureExtractor.from_pretrained(path)
