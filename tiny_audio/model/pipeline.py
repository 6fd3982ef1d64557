"""The `automatic-speech-recognition` pipeline for saved tiny-audio models (trust_remote_code)."""

from __future__ import annotations

from typing import Any

from transformers import Pipeline

try:
    from tiny_audio.audio import load_audio
except ImportError:  # a saved model directory carries its own copy
    from .audio import load_audio  # type: ignore[no-redef]


class ASRPipeline(Pipeline):
    # The model carries its own processor and tokenizer.
    _load_processor = False  # type: ignore[assignment]
    _load_tokenizer = False  # type: ignore[assignment]
    _load_feature_extractor = False  # type: ignore[assignment]
    _load_image_processor = False  # type: ignore[assignment]

    def _sanitize_parameters(
        self,
        chunk_length_s: float | None = None,
        stride_length_s: float | tuple[float, float] | None = None,
        prompt: str | None = None,
        vad: bool = True,
        return_timestamps: bool = False,
        generate_kwargs: dict[str, Any] | None = None,
        **generate_options: Any,
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        forward = dict(generate_kwargs or {}, **generate_options)
        forward.update(
            chunk_length_s=chunk_length_s, stride_length_s=stride_length_s, prompt=prompt, vad=vad
        )
        return {}, forward, {"return_timestamps": return_timestamps}

    def preprocess(self, inputs: Any) -> dict[str, Any]:  # type: ignore[override]
        return {"waveform": load_audio(inputs)}

    def _forward(self, model_inputs: dict[str, Any], **options: Any) -> dict[str, Any]:  # type: ignore[override]
        model: Any = self.model
        segments = model.transcribe_segments([model_inputs["waveform"]], batch_size=1, **options)[0]
        return {"segments": segments}

    def postprocess(  # type: ignore[override]
        self, model_outputs: dict[str, Any], return_timestamps: bool = False
    ) -> dict[str, Any]:
        segments = model_outputs["segments"]
        result: dict[str, Any] = {"text": " ".join(s.text for s in segments if s.text)}
        if return_timestamps:
            result["chunks"] = [{"timestamp": (s.start, s.end), "text": s.text} for s in segments]
        return result
