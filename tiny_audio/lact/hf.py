"""A pushed LaCT model for transformers: `pipeline("automatic-speech-recognition", model=FOLDER,
trust_remote_code=True)` loads it with the classes here.

`ta push` copies this file beside the weights with the files it imports (hub/families.py) and
points config.json's auto_map and custom_pipelines here. The folder stays a tiny-audio checkpoint:
LaCTForCTC reads it as it is, so `ta transcribe -m FOLDER` gives the same text."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, cast

from torch import Tensor
from transformers import Pipeline, PretrainedConfig, PreTrainedModel

from .config import MODEL_TYPE, LaCTConfig
from .model import LaCTForCTC

try:
    from tiny_audio.audio import load_audio
except ImportError:  # remote code: the folder carries its own copy
    from .audio import load_audio  # type: ignore[no-redef]

LACT_FIELDS = {field.name for field in dataclasses.fields(LaCTConfig)} - {"model_type"}


class LaCTHFConfig(PretrainedConfig):
    """config.json as transformers reads it: LaCTConfig's fields (checked and defaulted by it)
    beside transformers' own keys."""

    model_type = MODEL_TYPE

    def __init__(self, **values: Any) -> None:
        lact = LaCTConfig.from_dict({k: v for k, v in values.items() if k in LACT_FIELDS})
        super().__init__(**{k: v for k, v in values.items() if k not in LACT_FIELDS})
        for name in LACT_FIELDS:
            setattr(self, name, getattr(lact, name))

    def lact_config(self) -> LaCTConfig:
        return LaCTConfig.from_dict({name: getattr(self, name) for name in LACT_FIELDS})


class LaCTForCTCHF(PreTrainedModel):
    """A LaCTForCTC (as `recognizer`) inside the class transformers' auto classes load."""

    config_class = LaCTHFConfig
    main_input_name = "input_features"

    def __init__(self, config: LaCTHFConfig, recognizer: LaCTForCTC | None = None) -> None:
        super().__init__(config)
        self.recognizer = recognizer or LaCTForCTC(config.lact_config())

    def forward(self, input_features: Tensor, feature_lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(batch, frames, mels) log-mels -> (batch, tokens, vocab) CTC logits, token counts."""
        return self.recognizer(input_features, feature_lengths)

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *args: Any,
        config: LaCTHFConfig | None = None,
        **kwargs: Any,
    ) -> LaCTForCTCHF:
        """LaCTForCTC's own loader reads the folder (model.safetensors, vocab.json, char_lm.json)
        in fp32 on the CPU; transformers' loading options (dtype, device_map) do not apply."""
        directory = Path(pretrained_model_name_or_path)
        if not directory.is_dir():  # a Hub id
            from huggingface_hub import snapshot_download

            directory = Path(snapshot_download(str(pretrained_model_name_or_path)))
        if not isinstance(config, LaCTHFConfig):
            config = LaCTHFConfig.from_pretrained(directory)
        return cls(config, LaCTForCTC.from_pretrained(directory)).eval()


class LaCTPipeline(Pipeline):
    """Speech in (a path, an array at 16 kHz or {"raw"/"array", "sampling_rate"}), {"text"} out:
    greedy CTC by default; num_beams > 1 is beam search with the character LM where the folder
    has one. Long audio runs in overlapping windows (chunk_length_s, stride_length_s)."""

    # The model carries its own log-mel front end and characters.
    _load_processor = False  # type: ignore[assignment]
    _load_tokenizer = False  # type: ignore[assignment]
    _load_feature_extractor = False  # type: ignore[assignment]
    _load_image_processor = False  # type: ignore[assignment]
    _load_video_processor = False  # type: ignore[assignment]

    def _sanitize_parameters(  # type: ignore[override]
        self,
        num_beams: int = 1,
        chunk_length_s: float | None = None,
        stride_length_s: float | None = None,
        max_new_tokens: int | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        # max_new_tokens is taken and unused so that callers written for the tiny_audio family
        # (its Space app, say) run unchanged: CTC writes at most one character per frame.
        options = {"chunk_length_s": chunk_length_s, "stride_length_s": stride_length_s}
        return {}, {"num_beams": num_beams, "options": options}, {}

    def preprocess(self, inputs: Any) -> dict[str, Any]:  # type: ignore[override]
        return {"waveform": load_audio(inputs)}

    def _forward(  # type: ignore[override]
        self, model_inputs: dict[str, Any], num_beams: int, options: dict[str, Any]
    ) -> dict[str, Any]:
        recognizer = cast(LaCTForCTCHF, self.model).recognizer
        [text] = recognizer.transcribe([model_inputs["waveform"]], num_beams=num_beams, **options)
        return {"text": text}

    def postprocess(self, model_outputs: dict[str, Any]) -> dict[str, Any]:  # type: ignore[override]
        return {"text": model_outputs["text"]}
