"""Every registered projector: output lengths, shapes, gradients, aux loss, save and load, presets."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tiny_audio.model import ASRConfig, ASRModel
from tiny_audio.model.projectors import PROJECTORS, MoEProjector, build_projector

NEW_PROJECTORS = ["swiglu", "mosa", "moe", "qformer"]


def tiny_config(projector_type: str, **overrides: Any) -> ASRConfig:
    fields: dict[str, Any] = dict(
        projector_type=projector_type, encoder_dim=8, decoder_dim=12, projector_hidden_dim=16,
        projector_pool_stride=3, projector_num_experts=4, projector_top_k=2, projector_num_queries=2,
        projector_window=5, projector_num_heads=2, embedding_scale=0.5,
    )  # fmt: skip
    fields.update(overrides)
    return ASRConfig(**fields)


def expected_length(projector_type: str, frames: int, config: ASRConfig) -> int:
    if projector_type == "qformer":  # Q tokens per window of W frames, the last window partial
        return max(1, math.ceil(frames / config.projector_window)) * config.projector_num_queries
    k = config.projector_pool_stride
    return max(1, (frames - k) // k + 1)


def clips(*seconds: float, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(int(s * 16000))).astype(np.float32) for s in seconds]


@pytest.mark.parametrize("projector_type", sorted(PROJECTORS))
def test_output_length_formula_shape_and_mask(projector_type: str) -> None:
    torch.manual_seed(0)
    config = tiny_config(projector_type)
    projector = build_projector(config).eval()
    lengths = torch.tensor([23, 11, 5, 3, 1])
    hidden = torch.randn(len(lengths), 23, 8)
    mask = torch.arange(23)[None, :] < lengths[:, None]
    with torch.no_grad():
        out, out_mask = projector(hidden, mask)
    expected = [expected_length(projector_type, int(n), config) for n in lengths]
    assert projector.output_lengths(lengths).tolist() == expected
    assert out_mask.sum(dim=1).tolist() == expected
    assert out.shape == (len(lengths), max(expected), config.decoder_dim)
    assert torch.isfinite(out).all()
    # Each clip in the padded batch gives what it gives alone: padding never leaks in.
    for i, n in enumerate(lengths.tolist()):
        with torch.no_grad():
            alone, _ = projector(hidden[i : i + 1, :n], mask[i : i + 1, :n])
        torch.testing.assert_close(out[i, : expected[i]], alone[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("projector_type", NEW_PROJECTORS)
def test_output_starts_at_the_llm_embedding_scale(projector_type: str) -> None:
    projector = build_projector(tiny_config(projector_type, embedding_scale=0.5)).eval()
    with torch.no_grad():
        out, mask = projector(torch.randn(2, 40, 8), torch.ones(2, 40, dtype=torch.bool))
    rms = out[mask].pow(2).mean(dim=-1).sqrt()
    torch.testing.assert_close(rms, torch.full_like(rms, 0.5), atol=1e-3, rtol=1e-3)


def test_moe_router_losses_at_uniform_routing() -> None:
    """A router that prefers nothing: Switch balance loss is exactly 1, z-loss is log(E)^2."""
    config = tiny_config("moe", projector_balance_loss_coef=1.0, projector_z_loss_coef=0.0)
    projector = build_projector(config)
    assert isinstance(projector, MoEProjector)
    torch.nn.init.zeros_(projector.router.weight)
    projector(torch.randn(2, 30, 8), torch.ones(2, 30, dtype=torch.bool))
    routing = projector.last_routing
    assert projector.aux_loss is not None
    torch.testing.assert_close(projector.aux_loss, torch.tensor(1.0))
    torch.testing.assert_close(routing["z_loss"], torch.tensor(math.log(4) ** 2))
    assert routing["chosen"].shape == (20, 2) and routing["probs"].shape == (20, 4)


def test_moe_balance_loss_grows_when_routing_collapses() -> None:
    config = tiny_config("moe", projector_balance_loss_coef=1.0, projector_z_loss_coef=0.0)
    projector = build_projector(config)
    assert isinstance(projector, MoEProjector)
    with torch.no_grad():  # with positive inputs every frame strongly prefers experts 0 and 1
        projector.router.weight.zero_()
        projector.router.weight[0] = 1.0
        projector.router.weight[1] = 0.8
    hidden = torch.rand(2, 30, 8) + 1.0
    projector(hidden, torch.ones(2, 30, dtype=torch.bool))
    assert float(projector.last_routing["balance_loss"]) > 1.5
    assert set(projector.last_routing["chosen"].unique().tolist()) == {0, 1}


@pytest.fixture(scope="module", params=NEW_PROJECTORS)
def asr_model(request: pytest.FixtureRequest, tiny_parts: dict[str, str]) -> ASRModel:
    torch.manual_seed(0)
    config = ASRConfig(
        audio_encoder=tiny_parts["whisper"],
        text_decoder=tiny_parts["llama"],
        projector_type=request.param,
        projector_hidden_dim=32,
        projector_num_heads=4,
        projector_window=8,
        projector_num_queries=3,
    )
    return ASRModel(config).eval()


def test_building_a_model_logs_its_trainable_parameters(
    tiny_parts: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    config = ASRConfig(
        audio_encoder=tiny_parts["whisper"],
        text_decoder=tiny_parts["llama"],
        projector_type="swiglu",
        projector_hidden_dim=32,
    )
    with caplog.at_level(logging.INFO, logger="tiny_audio"):
        model = ASRModel(config)
    count = sum(p.numel() for p in model.projector.parameters())
    assert f"swiglu projector ({count:,} trainable parameters)" in caplog.text


def test_token_counts_match_the_projected_audio(asr_model: ASRModel) -> None:
    features, lengths = asr_model.processor.features(clips(0.3, 1.0, 2.2))
    counts = asr_model.audio_token_counts(lengths)
    with torch.no_grad():
        _, mask = asr_model.embed_audio(features, lengths)
    assert mask.sum(dim=1).tolist() == counts
    batch = asr_model.processor.text_inputs(counts, texts=["a", "hello", "the quick brown fox"])
    with torch.no_grad():
        assert torch.isfinite(
            asr_model(**batch, input_features=features, feature_lengths=lengths)["loss"]
        )


def test_gradient_reaches_every_projector_parameter(asr_model: ASRModel) -> None:
    model = asr_model
    features, lengths = model.processor.features(clips(2.0, 1.5, seed=1))
    batch = model.processor.text_inputs(
        model.audio_token_counts(lengths), texts=["hello world", "the lazy dog"]
    )
    model.zero_grad()
    output = model(**batch, input_features=features, feature_lengths=lengths)
    output["loss"].backward()
    missing = [
        n
        for n, p in model.projector.named_parameters()
        if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert missing == []
    assert set(model.trained_parameters()) == {
        f"projector.{n}" for n, _ in model.projector.named_parameters()
    }
    if isinstance(model.projector, MoEProjector):
        aux = output["aux_loss"]
        assert torch.isfinite(aux) and float(aux.detach()) > 0
        assert set(model.projector.last_routing) >= {"balance_loss", "z_loss", "probs", "chosen"}
    else:
        assert "aux_loss" not in output
    model.zero_grad()


def test_save_and_load_give_identical_outputs(asr_model: ASRModel, tmp_path: Path) -> None:
    asr_model.save_pretrained(tmp_path)
    reloaded = ASRModel.from_pretrained(tmp_path)
    assert reloaded.config.projector_type == asr_model.config.projector_type
    assert type(reloaded.projector) is type(asr_model.projector)
    features, lengths = asr_model.processor.features(clips(1.3, 0.7, seed=2))
    with torch.no_grad():
        before, before_mask = asr_model.embed_audio(features, lengths)
        after, after_mask = reloaded.embed_audio(features, lengths)
    assert torch.equal(before_mask, after_mask)
    torch.testing.assert_close(before, after, atol=0, rtol=0)
    assert reloaded.generate(features, lengths, max_new_tokens=6) == asr_model.generate(
        features, lengths, max_new_tokens=6
    )


@pytest.mark.parametrize("projector_type", sorted(PROJECTORS))
def test_experiment_preset_selects_the_projector(projector_type: str) -> None:
    from tiny_audio.train.main import compose

    cfg = compose([f"+experiments={projector_type}"])
    assert cfg.model.projector_type == projector_type
    fields = {key: value for key, value in cfg.model.items() if key.startswith("projector_")}
    config = tiny_config(
        **fields
    )  # every preset field is an ASRConfig field the projector builds from
    assert type(build_projector(config)) is PROJECTORS[projector_type]
