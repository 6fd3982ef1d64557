"""LaCT model: the fast-weight update, Muon, padding independence, front end, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_config

from tiny_audio.lact.config import LaCTConfig
from tiny_audio.lact.model import (
    LaCTForCTC,
    LaCTLayer,
    LogMel,
    newton_schulz,
    reversal_index,
    reverse_second_half_heads,
    swiglu_apply,
)


def naive_fast_weight_pass(layer: LaCTLayer, q, k, v, lr, momentum, mask):
    """Reference: one sequence and head at a time, one chunk at a time, gradients of
    sum_t -lr_t <f(k_t), v_t> by autograd, token by token."""
    batch, heads, length, _ = q.shape
    outputs = torch.zeros_like(q)
    for b in range(batch):
        for h in range(heads):
            weights = [w[h].clone() for w in (layer.w0, layer.w1, layer.w2)]
            norms = [w.norm(dim=-1, keepdim=True) for w in weights]
            velocity = [torch.zeros_like(w) for w in weights]
            for start in range(0, length, layer.chunk_size):
                tokens = range(start, min(start + layer.chunk_size, length))
                grads = []
                for index in range(len(weights)):
                    leaf = [w.detach().requires_grad_(i == index) for i, w in enumerate(weights)]
                    loss = sum(
                        -lr[index, b, h, t] * (swiglu_apply(*leaf, k[b, h, t][None]) @ v[b, h, t])
                        for t in tokens
                    )
                    grads.append(torch.autograd.grad(loss, leaf[index])[0])
                if momentum is not None:
                    real = [t for t in tokens if mask[b, t]]
                    beta = momentum[b, h, real].mean() if real else torch.tensor(0.0, dtype=q.dtype)
                    velocity = [beta * vel + g for vel, g in zip(velocity, grads, strict=True)]
                    grads = velocity
                if layer.use_muon:
                    grads = [newton_schulz(g) for g in grads]
                weights = [
                    (w - g) * (n / (w - g).norm(dim=-1, keepdim=True))
                    for w, g, n in zip(weights, grads, norms, strict=True)
                ]
                for t in tokens:
                    outputs[b, h, t] = swiglu_apply(*weights, q[b, h, t][None])[0]
    return outputs


def random_lact_inputs(config: LaCTConfig, lengths: list[int], seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    batch, length = len(lengths), max(lengths)
    heads, dim = config.num_lact_heads, config.lact_head_dim
    q = F.normalize(
        torch.randn(batch, heads, length, dim, generator=generator, dtype=torch.float64), dim=-1
    )
    k = F.normalize(
        torch.randn(batch, heads, length, dim, generator=generator, dtype=torch.float64), dim=-1
    )
    v = torch.randn(batch, heads, length, dim, generator=generator, dtype=torch.float64)
    mask = torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]
    lr = (
        torch.rand(3, batch, heads, length, generator=generator, dtype=torch.float64)
        * mask[None, :, None, :]
    )
    momentum = torch.rand(batch, heads, length, generator=generator, dtype=torch.float64)
    return q, k, v, lr, momentum, mask


@pytest.mark.parametrize(
    ("momentum", "muon"),
    [(True, True), (False, False), (True, False)],
    ids=["momentum+muon", "plain", "momentum"],
)
def test_chunked_update_matches_naive_per_chunk_reference(momentum: bool, muon: bool) -> None:
    config = tiny_config(lact_momentum=momentum, lact_muon=muon, lact_chunk_size=3)
    layer = LaCTLayer(config).double()
    q, k, v, lr, beta, mask = random_lact_inputs(config, lengths=[10, 7])
    beta = beta if momentum else None
    with torch.no_grad():
        fast, _ = layer.fast_weight_pass(q, k, v, lr, beta, mask)
    reference = naive_fast_weight_pass(layer, q, k, v, lr, beta, mask).detach()
    real = mask[:, None, :, None].expand_as(fast)
    torch.testing.assert_close(fast[real], reference[real], rtol=1e-9, atol=1e-9)


def test_newton_schulz_orthogonalises_the_update() -> None:
    generator = torch.Generator().manual_seed(0)
    for shape in [(24, 24), (16, 40), (40, 16)]:
        # An ill-conditioned update: singular values from 0.1 to 10 (condition number 100).
        left, _ = torch.linalg.qr(torch.randn(shape[0], shape[0], generator=generator))
        right, _ = torch.linalg.qr(torch.randn(shape[1], shape[1], generator=generator))
        rank = min(shape)
        spread = torch.logspace(-1, 1, rank)
        update = left[:, :rank] @ torch.diag(spread) @ right[:rank, :]
        orthogonal = newton_schulz(update)
        singular = torch.linalg.svdvals(orthogonal)
        assert singular.min() > 0.6 and singular.max() < 1.25, singular
        polar = left[:, :rank] @ right[:rank, :]  # the exact orthogonal factor
        cosine = (orthogonal * polar).sum() / (orthogonal.norm() * polar.norm())
        assert cosine > 0.97


def test_fast_weights_after_a_chunk_differ_from_before_and_keep_their_row_norms() -> None:
    config = tiny_config(lact_chunk_size=8)
    layer = LaCTLayer(config).double()
    q, k, v, lr, momentum, mask = random_lact_inputs(config, lengths=[8])
    _, after = layer.fast_weight_pass(q, k, v, lr, momentum, mask)
    for before, updated in zip((layer.w0, layer.w1, layer.w2), after, strict=True):
        change = (updated[0] - before).norm() / before.norm()
        assert change > 0.05
        torch.testing.assert_close(
            updated[0].norm(dim=-1), before.norm(dim=-1), rtol=1e-4, atol=1e-6
        )


def test_padded_tokens_do_not_touch_fast_weights() -> None:
    config = tiny_config(lact_chunk_size=4)
    layer = LaCTLayer(config).double()
    q, k, v, lr, momentum, mask = random_lact_inputs(config, lengths=[6])
    _, short = layer.fast_weight_pass(
        q[..., :6, :], k[..., :6, :], v[..., :6, :], lr[..., :6], momentum[..., :6], mask[:, :6]
    )
    padded = [torch.cat([t, 100 * torch.randn_like(t)[..., :5, :]], dim=2) for t in (q, k, v)]
    pad_mask = torch.cat([mask, torch.zeros(1, 5, dtype=torch.bool)], dim=1)
    pad_lr = torch.cat([lr, torch.zeros(3, 1, config.num_lact_heads, 5, dtype=lr.dtype)], dim=-1)
    pad_momentum = torch.cat(
        [momentum, torch.rand(1, config.num_lact_heads, 5, dtype=momentum.dtype)], dim=-1
    )
    # 6 real + 5 padded tokens: the third chunk is all padding and must change nothing.
    _, long = layer.fast_weight_pass(*padded, pad_lr, pad_momentum, pad_mask)
    for a, b in zip(short, long, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_second_half_of_the_heads_reads_real_tokens_backwards() -> None:
    mask = torch.tensor([[True] * 5 + [False] * 2, [True] * 7])
    x = torch.arange(2 * 4 * 7, dtype=torch.float64).view(2, 4, 7, 1)  # (batch, heads, tokens, 1)
    reversed_x = reverse_second_half_heads(x, reversal_index(mask))
    assert reversed_x[0, 2, :, 0].tolist() == x[0, 2, [4, 3, 2, 1, 0, 5, 6], 0].tolist()
    assert reversed_x[1, 3, :, 0].tolist() == x[1, 3, range(6, -1, -1), 0].tolist()
    assert torch.equal(reversed_x[:, :2], x[:, :2])
    assert torch.equal(reverse_second_half_heads(reversed_x, reversal_index(mask)), x)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["one-way", "bidirectional"])
def test_only_bidirectional_lact_lets_a_later_chunk_change_an_earlier_one(
    bidirectional: bool,
) -> None:
    torch.manual_seed(0)
    layer = LaCTLayer(tiny_config(lact_chunk_size=4, lact_bidirectional=bidirectional)).double()
    x = torch.randn(1, 12, 32, dtype=torch.float64)
    mask = torch.ones(1, 12, dtype=torch.bool)
    later = x.clone()
    later[:, 11] += 1.0  # the last chunk only
    with torch.no_grad():
        change = (layer(later, mask) - layer(x, mask))[0, :4].abs().max()
    assert (change > 1e-6) == bidirectional


@pytest.mark.parametrize(
    "overrides",
    [{"mixer": "lact"}, {"mixer": "lact", "lact_bidirectional": True}, {"mixer": "attention"}],
    ids=["lact", "lact-bidirectional", "attention"],
)
def test_output_of_an_utterance_does_not_depend_on_padding(overrides: dict) -> None:
    torch.manual_seed(0)
    model = LaCTForCTC(tiny_config(audio_encoder_layers=3, **overrides)).double().eval()
    lengths = [37, 90, 61]
    features = [torch.randn(n, 80, dtype=torch.float64) for n in lengths]
    batch = torch.nn.utils.rnn.pad_sequence(features, batch_first=True)
    with torch.no_grad():
        together, token_lengths = model(batch, torch.tensor(lengths))
        for index, single in enumerate(features):
            alone, alone_lengths = model(single[None], torch.tensor([len(single)]))
            assert token_lengths[index] == alone_lengths[0] == alone.shape[1]
            torch.testing.assert_close(
                together[index, : alone.shape[1]], alone[0], rtol=1e-9, atol=1e-9
            )


def test_conv_front_end_subsamples_at_least_four_times() -> None:
    model = LaCTForCTC(tiny_config(audio_encoder_layers=4)).eval()
    with torch.no_grad():
        logits, lengths = model(torch.randn(1, 401, 80), torch.tensor([401]))
    assert lengths.tolist() == [101] and logits.shape == (1, 101, model.config.vocab_size)


def test_attention_baseline_has_the_parameter_count_of_the_lact_layer() -> None:
    config = tiny_config(hidden_size=64, num_lact_heads=4)
    lact = LaCTForCTC(config).num_parameters()
    attention = LaCTForCTC(
        tiny_config(hidden_size=64, num_lact_heads=4, mixer="attention")
    ).num_parameters()
    assert abs(attention - lact) / lact < 0.01


def test_log_mel_matches_whisper_feature_extractor() -> None:
    from transformers import WhisperFeatureExtractor

    time = np.arange(16_000 * 2) / 16_000
    waveform = (
        0.3 * np.sin(2 * np.pi * 220 * time) + 0.05 * np.sin(2 * np.pi * 3100 * time)
    ).astype(np.float32)
    ours = LogMel(80)(torch.from_numpy(waveform)).numpy()
    whisper = WhisperFeatureExtractor(feature_size=80)(
        waveform, sampling_rate=16_000, return_tensors="np"
    )
    theirs = whisper["input_features"][0].T[: len(ours)]
    assert ours.shape == (200, 80)
    # The last frames differ: Whisper pads to 30 s with zeros, we reflect at the real end.
    np.testing.assert_allclose(ours[:-2], theirs[:-2], atol=1e-3)


def test_checkpoint_round_trip_through_the_recognizer_registry(tmp_path) -> None:
    from tiny_audio.recognizer import load_recognizer

    torch.manual_seed(0)
    model = LaCTForCTC(tiny_config())
    model.save_pretrained(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {
        "config.json",
        "model.safetensors",
        "vocab.json",
    }
    loaded = load_recognizer(str(tmp_path))
    waveforms = [np.random.default_rng(1).standard_normal(16_000).astype(np.float32) * 0.1]
    texts = loaded.transcribe(waveforms, num_beams=3)
    assert texts == model.eval().transcribe(waveforms, num_beams=3)
    assert isinstance(texts[0], str) and loaded.name == f"lact:{tmp_path.name}"


def test_transformers_config_builds_the_same_model_and_refuses_what_lact_refuses() -> None:
    from tiny_audio.errors import UserError
    from tiny_audio.lact.hf import LaCTForCTCHF, LaCTHFConfig

    config = tiny_config(mixer="attention")
    # config.json as `ta push` leaves it: the model's keys and transformers' own.
    published = LaCTHFConfig(**config.to_dict(), auto_map={"AutoModel": "hf.LaCTForCTCHF"})
    assert published.lact_config() == config
    assert LaCTConfig.from_dict({**config.to_dict(), "auto_map": {}}) == config
    wrapped = LaCTForCTCHF(published).recognizer
    assert wrapped.state_dict().keys() == LaCTForCTC(config).state_dict().keys()
    with pytest.raises(UserError, match="'rnn'"):
        LaCTHFConfig(mixer="rnn")


def test_transcribe_rejects_options_it_does_not_have() -> None:
    from tiny_audio.errors import UserError

    with pytest.raises(UserError, match="temperature"):
        LaCTForCTC(tiny_config()).transcribe([np.zeros(1600, dtype=np.float32)], temperature=0.5)


@pytest.mark.parametrize("extra_samples", [0, 321, 640])
@pytest.mark.parametrize("chunk_length_s", [1.0, 3.3, 4.0])
def test_long_audio_runs_in_windows_whose_frames_join_into_the_whole_clip(
    extra_samples: int, chunk_length_s: float
) -> None:
    """With no blocks, each CTC frame depends only on nearby audio, so windows that keep the
    frames of their half of each overlap must reproduce the whole clip's frames exactly."""
    torch.manual_seed(0)
    model = LaCTForCTC(tiny_config(num_hidden_layers=0)).eval()
    # Steady noise: every window has the clip's loudest level, so log-mel scaling agrees.
    wave = np.random.default_rng(0).standard_normal(12 * 16_000 + extra_samples)
    wave = (0.1 * wave).astype(np.float32)
    whole = model.clip_logits([wave], chunk_length_s=60)[0]

    seen: list[int] = []
    hook = model.audio_encoder.register_forward_hook(
        lambda module, args, output: seen.append(args[0].shape[1])
    )
    windowed = model.clip_logits([wave], chunk_length_s=chunk_length_s, batch_size=2)[0]
    hook.remove()
    assert len(seen) > 1 and max(seen) <= chunk_length_s * 100 + 4  # 10 ms mel frames
    torch.testing.assert_close(windowed, whole)
