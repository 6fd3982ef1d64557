"""The fast inference form (LoRA merged, reused prompt prefix, CTranslate2 int8 encoder) against the exact fp32 form: same features, same text on real clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tiny_audio.audio import load_audio
from tiny_audio.data.sources import load_source
from tiny_audio.errors import UserError
from tiny_audio.model import ASRConfig, ASRModel
from tiny_audio.model.encoders import CTranslate2WhisperEncoder

CLIPS = 8


def tiny_model(tiny_parts: dict[str, str], directory: Path) -> Path:
    ASRModel(
        ASRConfig(
            audio_encoder=tiny_parts["whisper"],
            text_decoder=tiny_parts["llama"],
            projector_hidden_dim=32,
            lora_rank=4,
        )
    ).save_pretrained(directory)
    return directory


def test_a_fast_model_transcribes_and_refuses_to_be_saved(
    tiny_parts: dict[str, str], tmp_path: Path, tone: np.ndarray
) -> None:
    model = ASRModel.from_pretrained(tiny_model(tiny_parts, tmp_path / "m"), fast=True)
    assert not any("lora_" in name for name, _ in model.named_parameters())  # merged
    assert len(model.transcribe([tone, tone[:8000]], max_new_tokens=4, vad=False)) == 2
    with pytest.raises(UserError, match="cannot be saved"):
        model.save_pretrained(tmp_path / "again")


@pytest.fixture(scope="module")
def real_waveforms() -> list[np.ndarray]:
    return [load_audio(u.audio) for u in load_source("real:goforward", max_samples=CLIPS)]


@pytest.fixture(scope="module")
def fast_model() -> ASRModel:
    return ASRModel.from_pretrained("default", fast=True)


@pytest.mark.slow
def test_ctranslate2_encoder_matches_the_pytorch_encoder(
    fast_model: ASRModel, real_waveforms: list[np.ndarray]
) -> None:
    exact = ASRModel.from_pretrained("default").encoder
    assert isinstance(fast_model.encoder, CTranslate2WhisperEncoder)
    features, lengths = fast_model.processor.features(real_waveforms[:4])
    with torch.no_grad():
        expected, expected_mask = exact(features, lengths)
        got, mask = fast_model.encoder(features, lengths)
    assert torch.equal(mask, expected_mask)
    for row, real in zip(range(len(lengths)), mask):
        error = (got[row][real] - expected[row][real]).norm() / expected[row][real].norm()
        assert error < 0.05, f"clip {row}: relative error {error:.3f}"


@pytest.mark.slow
def test_the_reused_prompt_prefix_changes_no_token(
    fast_model: ASRModel, real_waveforms: list[np.ndarray]
) -> None:
    features, lengths = fast_model.processor.features(real_waveforms)
    with_prefix = fast_model.generate(features, lengths)
    prefix_cache, fast_model.prefix_cache = fast_model.prefix_cache, None
    try:
        without = fast_model.generate(features, lengths)
    finally:
        fast_model.prefix_cache = prefix_cache
    assert with_prefix == without


@pytest.mark.slow
def test_fast_and_fp32_forms_write_the_same_text(
    fast_model: ASRModel, real_waveforms: list[np.ndarray]
) -> None:
    exact = ASRModel.from_pretrained("default").transcribe(real_waveforms)
    fast = fast_model.transcribe(real_waveforms)
    differing = [(a, b) for a, b in zip(exact, fast) if a != b]
    assert len(differing) <= 1, differing  # int8 encoder rounding may flip one close call
