"""ASRModel with tiny random encoders and decoders: lengths, masks, splicing, labels, generation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tiny_audio.model import ASRConfig, ASRModel
from tiny_audio.model.encoders import load_encoder
from tiny_audio.model.modeling import RepetitionGuard
from tiny_audio.model.processing import IGNORE_INDEX, ASRProcessor
from tiny_audio.model.projectors import stack_frames, stacked_lengths
from tiny_audio.model.windows import merge_overlap, split_windows


def clips(*seconds: float, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(int(s * 16000))).astype(np.float32) for s in seconds]


@pytest.fixture(scope="module")
def whisper_model(tiny_parts: dict[str, str]) -> ASRModel:
    torch.manual_seed(0)
    config = ASRConfig(
        audio_encoder=tiny_parts["whisper"],
        text_decoder=tiny_parts["llama"],
        projector_hidden_dim=64,
    )
    return ASRModel(config).eval()


@pytest.mark.parametrize("encoder_name", ["whisper", "hubert", "wav2vec2"])
def test_encoder_lengths_and_padding_invariance(
    tiny_parts: dict[str, str], encoder_name: str
) -> None:
    from transformers import AutoFeatureExtractor, AutoTokenizer

    encoder = load_encoder(tiny_parts[encoder_name])
    feature_extractor = AutoFeatureExtractor.from_pretrained(tiny_parts[encoder_name])
    processor = ASRProcessor(feature_extractor, AutoTokenizer.from_pretrained(tiny_parts["llama"]))
    waves = clips(1.0, 2.3, 0.4)
    features, lengths = processor.features(waves)
    with torch.no_grad():
        hidden, mask = encoder(features, lengths)
        expected = encoder.output_lengths(lengths)
        assert mask.sum(dim=1).tolist() == expected.tolist()
        assert hidden.shape[:2] == mask.shape and hidden.shape[-1] == encoder.hidden_size
        for i, wave in enumerate(waves):  # a clip in a padded batch == the clip alone
            alone_features, alone_lengths = processor.features([wave])
            alone, alone_mask = encoder(alone_features, alone_lengths)
            n = int(alone_mask.sum())
            assert n == int(expected[i])
            torch.testing.assert_close(hidden[i, :n], alone[0, :n], atol=1e-4, rtol=1e-4)
    assert not any(p.requires_grad for p in encoder.parameters())


def test_whisper_window_mode_equals_whisper_on_its_padded_30_s_input(
    tiny_parts: dict[str, str],
) -> None:
    """`pad_to_window`: a clip in a batch reads as Whisper reads it alone, padded with silence."""
    from transformers import AutoFeatureExtractor, AutoTokenizer

    encoder = load_encoder(tiny_parts["whisper"], pad_to_window=True)
    feature_extractor = AutoFeatureExtractor.from_pretrained(tiny_parts["whisper"])
    processor = ASRProcessor(feature_extractor, AutoTokenizer.from_pretrained(tiny_parts["llama"]))
    waves = clips(1.0, 2.3, seed=3)
    features, lengths = processor.features(waves)
    with torch.no_grad():
        hidden, mask = encoder(features, lengths)
        assert mask.sum(dim=1).tolist() == encoder.output_lengths(lengths).tolist()
        for i, wave in enumerate(waves):
            window = feature_extractor(wave, sampling_rate=16_000, padding="max_length")
            whole = torch.tensor(np.asarray(window["input_features"]), dtype=torch.float32)
            expected = encoder.encoder(whole).last_hidden_state[0]
            n = int(mask[i].sum())
            # the clip's last STFT frame sees reflection, not zeros, in the clip-only features
            torch.testing.assert_close(hidden[i, : n - 2], expected[: n - 2], atol=1e-3, rtol=1e-3)
    with pytest.raises(ValueError, match="needs Whisper"):
        load_encoder(tiny_parts["hubert"], pad_to_window=True)


@pytest.mark.parametrize("k", [1, 2, 4, 5])
@pytest.mark.parametrize("frames", [1, 3, 4, 9, 10, 50])
def test_frame_stacking_length_formula(k: int, frames: int) -> None:
    hidden = torch.randn(2, frames, 3)
    mask = torch.ones(2, frames, dtype=torch.bool)
    stacked, new_mask = stack_frames(hidden, mask, k)
    expected = max(1, (frames - k) // k + 1)
    assert stacked.shape == (2, expected, 3 * k)
    assert new_mask.sum(dim=1).tolist() == [expected, expected]
    assert int(stacked_lengths(torch.tensor([frames]), k)) == expected
    if frames >= k:  # the first stacked frame is the first k frames side by side
        torch.testing.assert_close(stacked[0, 0], hidden[0, :k].reshape(-1))


def test_prompt_splicing_and_label_masking(whisper_model: ASRModel) -> None:
    model = whisper_model
    waves = clips(1.0, 1.7)
    features, lengths = model.processor.features(waves)
    counts = model.audio_token_counts(lengths)
    texts = ["hello world", "the quick brown fox"]
    batch = model.processor.text_inputs(counts, texts=texts)
    for row, (count, text) in enumerate(zip(counts, texts)):
        ids, labels = batch["input_ids"][row], batch["labels"][row]
        assert int((ids == model.audio_token_id).sum()) == count
        answer = model.tokenizer(text, add_special_tokens=False).input_ids + [
            model.tokenizer.eos_token_id
        ]
        assert labels[labels != IGNORE_INDEX].tolist() == answer
        # every labelled position holds the same token as the input (teacher forcing)
        assert (ids[labels != IGNORE_INDEX] == labels[labels != IGNORE_INDEX]).all()
        assert not (labels[ids == model.audio_token_id] != IGNORE_INDEX).any()
    audio_embeds, audio_mask = model.embed_audio(features, lengths)
    embeds = model.splice(batch["input_ids"], audio_embeds, audio_mask)
    first = (batch["input_ids"][0] == model.audio_token_id).nonzero()[0, 0]
    torch.testing.assert_close(embeds[0, first], audio_embeds[0, 0])
    with pytest.raises(ValueError, match="audio"):
        model.splice(batch["input_ids"][:, :-1], audio_embeds, audio_mask[:, :1])


def test_training_loss_backpropagates_to_projector_only(whisper_model: ASRModel) -> None:
    model = whisper_model
    features, lengths = model.processor.features(clips(1.0, 0.6))
    text = model.processor.text_inputs(
        model.audio_token_counts(lengths), texts=["hello", "the dog"]
    )
    model.zero_grad()
    loss = model(**text, input_features=features, feature_lengths=lengths)["loss"]
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.projector.parameters())
    assert all(p.grad is None for p in model.decoder.parameters())
    model.zero_grad()


def test_audio_token_dropout_zeroes_whole_tokens_in_training_only(whisper_model: ASRModel) -> None:
    model = whisper_model
    features, lengths = model.processor.features(clips(8.0))
    model.config.audio_token_dropout = 0.3
    try:
        model.train()
        dropped, _ = model.embed_audio(features, lengths)
        model.eval()
        kept, _ = model.embed_audio(features, lengths)
    finally:
        model.config.audio_token_dropout = 0.0
    zeroed = (dropped == 0).all(dim=-1)
    assert ((dropped == 0).any(dim=-1) == zeroed).all()  # whole tokens, never parts
    assert 0.15 < zeroed.float().mean() < 0.45
    assert not (kept == 0).all(dim=-1).any()


def test_batched_generation_equals_one_at_a_time(whisper_model: ASRModel) -> None:
    model = whisper_model
    waves = clips(0.5, 2.0, 1.1, seed=3)
    features, lengths = model.processor.features(waves)
    batched = model.generate(features, lengths, max_new_tokens=12, repetition_guard=False)
    single = [
        model.generate(*model.processor.features([w]), max_new_tokens=12, repetition_guard=False)[0]
        for w in waves
    ]
    assert batched == single
    assert all(len(tokens) > 0 for tokens in batched)


def test_generation_options(whisper_model: ASRModel) -> None:
    model = whisper_model
    waves = clips(1.0)
    greedy = model.transcribe(waves, max_new_tokens=6)
    assert greedy == model.transcribe(waves, max_new_tokens=6)
    assert isinstance(model.transcribe(waves, num_beams=3, max_new_tokens=6)[0], str)
    torch.manual_seed(0)
    sampled = model.transcribe(waves, do_sample=True, temperature=1.5, top_p=0.9, max_new_tokens=6)
    assert isinstance(sampled[0], str)
    with_context = model.transcribe(waves, prompt="names: Ada", max_new_tokens=6)
    assert isinstance(with_context[0], str)


def test_a_line_break_ends_the_transcript(whisper_model: ASRModel) -> None:
    model = whisper_model
    newline = model.tokenizer.encode("\n", add_special_tokens=False)
    letter = model.tokenizer.encode("a", add_special_tokens=False)
    assert len(newline) == 1 and newline[0] in model.stop_token_ids
    assert letter[0] not in model.stop_token_ids
    features, lengths = model.processor.features(clips(1.0))
    # Push the decoder to write a line break first: generation ends there, with no text.
    pushed = model.generate(
        features, lengths, max_new_tokens=8, sequence_bias={(newline[0],): 100.0}
    )
    assert pushed == [[]]


def test_long_audio_is_windowed(whisper_model: ASRModel) -> None:
    model = whisper_model
    model.config.max_audio_seconds = 2.0  # pretend the encoder takes 2 s at most
    try:
        segments = model.transcribe_segments(
            clips(5.0), chunk_length_s=2.0, stride_length_s=0.5, max_new_tokens=4, vad=False
        )[0]
    finally:
        model.config.max_audio_seconds = 30.0
    assert [round(s.start, 2) for s in segments] == [0.0, 1.5, 3.0]
    assert segments[-1].end == pytest.approx(5.0)


def test_save_and_load_restores_only_trained_weights(whisper_model: ASRModel, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from safetensors.torch import load_file

    whisper_model.save_pretrained(tmp_path)
    saved = load_file(str(tmp_path / "model.safetensors"))
    assert saved and all(name.startswith("projector.") for name in saved)
    for code in ("modeling.py", "configuration.py", "pipeline.py", "audio.py"):
        assert (tmp_path / code).is_file()
    reloaded = ASRModel.from_pretrained(tmp_path)
    features, lengths = whisper_model.processor.features(clips(1.3))
    assert reloaded.generate(features, lengths, max_new_tokens=8) == whisper_model.generate(
        features, lengths, max_new_tokens=8
    )


def test_lora_adapters_are_trained_and_saved(tiny_parts: dict[str, str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = ASRConfig(
        audio_encoder=tiny_parts["whisper"],
        text_decoder=tiny_parts["llama"],
        projector_hidden_dim=32,
        lora_rank=4,
    )
    model = ASRModel(config)
    trained = model.trained_parameters()
    assert any("lora_A" in name for name in trained) and any(
        n.startswith("projector.") for n in trained
    )
    with torch.no_grad():
        for name, param in trained.items():
            if "lora_B" in name:
                param.normal_()  # LoRA B starts at zero; make the adapter matter
    model.save_pretrained(tmp_path)
    reloaded = ASRModel.from_pretrained(tmp_path)
    for name, param in reloaded.trained_parameters().items():
        torch.testing.assert_close(param, trained[name])


def test_repetition_guard_stops_and_trims_loops() -> None:
    guard = RepetitionGuard()
    loop = [5, 6, 7] + [8, 9] * 10
    assert guard.looping_period(loop) == 2
    assert guard.trim(loop) == [5, 6, 7, 8, 9]
    assert guard.looping_period([1, 2, 3, 4, 5, 6]) is None
    assert guard.trim([3, 3, 3]) == [3, 3, 3]  # short legitimate repeats are kept
    scores = torch.zeros(2, 10)
    assert guard(torch.tensor([loop, list(range(23))]), scores).tolist() == [True, False]


def test_split_windows_and_merge_overlap() -> None:
    assert split_windows(16000, 30.0, None) == [(0, 16000, False)]
    windows = split_windows(16000 * 10, 4.0, 1.0)
    assert windows[0] == (0, 64000, False) and windows[1][0] == 48000 and windows[-1][1] == 160000
    assert all(overlaps for _, _, overlaps in windows[1:])
    assert merge_overlap("the cat sat on the", "on the mat today") == "mat today"
    assert merge_overlap("hello there", "general kenobi") == "general kenobi"
    assert (
        merge_overlap("a b c the", "x y the z") == "x y the z"
    )  # lone common word mid-way is chance


def test_ctc_head_prefers_frames_that_say_the_transcript() -> None:
    from tiny_audio.model.modeling import CTCHead

    torch.manual_seed(0)
    embeddings = torch.randn(50, 16)
    head = CTCHead(16, embedding_scale=1.0)
    said, other = torch.tensor([3, 7, 7, 12]), torch.tensor([30, 4, 41, 9])
    # Frames that are the spoken tokens' own embeddings, a blank-ish zero frame between repeats.
    frames = torch.stack(
        [embeddings[3], embeddings[7], torch.zeros(16), embeddings[7], embeddings[12]]
    )
    mask = torch.ones(1, 5, dtype=torch.bool)
    right = head(frames[None], mask, embeddings, [said])
    wrong = head(frames[None], mask, embeddings, [other])
    assert torch.isfinite(right) and right < wrong


def test_ctc_loss_trains_the_head_and_projector_and_is_saved(
    tiny_parts: dict[str, str], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    config = ASRConfig(
        audio_encoder=tiny_parts["whisper"],
        text_decoder=tiny_parts["llama"],
        projector_hidden_dim=32,
        ctc_weight=0.3,
    )
    model = ASRModel(config).train()
    features, lengths = model.processor.features(clips(1.0, 0.6))
    text = model.processor.text_inputs(
        model.audio_token_counts(lengths), texts=["hello", "the dog"]
    )
    output = model(**text, input_features=features, feature_lengths=lengths)
    assert output["ctc_loss"] > 0
    output["loss"].backward()
    assert model.ctc_head is not None and model.ctc_head.blank.grad is not None
    assert all(p.grad is not None for p in model.projector.parameters())
    assert all(p.grad is None for p in model.decoder.parameters())
    with torch.no_grad():
        model.ctc_head.blank.normal_()
    model.save_pretrained(tmp_path)
    reloaded = ASRModel.from_pretrained(tmp_path)
    assert reloaded.ctc_head is not None
    torch.testing.assert_close(reloaded.ctc_head.blank, model.ctc_head.blank)
