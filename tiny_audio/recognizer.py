"""One way to get a speech recognizer from a name: a tiny-audio or LaCT checkpoint (a directory,
a zoo name or a Hub id) or a peer system ("whisper:tiny.en", "pocketsphinx", "deepgram", ...)."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import click
import numpy as np
from safetensors import SafetensorError

from tiny_audio.errors import UserError

DEFAULT_MODEL = "default"
# The -m/--model option of every command that loads one recognizer.
model_option = click.option(
    "-m",
    "--model",
    default=DEFAULT_MODEL,
    show_default=True,
    help="Model directory, zoo name, Hub id or peer.",
)
# The accurate, slower path of tiny-audio models, beside the default fast one.
fp32_option = click.option(
    "--fp32",
    is_flag=True,
    help="Run a tiny-audio model in its exact training form (LoRA unmerged, the prompt "
    "recomputed for every clip) instead of the fast one (LoRA merged, the prompt's keys and "
    "values reused).",
)


class Recognizer(Protocol):
    name: str

    def transcribe(self, audio: list[np.ndarray], **options: Any) -> list[str]:
        """Texts for 16 kHz mono float32 waveforms, in order."""
        ...


# config.json "model_type" -> "module:callable" taking the resolved directory.
FAMILIES: dict[str, str] = {
    "tiny_audio": "tiny_audio.model.lean:from_pretrained",  # the lean runtime, or ASRModel
    "lact_asr": "tiny_audio.lact.model:LaCTForCTC.from_pretrained",
}
# peer name (the part before ":") -> "module:callable" taking the part after ":" (or "").
PEERS: dict[str, str] = {
    "whisper": "tiny_audio.evaluate.peers:FasterWhisperRecognizer",
    "pocketsphinx": "tiny_audio.evaluate.peers:PocketSphinxRecognizer",
    "assemblyai": "tiny_audio.evaluate.peers:AssemblyAIRecognizer",
    "deepgram": "tiny_audio.evaluate.peers:DeepgramRecognizer",
}


# What parsing a damaged checkpoint file raises: bytes that are not UTF-8 or not JSON
# (ValueError), JSON of another shape than expected (TypeError, KeyError, AttributeError), a
# truncated or corrupt safetensors file (SafetensorError).
DAMAGED = (ValueError, TypeError, KeyError, AttributeError, SafetensorError)


@contextmanager
def reading(file: Path) -> Iterator[None]:
    """Turn a checkpoint file that is missing, unreadable or damaged into one line naming it."""
    try:
        yield
    except FileNotFoundError:
        raise UserError(f"{file}: missing") from None
    except OSError as error:
        raise UserError(f"{file}: cannot be read ({error.strerror or error})") from None
    except DAMAGED as error:
        raise UserError(f"{file}: damaged ({error})") from None


def _import(target: str) -> Any:
    module_name, _, attribute_path = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for attribute in attribute_path.split("."):
        obj = getattr(obj, attribute)
    return obj


def load_recognizer(name: str, fast: bool = True, **kwargs: Any) -> Recognizer:
    """`fast=False` keeps a tiny-audio model in the exact fp32 form it trains in (slower)."""
    peer, _, variant = name.partition(":")
    if peer in PEERS:
        return _import(PEERS[peer])(variant, **kwargs)
    from tiny_audio.zoo import resolve

    directory = Path(resolve(name))
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise UserError(f"{name}: no config.json, not a tiny-audio or LaCT model")
    with reading(config_file):
        config = json.loads(config_file.read_bytes())
    if not isinstance(config, dict):
        raise UserError(f"{config_file}: damaged (not a JSON object)")
    model_type = config.get("model_type", "")
    if model_type not in FAMILIES:
        known = ", ".join(sorted(FAMILIES))
        raise UserError(f"{name}: model_type {model_type!r} is not one of {known}")
    if model_type == "tiny_audio":
        kwargs["fast"] = fast
    return _import(FAMILIES[model_type])(str(directory), **kwargs)
