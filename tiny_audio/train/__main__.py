"""`python -m tiny_audio.train OVERRIDES` is `ta train OVERRIDES` (for torchrun and accelerate launch)."""

import sys

from tiny_audio.cli import cli

cli(["train", *sys.argv[1:]])
