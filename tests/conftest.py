"""Shared fixtures: tiny randomly initialised encoders and decoders saved as real HF folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

TIERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its folder's tier (tests/unit, tests/integration, tests/e2e), so
    `-m unit`, `-m "not e2e"` and the like select by folder wherever the files are named."""
    here = Path(__file__).resolve().parent
    for item in items:
        try:
            tier = item.path.resolve().relative_to(here).parts[0]
        except ValueError:
            continue
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))


CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _save_tiny_tokenizer(directory: Path) -> int:
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    corpus = ["Transcribe: hello world, the quick brown fox jumps over the lazy dog."] * 20
    bpe.train_from_iterator(
        corpus,
        vocab_size=300,
        min_frequency=1,
        special_tokens=["<pad>", "<|im_start|>", "<|im_end|>"],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<pad>", bos_token="<|im_start|>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(directory)
    return len(tokenizer)


@pytest.fixture(scope="session")
def tiny_parts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Paths of tiny random 'whisper', 'hubert', 'wav2vec2' encoders and a 'llama' decoder."""
    from transformers import (
        HubertConfig,
        HubertModel,
        LlamaConfig,
        LlamaForCausalLM,
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2Model,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
    )

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("tiny_parts")
    paths = {name: root / name for name in ("whisper", "hubert", "wav2vec2", "llama")}
    for path in paths.values():
        path.mkdir()

    whisper = WhisperConfig(
        d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, vocab_size=100, pad_token_id=0, bos_token_id=1, eos_token_id=2,
        decoder_start_token_id=1,
        num_mel_bins=80, max_source_positions=1500, max_target_positions=64,
    )  # fmt: skip
    WhisperForConditionalGeneration(whisper).save_pretrained(paths["whisper"])
    WhisperFeatureExtractor().save_pretrained(paths["whisper"])

    small_conv = {"conv_dim": (16, 16), "conv_stride": (5, 4), "conv_kernel": (10, 4)}
    common = dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, **small_conv,
    )  # fmt: skip
    HubertModel(HubertConfig(feat_extract_norm="layer", **common)).save_pretrained(paths["hubert"])
    Wav2Vec2Model(
        Wav2Vec2Config(feat_extract_norm="layer", do_stable_layer_norm=True, **common)
    ).save_pretrained(paths["wav2vec2"])
    for name in ("hubert", "wav2vec2"):
        Wav2Vec2FeatureExtractor(return_attention_mask=True, do_normalize=True).save_pretrained(
            paths[name]
        )

    vocab_size = _save_tiny_tokenizer(paths["llama"])
    llama = LlamaConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, vocab_size=vocab_size, max_position_embeddings=1024,
        eos_token_id=2, pad_token_id=0, bos_token_id=1,
    )  # fmt: skip
    LlamaForCausalLM(llama).save_pretrained(paths["llama"])
    return {name: str(path) for name, path in paths.items()}


TONE_TEXTS = [
    "hello world",
    "the quick brown fox",
    "jumps over",
    "the lazy dog",
    "hello fox",
    "brown dog",
]


@pytest.fixture(scope="session")
def tone_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manifest of six short clips (tones and noise, 0.6-2.1 s) with transcripts."""
    import soundfile as sf

    from tiny_audio.data.manifest import Utterance, write_manifest

    folder = tmp_path_factory.mktemp("tone_corpus")
    rng = np.random.default_rng(0)
    utterances = []
    for i, text in enumerate(TONE_TEXTS):
        seconds = 0.6 + 0.3 * i
        t = np.arange(int(seconds * 16000)) / 16000
        wave = 0.2 * np.sin(2 * np.pi * (200 + 90 * i) * t) + 0.05 * rng.standard_normal(t.size)
        path = folder / f"clip{i}.wav"
        sf.write(path, wave.astype(np.float32), 16000)
        utterances.append(Utterance(id=f"clip{i}", audio=str(path), text=text, duration=seconds))
    return write_manifest(folder / "dev.jsonl", utterances)


@pytest.fixture
def tone() -> np.ndarray:
    """One second of a 440 Hz tone with a little noise, 16 kHz float32."""
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(16000)).astype(
        np.float32
    )


@pytest.fixture(scope="session")
def real_cards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real `cards` slice's manifest: the data home's, or built from its Debian package."""
    from tiny_audio.data.real import build_real
    from tiny_audio.data.sources import data_home

    folder = data_home() / "real"
    if not (folder / "cards.jsonl").is_file():
        folder = tmp_path_factory.mktemp("real")
        build_real(folder, ["cards"])
    return folder / "cards.jsonl"
