"""The real parts together: Whisper tiny.en + SmolLM2-135M-Instruct + an MLP projector, saved and
loaded through transformers' own pipeline in a fresh offline process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_offline

from tiny_audio.data.sources import load_source

pytestmark = pytest.mark.slow

PIPELINE_SCRIPT = """
import json, sys, transformers
pipe = transformers.pipeline("automatic-speech-recognition", model=sys.argv[1], trust_remote_code=True)
clip = sys.argv[2]
results = {
    "greedy": pipe(clip, max_new_tokens=8),
    "beams": pipe(clip, num_beams=2, max_new_tokens=8),
    "sampled": pipe(clip, do_sample=True, temperature=0.7, max_new_tokens=8),
    "chunked": pipe(clip, chunk_length_s=2.0, stride_length_s=0.5, max_new_tokens=8, return_timestamps=True, vad=False),
    "at_pauses": pipe(clip, max_new_tokens=8, return_timestamps=True),
}
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_audio.model import ASRConfig, ASRModel

    directory = tmp_path_factory.mktemp("asr")
    ASRModel(
        ASRConfig(audio_encoder="whisper-tiny.en", text_decoder="smollm2-135m-instruct")
    ).save_pretrained(directory)
    return directory


def test_saved_model_is_small_and_self_describing(saved_model: Path) -> None:
    config = json.loads((saved_model / "config.json").read_text())
    assert (
        config["audio_encoder"] == "whisper-tiny.en"
        and config["text_decoder"] == "smollm2-135m-instruct"
    )
    assert config["auto_map"]["AutoModel"] == "modeling.ASRModel"
    assert (saved_model / "model.safetensors").stat().st_size < 20_000_000  # projector only
    assert (saved_model / "tokenizer.json").is_file() and (
        saved_model / "preprocessor_config.json"
    ).is_file()


def test_transformers_pipeline_in_a_fresh_offline_process(saved_model: Path) -> None:
    clip = next(iter(load_source("real:goforward"))).audio
    results = run_offline(PIPELINE_SCRIPT, saved_model, clip, cwd=saved_model.parent)
    for name in ("greedy", "beams", "sampled", "chunked", "at_pauses"):
        assert isinstance(results[name]["text"], str)
    chunks = results["chunked"]["chunks"]
    assert len(chunks) == 2 and chunks[0]["timestamp"][0] == 0.0  # 2.8 s of audio in 2 s windows
    (whole,) = results["at_pauses"]["chunks"]  # one clip that fits one window is heard whole
    assert whole["timestamp"] == [0.0, pytest.approx(2.8, abs=0.05)]
