"""One way to get a speech recognizer from a name: a tiny-audio or LaCT checkpoint (a directory,
a zoo name or a Hub id) or a peer system ("whisper:tiny.en", "pocketsphinx", "deepgram", ...)."""

from __future__ import annotations

import importlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import click
import numpy as np
from safetensors import SafetensorError

from tiny_audio.errors import UserError

if TYPE_CHECKING:  # at run time only where used: they import torch
    from tiny_audio.model.alignment import Word
    from tiny_audio.model.windows import Segment

DEFAULT_MODEL = "default"
CONFIG_FILE = "config.json"  # a saved model's settings; its model_type names the family
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
    """What every recognizer load_recognizer returns offers. Callers ask these members directly,
    never whether a recognizer has one; RecognizerBase gives the default of each capability to
    a recognizer that has only `transcribe` of its own."""

    name: str
    # A first call pays one-off costs (kernels, caches) that a timed run must not count; False
    # where a warm-up would be a paid request that measures nothing.
    needs_warmup: bool
    # The transcribe() options it acts on besides batch_size: the settings the demo shows, and
    # "vad" where windows at pauses and fixed windows can be compared.
    transcribe_options: tuple[str, ...]

    def transcribe(self, audio: list[np.ndarray], **options: Any) -> list[str]:
        """Texts for 16 kHz mono float32 waveforms, in order."""
        ...

    def transcribe_segments(
        self, audio: list[np.ndarray], batch_size: int = 8, **options: Any
    ) -> list[list[Segment]]:
        """Each waveform's timed texts: one per window of long audio, or one for the clip."""
        ...

    def transcribe_words(
        self, audio: list[np.ndarray], batch_size: int = 8, **options: Any
    ) -> list[list[Word]] | None:
        """Each clip's words timed by the recognizer itself; None where it cannot, and then
        Whisper's cross-attention places its text in the audio (tiny_audio.timestamps)."""
        ...

    def describe(self) -> list[tuple[str, str]]:
        """Its parts as (name, value) rows, for the demo's model table; [] to show its name only."""
        ...


class RecognizerBase(ABC):
    """The defaults of Recognizer's capabilities: a warm-up before timing, beams as the one
    option shown, one segment per clip, no word times of its own, no parts to describe."""

    needs_warmup = True
    transcribe_options: tuple[str, ...] = ("num_beams",)

    @abstractmethod
    def transcribe(self, audio: list[np.ndarray], **options: Any) -> list[str]:
        """Texts for 16 kHz mono float32 waveforms, in order."""

    def transcribe_segments(
        self, audio: list[np.ndarray], batch_size: int = 8, **options: Any
    ) -> list[list[Segment]]:
        from tiny_audio.audio import duration_seconds
        from tiny_audio.model.windows import Segment

        texts = self.transcribe(audio, batch_size=batch_size, **options)
        return [
            [Segment(0.0, duration_seconds(wave), text)]
            for wave, text in zip(audio, texts, strict=True)
        ]

    def transcribe_words(
        self, audio: list[np.ndarray], batch_size: int = 8, **options: Any
    ) -> list[list[Word]] | None:
        return None

    def describe(self) -> list[tuple[str, str]]:
        return []


@dataclass(frozen=True)
class Family:
    """How a model family's saved folders load as recognizers."""

    load: str  # "module:callable" taking the model folder and keyword options
    fast_form: bool = False  # it has a fast inference form beside the exact one: load takes fast=


# config.json "model_type" -> its family.
FAMILIES: dict[str, Family] = {
    "tiny_audio": Family("tiny_audio.model.lean:from_pretrained", fast_form=True),
    "lact_asr": Family("tiny_audio.lact.model:LaCTForCTC.from_pretrained"),
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


@dataclass(frozen=True)
class SavedModel:
    """A trained model on disk: its folder and its config.json, whose model_type is its family."""

    directory: Path
    config: dict[str, Any]

    @property
    def model_type(self) -> str:
        return str(self.config["model_type"])


def find_model(name: str) -> SavedModel:
    """The one way from a name (a folder, zoo name or Hub id) to a saved model and its family:
    what cannot be one (no config.json, a damaged one, an unknown model_type) is one line."""
    from tiny_audio.zoo import resolve

    directory = Path(resolve(name))
    config_file = directory / CONFIG_FILE
    if not config_file.is_file():
        raise UserError(
            f"{name}: no config.json of a tiny-audio or LaCT model; save the model with "
            "save_pretrained (checkpoints from `ta train` have it)"
        )
    with reading(config_file):
        config = json.loads(config_file.read_bytes())
    if not isinstance(config, dict):
        raise UserError(f"{config_file}: damaged (not a JSON object)")
    model_type = config.get("model_type")
    if model_type not in FAMILIES:
        known = ", ".join(sorted(FAMILIES))
        raise UserError(
            f"{name}: no config.json of a tiny-audio or LaCT model (model_type {model_type!r} "
            f"is not one of {known})"
        )
    return SavedModel(directory, config)


def load_recognizer(name: str, fast: bool = True, **kwargs: Any) -> Recognizer:
    """`fast=False` keeps a tiny-audio model in the exact fp32 form it trains in (slower)."""
    peer, _, variant = name.partition(":")
    if peer in PEERS:
        return _import(PEERS[peer])(variant, **kwargs)
    model = find_model(name)
    family = FAMILIES[model.model_type]
    if family.fast_form:
        kwargs["fast"] = fast
    return _import(family.load)(str(model.directory), **kwargs)
