"""Character vocabulary for CTC: blank first, then space, letters and the apostrophe."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

try:
    from tiny_audio.errors import UserError
except ImportError:  # copied beside a pushed model as remote code (hf.py), without tiny-audio
    UserError = ValueError  # type: ignore[assignment,misc]

BLANK = "<blank>"
DEFAULT_CHARACTERS = " abcdefghijklmnopqrstuvwxyz'"


class CharTokenizer:
    """Lowercases, keeps only known characters, and maps each one to an id (0 is the CTC blank)."""

    def __init__(self, characters: str = DEFAULT_CHARACTERS) -> None:
        self.characters = characters
        self.vocab = [BLANK, *characters]
        self.blank_id = 0
        self._ids = {char: index for index, char in enumerate(self.vocab) if index}

    def __len__(self) -> int:
        return len(self.vocab)

    def normalize(self, text: str) -> str:
        # Accents are folded to their base letter; unknown characters become word breaks.
        text = unicodedata.normalize("NFKD", text.lower().replace("’", "'"))
        text = "".join(
            char if char in self._ids else " " for char in text if not unicodedata.combining(char)
        )
        return re.sub(r"\s+", " ", text).strip()

    def encode(self, text: str) -> list[int]:
        return [self._ids[char] for char in self.normalize(text)]

    def decode(self, ids: list[int]) -> str:
        text = "".join(self.vocab[index] for index in ids if index != self.blank_id)
        return re.sub(r"\s+", " ", text).strip()

    def save(self, directory: Path) -> None:
        (directory / "vocab.json").write_text(json.dumps(self.vocab, indent=1) + "\n")

    @classmethod
    def load(cls, directory: Path) -> CharTokenizer:
        file = directory / "vocab.json"
        if not file.is_file():
            raise UserError(f"{directory}: no vocab.json")
        vocab = json.loads(file.read_text())
        if not vocab or vocab[0] != BLANK:
            raise UserError(f"{file}: the first entry must be {BLANK!r}")
        return cls("".join(vocab[1:]))
