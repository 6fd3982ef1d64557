"""A character n-gram language model for CTC beam search (shallow fusion).

A CTC model scores each frame on its own, so it spells words it has rarely heard as they sound.
A character LM fitted on training transcripts knows which letter sequences are English; beam
search adds `weight * log P(char | previous chars)` to each extension. Witten-Bell interpolation
backs off from the longest history seen to shorter ones, down to a uniform distribution.

    python -m tiny_audio.lact.lm CHECKPOINT TRAIN.jsonl [TRAIN.jsonl ...] --order 6
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

import click

try:  # main() reads tiny-audio manifests; the copy beside a pushed model (hf.py) only loads LMs
    from tiny_audio.data.manifest import iter_manifest
    from tiny_audio.errors import UserError
except ImportError:  # copied beside a pushed model as remote code, without tiny-audio
    UserError = ValueError  # type: ignore[assignment,misc]

from .tokenizer import CharTokenizer

LM_FILE = "char_lm.json"
BOUNDARY = "\n"  # the history before a sentence's first character, and its end as a prediction

# fuse(prefix of label ids, next label id or None for the end) -> weighted LM log-probability
Fusion = Callable[[tuple[int, ...], int | None], float]


class CharLM:
    """Counts of each character after every history of up to `order - 1` characters; `alphabet`
    is every character it predicts (BOUNDARY included), so probabilities sum to 1 over it."""

    def __init__(self, order: int, counts: dict[str, dict[str, int]], alphabet: str) -> None:
        self.order, self.counts, self.alphabet = order, counts, alphabet
        # (count, distinct followers) per history: Witten-Bell's two statistics.
        self.totals = {h: (sum(c.values()), len(c)) for h, c in counts.items()}
        self._memo: dict[tuple[str, str], float] = {}

    @classmethod
    def fit(cls, texts: Iterable[str], characters: str, order: int = 6) -> CharLM:
        """Fit on texts written in `characters` (a CTC vocabulary without its blank)."""
        if order < 1:
            raise UserError(f"LM order must be at least 1, not {order}")
        counts: dict[str, Counter[str]] = defaultdict(Counter)
        for text in texts:
            padded = BOUNDARY + text + BOUNDARY
            for end in range(1, len(padded)):
                for length in range(min(order - 1, end) + 1):
                    counts[padded[end - length : end]][padded[end]] += 1
        if not counts:
            raise UserError("no text to fit a character LM on")
        return cls(order, {h: dict(c) for h, c in counts.items()}, characters + BOUNDARY)

    def probability(self, history: str, char: str) -> float:
        key = (history, char)
        if key not in self._memo:
            lower = self.probability(history[1:], char) if history else 1.0 / len(self.alphabet)
            seen = self.counts.get(history)
            if seen is None:
                self._memo[key] = lower
            else:
                total, types = self.totals[history]
                self._memo[key] = (seen.get(char, 0) + types * lower) / (total + types)
        return self._memo[key]

    def fusion(self, vocab: list[str], weight: float, bonus: float) -> Fusion:
        """Beam-search scorer over label ids: `weight` times the LM log-probability plus `bonus`
        per character (which offsets the LM's preference for short transcripts)."""
        reach = self.order - 1  # characters of history the LM looks at

        def fuse(prefix: tuple[int, ...], label: int | None) -> float:
            history = (
                "".join(vocab[i] for i in prefix[max(0, len(prefix) - reach) :]) if reach else ""
            )
            if len(prefix) < reach:
                history = BOUNDARY + history  # the sentence start is still in reach
            char = BOUNDARY if label is None else vocab[label]
            score = weight * math.log(self.probability(history, char))
            return score if label is None else score + bonus

        return fuse

    def save(self, directory: Path) -> None:
        payload = {"order": self.order, "alphabet": self.alphabet, "counts": self.counts}
        (directory / LM_FILE).write_text(json.dumps(payload, separators=(",", ":")))

    @classmethod
    def load(cls, directory: Path) -> CharLM | None:
        file = directory / LM_FILE
        if not file.is_file():
            return None
        payload = json.loads(file.read_text())
        return cls(int(payload["order"]), payload["counts"], payload["alphabet"])


@click.command()
@click.argument("checkpoint", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("manifests", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--order", default=6, show_default=True, help="characters of history plus one")
def main(checkpoint: Path, manifests: tuple[Path, ...], order: int) -> None:
    """Fit a character LM on the transcripts of MANIFESTS (jsonl) and save it into CHECKPOINT."""
    tokenizer = CharTokenizer.load(checkpoint)
    texts = [tokenizer.normalize(u.heard) for path in manifests for u in iter_manifest(path)]
    CharLM.fit(texts, tokenizer.characters, order).save(checkpoint)
    click.echo(f"{checkpoint / LM_FILE}: order {order}, {len(texts)} transcripts")


if __name__ == "__main__":
    main()
