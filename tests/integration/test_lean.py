"""The lean runtime (tiny_audio/model/lean.py, numpy only) against the Hugging Face form it stands
in for: Whisper's log-mel to float rounding, its numpy operations against torch's, the same
greedy tokens batched and one by one (a tiny random model with grouped-query attention, untied
output and LoRA on every projection), one-line errors, and `ta transcribe` / `ta --help` without
torch, transformers or peft. Tests marked slow run the default model on real and synthesized
speech."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import goforward_clip, run_offline, save_tiny_model
from safetensors.numpy import load_file

from tiny_audio.audio import SAMPLE_RATE, load_audio
from tiny_audio.errors import UserError
from tiny_audio.model import lean, numeric
from tiny_audio.model.features import batch_log_mel, log_mel
from tiny_audio.zoo import BUNDLED

# Clips of every kind of length: shorter than an STFT window, a few frames, a few seconds,
# longer than Whisper's 30 s window (cut to it, as the feature extractor cuts).
LENGTHS_S = [0.05, 0.3, 1.0, 2.7, 6.0, 31.0]


def waveform(seconds: float, seed: int) -> np.ndarray:
    """A tone gliding over noise: different in every clip."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    tone = 0.3 * np.sin(2 * np.pi * (200 + 100 * seed) * t * (1 + t / 4))
    return (tone + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_lean_model(tiny_parts: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny model the lean runtime serves: tiny Whisper, a Llama with 4 query heads
    on 2 key heads and its own output layer, SmolLM2's chat template, LoRA of rank 4 on the
    attention and down projections with nonzero B (peft starts B at zero: a merge would add
    nothing)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from tiny_audio.model import ASRConfig, ASRModel

    root = tmp_path_factory.mktemp("lean")
    decoder = root / "llama"
    shutil.copytree(tiny_parts["llama"], decoder)
    shutil.copy(BUNDLED["default"] / "chat_template.jinja", decoder / "chat_template.jinja")
    vocab_size = json.loads((decoder / "config.json").read_text())["vocab_size"]
    torch.manual_seed(1)
    LlamaForCausalLM(
        LlamaConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=vocab_size, max_position_embeddings=1024,
            eos_token_id=2, pad_token_id=0, bos_token_id=1, tie_word_embeddings=False,
        )
    ).save_pretrained(decoder)  # fmt: skip
    model = ASRModel(
        ASRConfig(
            audio_encoder=tiny_parts["whisper"],
            text_decoder=str(decoder),
            projector_hidden_dim=32,
            lora_rank=4,
            lora_target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"],
            system_prompt="Transcribe speech.",
        )
    )
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.5)
    model.save_pretrained(root / "model")
    return root / "model"


def edited_copy(model: Path, folder: Path, **settings: object) -> Path:
    shutil.copytree(model, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | settings))
    return folder


def test_log_mel_is_whisper_feature_extractors(real_cards: Path) -> None:
    from transformers import WhisperFeatureExtractor

    from tiny_audio.data.manifest import read_manifest

    extractor = WhisperFeatureExtractor.from_pretrained(BUNDLED["default"])
    real = [load_audio(u.audio) for u in read_manifest(real_cards)[:6]]
    clips = real + [waveform(seconds, seed) for seed, seconds in enumerate(LENGTHS_S)]
    for clip in clips:
        expected = extractor(
            clip, sampling_rate=SAMPLE_RATE, padding="longest", return_tensors="np"
        )
        ours = log_mel(clip)
        assert ours.shape == expected["input_features"][0].shape
        assert np.abs(ours - expected["input_features"][0]).max() <= 1e-4


def test_batched_log_mel_is_asr_processors(tiny_lean_model: Path) -> None:
    from tiny_audio.model import ASRModel

    processor = ASRModel.from_pretrained(tiny_lean_model).processor
    clips = [waveform(seconds, seed) for seed, seconds in enumerate(LENGTHS_S)]
    ours, ours_lengths = batch_log_mel(clips)
    theirs, their_lengths = processor.features(clips)
    assert np.array_equal(ours_lengths, their_lengths.numpy())
    assert np.abs(ours - theirs.numpy()).max() <= 1e-4


def test_numpy_operations_are_torchs() -> None:
    """GELU (numpy has no erf), the norms, softmax and the strided convolution of numeric.py
    agree with torch's to float32 rounding."""
    functional = torch.nn.functional
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-12, 12, 4001), 3 * rng.standard_normal(4000)]).astype(
        np.float32
    )
    exact = [0.5 * value * math.erfc(-value / math.sqrt(2)) for value in x.astype(np.float64)]
    assert np.allclose(numeric.gelu(x), exact, rtol=3e-7, atol=0.0)
    # torch's float32 1 + erf(x) loses the tail below x = -3: within 1e-6 of its values
    assert np.allclose(numeric.gelu(x), functional.gelu(torch.from_numpy(x)), rtol=1e-6, atol=1e-6)
    assert np.allclose(numeric.silu(x), functional.silu(torch.from_numpy(x)), rtol=1e-6, atol=1e-7)
    rows = rng.standard_normal((2, 5, 16)).astype(np.float32)
    weight, bias = rng.standard_normal((2, 16)).astype(np.float32)
    expected = functional.layer_norm(
        torch.from_numpy(rows), (16,), torch.from_numpy(weight), torch.from_numpy(bias)
    )
    assert np.allclose(numeric.layer_norm(rows, weight, bias), expected, atol=1e-5)
    expected = functional.rms_norm(
        torch.from_numpy(rows), (16,), torch.from_numpy(weight), eps=1e-6
    )
    assert np.allclose(numeric.rms_norm(rows, weight, 1e-6), expected, atol=1e-5)
    scores = rows.copy()
    scores[0, :, :3] = -np.inf  # masked
    expected = torch.softmax(torch.from_numpy(scores), dim=-1)
    assert np.allclose(numeric.softmax(scores), expected, atol=1e-6)
    kernel, bias = rng.standard_normal((8, 16, 3)).astype(np.float32), rng.standard_normal(8)
    for stride in (1, 2):
        expected = functional.conv1d(
            torch.from_numpy(rows.transpose(0, 2, 1)),
            torch.from_numpy(kernel),
            torch.from_numpy(bias.astype(np.float32)),
            stride=stride,
            padding=1,
        )
        ours = numeric.conv1d(rows, kernel, bias.astype(np.float32), stride)
        assert np.allclose(ours, expected.numpy().transpose(0, 2, 1), atol=1e-5)


def test_only_the_fast_form_of_a_served_model_is_lean(
    tiny_lean_model: Path, tiny_parts: dict[str, str], tmp_path: Path
) -> None:
    from tiny_audio.model import ASRModel
    from tiny_audio.recognizer import load_recognizer

    assert isinstance(load_recognizer(str(tiny_lean_model)), lean.LeanASR)
    assert isinstance(load_recognizer(str(tiny_lean_model), fast=False), ASRModel)
    other_template = save_tiny_model(tmp_path / "chat", tiny_parts)  # a template it does not know
    assert isinstance(load_recognizer(str(other_template)), ASRModel)
    mosa = edited_copy(tiny_lean_model, tmp_path / "mosa", projector_type="mosa")
    assert lean.find_parts(mosa) is None


def test_config_defaults_are_asr_configs() -> None:
    from tiny_audio.model import ASRConfig

    defaults = ASRConfig().to_dict()
    assert {key: defaults[key] for key in lean.CONFIG_DEFAULTS} == lean.CONFIG_DEFAULTS


def test_safetensors_are_mapped_copy_on_write(tiny_lean_model: Path) -> None:
    file = tiny_lean_model / "model.safetensors"
    before = file.read_bytes()
    mapped, loaded = lean.read_safetensors(file), load_file(file)
    assert mapped.keys() == loaded.keys()
    assert all(np.array_equal(mapped[name], loaded[name]) for name in loaded)
    next(iter(mapped.values()))[...] += 1.0  # as merging LoRA writes
    assert file.read_bytes() == before


@pytest.mark.parametrize("pad_to_window", [False, True], ids=["clip length", "30 s window"])
def test_tokens_are_the_fast_forms_batched_and_one_by_one(
    tiny_lean_model: Path, tmp_path: Path, pad_to_window: bool
) -> None:
    from tiny_audio.model import ASRModel

    folder = edited_copy(tiny_lean_model, tmp_path / "m", encoder_pad_to_window=pad_to_window)
    ours, theirs = lean.from_pretrained(str(folder)), ASRModel.from_pretrained(folder, fast=True)
    assert isinstance(ours, lean.LeanASR)
    clips = [waveform(seconds, seed) for seed, seconds in enumerate(LENGTHS_S[:-1])]
    for prompt, options in ((None, {}), ("names: Ann", {"max_new_tokens": 3})):
        for chunk in [*([clip] for clip in clips), clips]:
            features, lengths = batch_log_mel(chunk)
            expected = theirs.generate(
                torch.from_numpy(features),
                torch.from_numpy(lengths),
                [prompt] * len(chunk),
                **options,
            )
            assert ours.generate(features, lengths, prompt, **options) == expected


def test_transcripts_are_the_fast_forms_and_beams_go_to_it(tiny_lean_model: Path) -> None:
    from tiny_audio.model import ASRModel

    ours, theirs = (
        lean.from_pretrained(str(tiny_lean_model)),
        ASRModel.from_pretrained(tiny_lean_model, fast=True),
    )
    clips = [waveform(seconds, seed) for seed, seconds in enumerate(LENGTHS_S)]
    windows = {"vad": False, "chunk_length_s": 4.0, "batch_size": 3}
    assert ours.transcribe(clips, **windows) == theirs.transcribe(clips, **windows)
    beams = {"vad": False, "num_beams": 2, "max_new_tokens": 8}
    assert ours.transcribe(clips[:2], **beams) == theirs.transcribe(clips[:2], **beams)


@pytest.mark.parametrize(
    "damage,message",
    [
        ({"lora_rank": 8}, "does not match"),
        ({"lora_target_modules": ["q_proj"]}, "does not match"),
        ({"projector_hidden_dim": 16}, "does not match"),
    ],
)
def test_weights_the_config_does_not_describe_are_one_line(
    tiny_lean_model: Path, tmp_path: Path, damage: dict[str, object], message: str
) -> None:
    folder = edited_copy(tiny_lean_model, tmp_path / "m", **damage)
    with pytest.raises(UserError, match=rf"model\.safetensors {message}"):
        lean.from_pretrained(str(folder))


def test_truncated_weights_are_one_line(tiny_lean_model: Path, tmp_path: Path) -> None:
    folder = edited_copy(tiny_lean_model, tmp_path / "m")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(UserError, match=r"model\.safetensors: damaged"):
        lean.from_pretrained(str(folder))


# `ta ARGUMENTS` in this process; prints what it wrote and the heavy modules it imported.
TA_AND_MODULES = """
import contextlib, io, json, sys
from tiny_audio.cli import cli
written = io.StringIO()
with contextlib.redirect_stdout(written):
    try:
        cli(sys.argv[1:])
    except SystemExit as done:
        assert not done.code, done.code
roots = {name.split(".")[0] for name in sys.modules}
heavy = sorted(roots & {"transformers", "peft", "torch"})
print(json.dumps({"modules": heavy, "output": written.getvalue()}))
"""


def test_help_imports_no_torch(tmp_path: Path) -> None:
    for arguments in (["--help"], ["transcribe", "--help"]):
        assert run_offline(TA_AND_MODULES, *arguments, cwd=tmp_path)["modules"] == []


@pytest.mark.slow
def test_ta_transcribe_imports_no_torch(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    clip = goforward_clip(tmp_path_factory)
    done = run_offline(TA_AND_MODULES, "transcribe", clip, cwd=tmp_path)
    assert done["modules"] == [] and "forward" in done["output"].lower()


def spoken(folder: Path, sentences: list[str]) -> list[np.ndarray]:
    clips = []
    for i, sentence in enumerate(sentences):
        path = folder / f"{i}.wav"
        subprocess.run(["flite", "-voice", "slt", "-t", sentence, "-o", str(path)], check=True)
        clips.append(load_audio(path))
    return clips


SENTENCES = [
    "Yes.",
    "Turn left at the second light.",
    "The committee will meet again on Thursday to review the budget for the coming year.",
    "Although the weather had been poor all week, the hikers set out before dawn, crossed the "
    "ridge by noon and reached the hut on the far side of the valley just as the first snow "
    "began to fall, tired but pleased with the day.",
]


@pytest.mark.slow
def test_default_model_writes_the_fast_forms_text(tmp_path: Path) -> None:
    """Real clips of every slice and synthesized speech from one word to 20 s, one by one and
    in batches of mixed lengths, and noise with the speech gate off (text where there is none)."""
    from tiny_audio.data.sources import load_source
    from tiny_audio.model import ASRModel

    real = [
        load_audio(u.audio)
        for name in ("librivox", "goforward", "cards", "ktuberling", "tuxpaint")
        for u in load_source(f"real:{name}", max_samples=2)
    ]
    noise = (0.05 * np.random.default_rng(1).standard_normal(5 * SAMPLE_RATE)).astype(np.float32)
    clips = real + spoken(tmp_path, SENTENCES) + [noise]
    assert len(clips) >= 10
    ours, theirs = (
        lean.from_pretrained(str(BUNDLED["default"])),
        ASRModel.from_pretrained("default", fast=True),
    )
    assert isinstance(ours, lean.LeanASR)
    for batch_size in (1, 8):
        options = {"batch_size": batch_size, "vad": False}
        expected = theirs.transcribe(clips, **options)
        assert ours.transcribe(clips, **options) == expected
        assert sum(bool(text) for text in expected) >= 10


@pytest.mark.slow
def test_default_model_in_the_whole_window_writes_the_fast_forms_text(tmp_path: Path) -> None:
    from tiny_audio.model import ASRModel

    folder = edited_copy(BUNDLED["default"], tmp_path / "m", encoder_pad_to_window=True)
    clips = spoken(tmp_path, SENTENCES[1:3])
    ours, theirs = lean.from_pretrained(str(folder)), ASRModel.from_pretrained(folder, fast=True)
    assert ours.transcribe(clips, batch_size=2) == theirs.transcribe(clips, batch_size=2)
