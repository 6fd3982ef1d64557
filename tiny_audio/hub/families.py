"""The model families `ta train` makes, and what publishing each one depends on: how a card
describes it and the code transformers loads it with."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tiny_audio.recognizer import find_model


@dataclass(frozen=True)
class Description:
    """What a model card says about a saved model's parts."""

    summary: str
    architecture: list[tuple[str, Any]]
    notes: str  # below the architecture table; "" for none
    base_models: list[str]  # Hub ids
    trained: str  # what training changed, for the limitations


@dataclass(frozen=True)
class Family:
    model_type: str  # config.json "model_type"
    describe: Callable[[dict[str, Any], Path], Description]
    # Writes the code `pipeline(..., trust_remote_code=True)` loads into a model folder.
    write_code: Callable[[Path], None]
    tags: tuple[str, ...]
    # Distributions the code imports only for optional features; left out of requirements.txt.
    optional_requirements: tuple[str, ...] = ()


def count_parameters(model_dir: Path) -> int:
    """Numbers stored in the folder's safetensors files (read from headers, no tensors loaded)."""
    from safetensors import safe_open

    total = 0
    for weights in model_dir.glob("*.safetensors"):
        with safe_open(str(weights), framework="numpy") as file:
            for name in file.keys():  # noqa: SIM118 (safe_open is not a dict)
                count = 1
                for size in file.get_slice(name).get_shape():
                    count *= size
                total += count
    return total


def hub_id(part: str) -> str | None:
    """The Hub repo a zoo part or Hub id comes from (None for a local folder)."""
    from tiny_audio.model.modeling import ZOO_HUB_IDS

    if part in ZOO_HUB_IDS:
        return ZOO_HUB_IDS[part]
    if part.count("/") == 1 and not Path(part).exists():
        return part
    return None


def describe_tiny_audio(config: dict[str, Any], model_dir: Path) -> Description:
    from tiny_audio.model.modeling import ZOO_HUB_IDS
    from tiny_audio.zoo import ZOO

    encoder, decoder = str(config.get("audio_encoder")), str(config.get("text_decoder"))
    lora = int(config.get("lora_rank") or 0)
    # Without tiny-audio's zoo the remote code takes the Hub originals of zoo parts, which the
    # zoo may have converted (from a quantized GGUF, say): close results, not equal ones.
    zoo_parts = [part for part in (encoder, decoder) if part in ZOO and part in ZOO_HUB_IDS]
    notes = (
        "Trained with tiny-audio's zoo copies of "
        + " and ".join(f"`{part}` ({ZOO[part].description})" for part in zoo_parts)
        + ". Loaded without tiny-audio, the remote code takes "
        + " and ".join(f"`{ZOO_HUB_IDS[part]}`" for part in zoo_parts)
        + " from the Hub instead, so transcripts can differ slightly from the figures here."
        if zoo_parts
        else ""
    )
    return Description(
        summary=(
            f"A speech recognizer built with tiny-audio: the frozen `{encoder}` audio encoder, "
            f"a trained `{config.get('projector_type')}` projector and the frozen `{decoder}` "
            "language model, which writes the transcript."
        ),
        architecture=[
            ("audio encoder (frozen)", encoder),
            (
                "projector (trained)",
                f"{config.get('projector_type')}, frame stacking "
                f"k={config.get('projector_pool_stride')}, "
                f"hidden {config.get('projector_hidden_dim')}",
            ),
            ("language model (frozen)", decoder),
            (
                "LoRA on the language model",
                f"rank {lora}, alpha {config.get('lora_alpha')}" if lora else "none",
            ),
            ("trained parameters", f"{count_parameters(model_dir):,}"),
        ],
        notes=notes,
        base_models=[hub for part in (encoder, decoder) if (hub := hub_id(part))],
        trained="the projector and the LoRA adapters were trained"
        if lora
        else "the projector was trained",
    )


def describe_lact(config: dict[str, Any], model_dir: Path) -> Description:
    from tiny_audio.lact.lm import LM_FILE

    lact = config.get("mixer") == "lact"
    mixer = "a LaCT layer" if lact else "attention of the same size (the ablation baseline)"
    lm_file = model_dir / LM_FILE
    lm = (
        f"order {json.loads(lm_file.read_text())['order']}, weight {config.get('lm_weight')}"
        if lm_file.is_file()
        else "none"
    )
    rows: list[tuple[str, Any]] = [
        (
            "front end",
            f"log-mel ({config.get('num_mel_bins')} bins), "
            f"{config.get('audio_encoder_layers')} convolutions",
        ),
        (
            "blocks",
            f"{config.get('num_hidden_layers')} x (sliding-window attention "
            f"of +-{config.get('attention_window')} tokens, {mixer}, SwiGLU feed-forward), "
            f"hidden {config.get('hidden_size')}",
        ),
    ]
    if lact:
        rows.append(
            (
                "LaCT layer",
                f"{config.get('num_lact_heads')} fast-weight heads updated once per "
                f"{config.get('lact_chunk_size')} tokens"
                + (", half of them reading backwards" if config.get("lact_bidirectional") else ""),
            )
        )
    rows += [
        ("output", f"CTC over {config.get('vocab_size')} labels (characters and the blank)"),
        ("character LM for beam search", lm),
        ("parameters (all trained)", f"{count_parameters(model_dir):,}"),
    ]
    return Description(
        summary=(
            "A speech recognizer trained from scratch with tiny-audio: LaCT, a CTC model whose "
            "blocks pair sliding-window attention with large-chunk test-time training (fast "
            "weights updated once per chunk of audio), writing characters."
        ),
        architecture=rows,
        notes="",
        base_models=[],
        trained="every weight was",
    )


def write_tiny_audio_code(destination: Path) -> None:
    from tiny_audio.model.modeling import copy_remote_code

    copy_remote_code(destination)


# lact/hf.py and every file it imports, under tiny_audio/; copied flat beside the weights.
LACT_REMOTE_CODE_FILES = [
    "lact/hf.py",
    "lact/model.py",
    "lact/config.py",
    "lact/decoding.py",
    "lact/lm.py",
    "lact/tokenizer.py",
    "model/layers.py",
    "model/windows.py",
    "model/features.py",
    "audio.py",
]


def write_lact_code(destination: Path) -> None:
    """The code of lact/hf.py, and config.json keys that name its classes to transformers."""
    package = Path(__file__).parents[1]
    for name in LACT_REMOTE_CODE_FILES:
        shutil.copyfile(package / name, destination / Path(name).name)
    config_file = destination / "config.json"
    config = json.loads(config_file.read_text())
    config["architectures"] = ["LaCTForCTCHF"]
    config["auto_map"] = {"AutoConfig": "hf.LaCTHFConfig", "AutoModel": "hf.LaCTForCTCHF"}
    config["custom_pipelines"] = {
        "automatic-speech-recognition": {"impl": "hf.LaCTPipeline", "pt": ["AutoModel"]}
    }
    config_file.write_text(json.dumps(config, indent=2) + "\n")


FAMILIES: dict[str, Family] = {
    family.model_type: family
    for family in (
        Family(
            model_type="tiny_audio",
            describe=describe_tiny_audio,
            write_code=write_tiny_audio_code,
            tags=("tiny-audio", "speech", "asr", "custom_code"),
            # word timestamps and pause-aware windows
            optional_requirements=("faster-whisper", "ctranslate2"),
        ),
        Family(
            model_type="lact_asr",
            describe=describe_lact,
            write_code=write_lact_code,
            tags=("tiny-audio", "speech", "asr", "ctc", "lact", "custom_code"),
        ),
    )
}


def resolve_model(model: str) -> tuple[Path, Family]:
    """A checkpoint directory, or a zoo / bundled model name, as a folder and its family."""
    saved = find_model(model)
    return saved.directory, FAMILIES[saved.model_type]
