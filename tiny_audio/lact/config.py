"""LaCTConfig: every size and switch of the LaCT CTC model, saved as the checkpoint's config.json."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    from tiny_audio.errors import UserError
except ImportError:  # copied beside a pushed model as remote code (hf.py), without tiny-audio
    UserError = ValueError  # type: ignore[assignment,misc]

MODEL_TYPE = "lact_asr"
# What replaces the LaCT layer in each block; "attention" is the equal-size ablation baseline.
MIXERS = ("lact", "attention")
# What `ta push` adds to a published config.json for transformers (hf.py): not model settings.
TRANSFORMERS_KEYS = {"architectures", "auto_map", "custom_pipelines", "transformers_version"}


@dataclass
class LaCTConfig:
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attn_heads: int = 12
    num_lact_heads: int = 4
    audio_encoder_layers: int = 2
    intermediate_size: int = 1536
    num_mel_bins: int = 80
    # Sliding-window attention sees `attention_window` tokens on each side (40 ms per token).
    attention_window: int = 64
    # Fast weights are updated once per chunk of this many tokens (64 tokens = 2.56 s).
    lact_chunk_size: int = 64
    # Hidden width of each head's fast-weight SwiGLU, as a multiple of the head size.
    lact_inner_multiplier: float = 1.0
    lact_base_lr: float = 1e-2
    lact_momentum: bool = True
    lact_muon: bool = True
    # Half the LaCT heads read each utterance backwards, so every token sees context from both
    # sides (one-way chunk updates only carry the past forward).
    lact_bidirectional: bool = False
    mixer: str = "lact"
    # Longer audio is transcribed in overlapping windows of this length (attention memory grows
    # with the square of the length); best near the length of the training utterances.
    max_audio_seconds: float = 30.0
    # Beam search (num_beams > 1) adds lm_weight * log P(char) from the checkpoint's character
    # LM (char_lm.json, fitted on the training transcripts) plus lm_bonus per character; tuned
    # on synthetic test utterances (BENCHMARKS.md).
    lm_weight: float = 0.6
    lm_bonus: float = 1.5
    dropout: float = 0.1
    audio_encoder_dropout: float = 0.1
    rope_theta: float = 10_000.0
    rms_norm_eps: float = 1e-6
    initializer_range: float = 0.02
    vocab_size: int = 29
    model_type: str = MODEL_TYPE

    def __post_init__(self) -> None:
        if self.mixer not in MIXERS:
            raise UserError(f"model.mixer {self.mixer!r} is not one of {', '.join(MIXERS)}")
        for heads in (self.num_attn_heads, self.num_lact_heads):
            if self.hidden_size % heads:
                raise UserError(f"hidden_size {self.hidden_size} is not divisible by {heads} heads")
        if self.audio_encoder_layers < 2:
            raise UserError("audio_encoder_layers must be at least 2 (4x subsampling in time)")

    @property
    def lact_head_dim(self) -> int:
        return self.hidden_size // self.num_lact_heads

    @property
    def lact_inner_dim(self) -> int:
        return int(self.lact_head_dim * self.lact_inner_multiplier)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LaCTConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known - TRANSFORMERS_KEYS)
        if unknown:
            raise UserError(f"unknown LaCT model keys: {', '.join(unknown)}")
        return cls(**{key: value for key, value in values.items() if key in known})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, directory: Path) -> None:
        (directory / "config.json").write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> LaCTConfig:
        file = directory / "config.json"
        if not file.is_file():
            raise UserError(f"{directory}: no config.json")
        values = json.loads(file.read_text())
        if values.get("model_type") != MODEL_TYPE:
            raise UserError(f"{directory}: model_type is not {MODEL_TYPE!r}")
        return cls.from_dict(values)
