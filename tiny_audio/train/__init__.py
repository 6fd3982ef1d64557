"""Training: Hydra configs in tiny_audio/configs/, one loop per model family."""
