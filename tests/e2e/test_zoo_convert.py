"""The converted zoo models against the originals they came from, on real recorded speech:
PyTorch Whisper vs CTranslate2 (encoder outputs and greedy text), and the dequantized SmolLM2
through transformers with its chat template."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from tiny_audio.audio import load_audio
from tiny_audio.data.sources import load_source
from tiny_audio.zoo import ct2_path, resolve

pytestmark = pytest.mark.slow
WHISPER_MODELS = ["whisper-tiny.en", "whisper-base"]
Whisper = tuple[str, Any, Any]  # zoo name, WhisperForConditionalGeneration, WhisperProcessor


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    """The two shortest LibriVox utterances (3 s) and "go forward ten meters": real speech."""
    librivox = sorted((load_audio(u.audio) for u in load_source("real:librivox")), key=len)
    goforward = next(iter(load_source("real:goforward")))
    return [*librivox[:2], load_audio(goforward.audio)]


@pytest.fixture(scope="module", params=WHISPER_MODELS)
def whisper(request: pytest.FixtureRequest) -> Whisper:
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    folder = resolve(request.param)
    model = WhisperForConditionalGeneration.from_pretrained(folder).eval()
    return request.param, model, WhisperProcessor.from_pretrained(folder)


def test_encoder_matches_ctranslate2(whisper: Whisper, clips: list[np.ndarray]) -> None:
    import ctranslate2

    name, model, processor = whisper
    reference = ctranslate2.models.Whisper(
        str(ct2_path(name)), device="cpu", compute_type="float32"
    )
    features = processor.feature_extractor(
        clips[:2], sampling_rate=16000, return_tensors="np"
    ).input_features
    with torch.no_grad():
        ours = model.model.encoder(torch.from_numpy(features)).last_hidden_state.numpy()
    theirs = np.asarray(reference.encode(ctranslate2.StorageView.from_array(features), to_cpu=True))
    assert ours.shape == theirs.shape == (2, 1500, model.config.d_model)
    assert np.abs(ours - theirs).max() < 1e-3


def test_greedy_text_matches_faster_whisper(whisper: Whisper, clips: list[np.ndarray]) -> None:
    from faster_whisper import WhisperModel

    name, model, processor = whisper
    peer = WhisperModel(str(ct2_path(name)), device="cpu", compute_type="float32", cpu_threads=2)
    expected = []
    for audio in clips:
        segments, _ = peer.transcribe(
            audio, beam_size=1, language="en", without_timestamps=True, condition_on_previous_text=False, temperature=0.0
        )  # fmt: skip
        expected.append("".join(segment.text for segment in segments).strip())
    features = processor(clips, sampling_rate=16000, return_tensors="pt").input_features
    with torch.no_grad():
        tokens = model.generate(features)
    texts = [text.strip() for text in processor.batch_decode(tokens, skip_special_tokens=True)]
    assert texts == expected
    assert "forward" in texts[-1].lower()  # goforward: "go forward ten meters"


def test_smollm2_chats_with_its_template() -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = resolve("smollm2-135m-instruct")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    assert model.config.model_type == "llama"
    assert model.dtype == torch.float32
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    inputs: Any = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    assert "<|im_start|>assistant" in tokenizer.decode(inputs["input_ids"][0])
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer
