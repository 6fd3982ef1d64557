"""The tiny-audio model: the Hugging Face face of encoder -> projector -> LLM."""

from tiny_audio.model.configuration import ASRConfig
from tiny_audio.model.modeling import ASRModel
from tiny_audio.model.processing import ASRProcessor
from tiny_audio.model.projectors import PROJECTORS

__all__ = ["PROJECTORS", "ASRConfig", "ASRModel", "ASRProcessor"]
