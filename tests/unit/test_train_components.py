"""The precision setting: bf16 autocast only where the hardware multiplies bfloat16 natively."""

from __future__ import annotations

import logging

import pytest

from tiny_audio.train import components


@pytest.mark.parametrize("native", [True, False])
def test_auto_follows_the_hardware_and_true_without_it_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, native: bool
) -> None:
    monkeypatch.setattr(components, "native_bf16", lambda: native)
    with caplog.at_level(logging.WARNING, logger="tiny_audio"):
        assert components.bf16_enabled("auto") is native
        assert components.bf16_enabled(False) is False
        assert components.bf16_enabled(True) is True
    warned = "without native bfloat16" in caplog.text
    assert warned is not native


def test_native_bf16_answers_for_this_machine() -> None:
    assert isinstance(components.native_bf16(), bool)
