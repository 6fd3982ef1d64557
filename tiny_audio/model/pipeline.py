"""The `automatic-speech-recognition` pipeline for saved tiny-audio models (trust_remote_code).

`return_timestamps=True` gives a chunk per window of long audio; `return_timestamps="word"` a
chunk per word, timed by Whisper's alignment of the transcript (alignment.py)."""

from __future__ import annotations

from typing import Any, Literal

from transformers import Pipeline

from .alignment import load_aligner

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

    def __init__(self, *args: Any, fast: bool = True, **kwargs: Any) -> None:
        """`fast=False` keeps the model in its exact fp32 form (see ASRModel.from_pretrained)."""
        super().__init__(*args, **kwargs)
        if fast and self.model.prefix_cache is None:
            self.model.prepare_for_inference()

    def _sanitize_parameters(
        self,
        chunk_length_s: float | None = None,
        stride_length_s: float | tuple[float, float] | None = None,
        prompt: str | None = None,
        vad: bool = True,
        return_timestamps: bool | Literal["word"] = False,
        generate_kwargs: dict[str, Any] | None = None,
        **generate_options: Any,
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        options = dict(generate_kwargs or {}, **generate_options)
        options.update(
            chunk_length_s=chunk_length_s, stride_length_s=stride_length_s, prompt=prompt, vad=vad
        )
        forward = {"options": options, "words": return_timestamps == "word"}
        return {}, forward, {"return_timestamps": return_timestamps}

    def preprocess(self, inputs: Any) -> dict[str, Any]:  # type: ignore[override]
        return {"waveform": load_audio(inputs)}

    def _forward(  # type: ignore[override]
        self, model_inputs: dict[str, Any], options: dict[str, Any], words: bool
    ) -> dict[str, Any]:
        model: Any = self.model
        waveform = model_inputs["waveform"]
        segments = model.transcribe_segments([waveform], batch_size=1, **options)[0]
        if words:
            timed = load_aligner().align_segments(waveform, segments)
            chunks = [(word.start, word.end, word.word) for word in timed]
        else:
            chunks = [(segment.start, segment.end, segment.text) for segment in segments]
        return {"segments": segments, "chunks": chunks}

    def postprocess(  # type: ignore[override]
        self, model_outputs: dict[str, Any], return_timestamps: bool | Literal["word"] = False
    ) -> dict[str, Any]:
        segments = model_outputs["segments"]
        result: dict[str, Any] = {"text": " ".join(s.text for s in segments if s.text)}
        if return_timestamps:  # one chunk per window, or per word
            result["chunks"] = [
                {"timestamp": (start, end), "text": text}
                for start, end, text in model_outputs["chunks"]
            ]
        return result
