"""`python -m tiny_audio ARGS` runs `ta ARGS` (used on remote hosts, where `ta` may not be on PATH)."""

from tiny_audio.cli import main

main()
