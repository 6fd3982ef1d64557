"""Training throughput of a tiny-audio model, as `ta bench` reports it: audio seconds and tokens per
wall second for projector training on cached encoder output (as `ta train` runs by default), in
the precision `training.bf16: auto` picks here, and model FLOPs utilization against this
machine's measured matmul peak in that precision."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from tiny_audio.audio import SAMPLE_RATE
from tiny_audio.train.components import native_bf16

SENTENCE = "the quick brown fox jumps over the lazy dog and runs far away"


def matmul_peak_flops(dtype: torch.dtype, size: int = 1024, seconds: float = 2.0) -> float:
    """FLOP/s of square matmuls in `dtype`: the ceiling MFU is measured against."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b  # warm-up
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        runs += 1
    return 2 * size**3 * runs / (time.perf_counter() - started)


def measure(
    model_dir: str, steps: int = 4, batch_size: int = 8, clip_seconds: float = 3.0
) -> dict[str, Any]:
    from tiny_audio.model import ASRModel

    model = ASRModel.from_pretrained(model_dir)
    rng = np.random.default_rng(0)
    waves = [
        (0.1 * rng.standard_normal(int(clip_seconds * SAMPLE_RATE))).astype(np.float32)
        for _ in range(batch_size)
    ]
    features, lengths = model.processor.features(waves)
    with torch.no_grad():
        hidden, mask = model.encode(features, lengths)  # the encoder cache's job, done once
    counts = model.projector.output_lengths(mask.sum(dim=1)).tolist()
    batch = model.processor.text_inputs(counts, texts=[SENTENCE] * batch_size)
    trained = [p for p in model.trained_parameters().values() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=1e-4)
    model.train()
    dtype = torch.bfloat16 if native_bf16() else torch.float32

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            loss = model(**batch, encoder_hidden=hidden, encoder_mask=mask)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    step_seconds = (time.perf_counter() - started) / steps

    tokens = int(batch["attention_mask"].sum())
    decoder_params = sum(p.numel() for p in model.decoder.parameters())
    # Frozen decoder: forward (2 FLOPs per weight per token) plus backward to its inputs only (2 more).
    flops_per_step = 4 * decoder_params * tokens
    peak = matmul_peak_flops(dtype)
    return {
        "precision": str(dtype).removeprefix("torch."),
        "batch_size": batch_size,
        "step_seconds": step_seconds,
        "audio_seconds_per_second": batch_size * clip_seconds / step_seconds,
        "tokens_per_second": tokens / step_seconds,
        "model_tflops": flops_per_step / step_seconds / 1e12,
        "matmul_peak_tflops": peak / 1e12,
        "mfu": flops_per_step / step_seconds / peak,
        "threads": torch.get_num_threads(),
    }
