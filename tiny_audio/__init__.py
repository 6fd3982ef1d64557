"""tiny-audio: a frozen audio encoder, a trained projector and a small language model."""

__version__ = "0.1.0"
