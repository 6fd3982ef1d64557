"""A count as a reader says it: "1 utterance", "2 utterances"."""

from __future__ import annotations


def counted(count: int, noun: str) -> str:
    """`count` then `noun`, with an s unless the count is one."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
