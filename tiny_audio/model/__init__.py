"""The tiny-audio model: the Hugging Face face of encoder -> projector -> LLM. Its names are
imported on first use, so that the lean runtime (lean.py) and the windows load without
transformers."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tiny_audio.model.configuration import ASRConfig
    from tiny_audio.model.modeling import ASRModel
    from tiny_audio.model.processing import ASRProcessor
    from tiny_audio.model.projectors import PROJECTORS

# name -> the module of this package that defines it
_MODULES = {
    "ASRConfig": "configuration",
    "ASRModel": "modeling",
    "ASRProcessor": "processing",
    "PROJECTORS": "projectors",
}

__all__ = ["PROJECTORS", "ASRConfig", "ASRModel", "ASRProcessor"]


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
