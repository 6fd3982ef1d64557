"""Training: Hydra configs in configs/, one loop per model family."""
