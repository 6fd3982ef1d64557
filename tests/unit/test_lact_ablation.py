"""The ablation's paired bootstrap: is a CER gap between two runs larger than the dev set's noise?"""

import numpy as np
import torch

from tiny_audio.lact.config import LaCTConfig
from tiny_audio.lact.model import LaCTLayer
from tiny_audio.train.lact_ablation import character_errors, freeze_fast_weights, paired_bootstrap


def test_character_errors_count_edits_per_utterance() -> None:
    assert character_errors(["the cat", "dog", ""], ["the bat", "dogs", "x"]) == [1, 1, 1]


def test_identical_systems_have_a_zero_interval() -> None:
    errors, lengths = [3, 0, 5, 2], [10, 12, 20, 8]
    interval = paired_bootstrap(errors, errors, lengths)
    assert interval["difference"] == interval["low"] == interval["high"] == 0.0


def test_a_system_better_on_every_utterance_excludes_zero() -> None:
    rng = np.random.default_rng(1)
    lengths = rng.integers(20, 60, size=200).tolist()
    errors_a = [int(n * 0.2) for n in lengths]
    errors_b = [e - 1 for e in errors_a]
    interval = paired_bootstrap(errors_a, errors_b, lengths)
    assert interval["high"] < 0 and interval["b_better_share"] == 1.0


def test_a_gap_within_the_noise_spans_zero() -> None:
    rng = np.random.default_rng(2)
    lengths = rng.integers(20, 60, size=300).tolist()
    # Same error rate, independent per-utterance noise: the interval must straddle 0.
    errors_a = rng.binomial(lengths, 0.15).tolist()
    errors_b = rng.binomial(lengths, 0.15).tolist()
    interval = paired_bootstrap(errors_a, errors_b, lengths)
    assert interval["low"] < 0 < interval["high"]
    assert interval["low"] <= interval["difference"] <= interval["high"]


def test_frozen_fast_weights_carry_no_context() -> None:
    """Without updates the LaCT layer is a per-token function: changing the second chunk leaves
    the first chunk's outputs alone; with updates (read both ways) it does not."""
    torch.manual_seed(0)
    config = LaCTConfig(
        hidden_size=32,
        num_attn_heads=2,
        num_lact_heads=2,
        lact_chunk_size=4,
        lact_bidirectional=True,
    )
    layer = LaCTLayer(config).eval()
    x, mask = torch.randn(1, 8, 32), torch.ones(1, 8, dtype=torch.bool)
    changed = x.clone()
    changed[:, 4:] = torch.randn(1, 4, 32)
    with torch.no_grad():
        assert not torch.allclose(layer(x, mask)[:, :4], layer(changed, mask)[:, :4])
        freeze_fast_weights(layer)
        torch.testing.assert_close(layer(x, mask)[:, :4], layer(changed, mask)[:, :4])
