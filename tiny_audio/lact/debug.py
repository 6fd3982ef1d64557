"""`ta debug nan CHECKPOINT`: find where a LaCT model first produces NaN or infinite values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch
from torch import Tensor, nn

from tiny_audio.lact.model import LaCTForCTC


def _finite(value: Any) -> bool:
    if isinstance(value, Tensor):
        return bool(torch.isfinite(value).all()) if value.is_floating_point() else True
    if isinstance(value, (tuple, list)):
        return all(_finite(item) for item in value)
    return True


def nonfinite_parameters(model: nn.Module) -> list[str]:
    return [
        name for name, parameter in model.named_parameters() if not torch.isfinite(parameter).all()
    ]


def nonfinite_gradients(model: nn.Module) -> list[str]:
    return [
        name
        for name, parameter in model.named_parameters()
        if parameter.grad is not None and not torch.isfinite(parameter.grad).all()
    ]


@torch.no_grad()
def first_nonfinite_module(model: nn.Module, features: Tensor, lengths: Tensor) -> str | None:
    """Name of the first module, in execution order, whose output is not finite (None: all are).
    A module's hook fires when it returns, so the innermost culprit is named first."""
    culprits: list[str] = []

    def hook(name: str) -> Any:
        def check(module: nn.Module, inputs: Any, output: Any) -> None:
            if not culprits and not _finite(output):
                culprits.append(name)

        return check

    handles = [
        module.register_forward_hook(hook(name)) for name, module in model.named_modules() if name
    ]
    try:
        model(features, lengths)
    finally:
        for handle in handles:
            handle.remove()
    return culprits[0] if culprits else None


def probe_audio(seconds: float = 6.0, seed: int = 0) -> np.ndarray:
    """A speech-like test signal when no audio is given: a gliding harmonic tone plus noise."""
    rng = np.random.default_rng(seed)
    time = np.arange(int(16_000 * seconds)) / 16_000
    pitch = 120 + 40 * np.sin(2 * np.pi * 0.5 * time)
    phase = 2 * np.pi * np.cumsum(pitch) / 16_000
    tone = sum(np.sin(k * phase) / k for k in range(1, 6))
    return (0.1 * tone + 0.01 * rng.standard_normal(time.size)).astype(np.float32)


def diagnose(model: LaCTForCTC, waveforms: list[np.ndarray]) -> dict[str, Any]:
    features, lengths = model.features(waveforms)
    report: dict[str, Any] = {
        "nonfinite_parameters": nonfinite_parameters(model),
        "first_nonfinite_output": first_nonfinite_module(model, features, lengths),
    }
    # Gradients of a label-free loss (mean negative log-probability) show the backward side.
    model.zero_grad(set_to_none=True)
    logits, _ = model(features, lengths)
    (-logits.float().log_softmax(-1).mean()).backward()
    report["nonfinite_gradients"] = nonfinite_gradients(model)
    with torch.no_grad():
        x, token_lengths = model.audio_encoder(features, lengths)
        mask = torch.arange(x.shape[1])[None, :] < token_lengths[:, None]
        peaks = []
        for block in model.blocks:
            x = block(x, mask)
            peaks.append(float(x[mask].abs().max()))
    report["block_peak_activation"] = peaks
    return report


@click.command("nan")
@click.argument("checkpoint", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--audio",
    "audio_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Audio to run (default: a synthetic probe).",
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), help="Also write the report here."
)
def nan_command(checkpoint: str, audio_files: tuple[str, ...], json_path: str | None) -> None:
    """Locate the layer of a LaCT CHECKPOINT that first produces NaN or infinite values."""
    from tiny_audio.audio import load_audio

    model = LaCTForCTC.from_pretrained(checkpoint)
    waveforms = [load_audio(path) for path in audio_files] or [probe_audio()]
    report = diagnose(model, waveforms)
    click.echo(f"non-finite parameters: {', '.join(report['nonfinite_parameters']) or 'none'}")
    click.echo(f"first non-finite output: {report['first_nonfinite_output'] or 'none'}")
    click.echo(f"non-finite gradients: {', '.join(report['nonfinite_gradients']) or 'none'}")
    peaks = ", ".join(f"{peak:.3g}" for peak in report["block_peak_activation"])
    click.echo(f"peak |activation| per block: {peaks}")
    if json_path:
        Path(json_path).write_text(json.dumps(report, indent=2) + "\n")
