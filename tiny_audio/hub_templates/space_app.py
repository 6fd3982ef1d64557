"""A Gradio app that transcribes speech with a tiny-audio model (written by `ta deploy`)."""

from __future__ import annotations

import os
import time
from typing import Any, cast

import gradio as gr
import numpy as np
import soundfile as sf
import soxr
from transformers import pipeline

# `ta deploy` writes the model here: a Hub id, or "model" for the copy bundled with the Space.
MODEL = os.environ.get("MODEL", "__MODEL__")
SAMPLE_RATE = 16000

asr = pipeline("automatic-speech-recognition", model=MODEL, trust_remote_code=True)


def load(path: str) -> np.ndarray:
    """Mono float32 at 16 kHz from any file soundfile reads (wav, flac, ogg, mp3)."""
    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as error:
        raise gr.Error(f"Could not read this file as audio: {error}") from error
    if len(audio) == 0:
        raise gr.Error("The recording is empty.")
    mono = audio.mean(axis=1)
    return soxr.resample(mono, rate, SAMPLE_RATE) if rate != SAMPLE_RATE else mono


def transcribe(path: str | None, num_beams: int, max_new_tokens: int) -> tuple[str, str]:
    if not path:
        raise gr.Error("Upload or record some audio first.")
    audio = load(path)
    start = time.perf_counter()
    # One input gives one {"text": ...}.
    result = cast(
        dict[str, Any],
        asr(
            {"raw": audio, "sampling_rate": SAMPLE_RATE},
            num_beams=int(num_beams),
            max_new_tokens=int(max_new_tokens),
        ),
    )
    seconds = time.perf_counter() - start
    duration = len(audio) / SAMPLE_RATE
    timing = f"{duration:.1f} s of audio in {seconds:.2f} s ({duration / seconds:.1f}x real time)"
    return result["text"], timing


demo = gr.Interface(
    fn=transcribe,
    inputs=[
        gr.Audio(sources=["upload", "microphone"], type="filepath", label="Speech"),
        gr.Slider(1, 8, value=1, step=1, label="Beams"),
        gr.Slider(16, 512, value=256, step=16, label="Max new tokens"),
    ],
    outputs=[gr.Textbox(label="Transcript"), gr.Textbox(label="Timing")],
    title="__TITLE__",
    description=f"Model: {MODEL}",
    flagging_mode="never",
    api_name="transcribe",
)

if __name__ == "__main__":
    demo.queue().launch()
