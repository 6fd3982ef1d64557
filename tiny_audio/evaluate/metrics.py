"""Error counts and rates the way the field reports them.

WER and CER are corpus rates: edits summed over all utterances divided by the summed reference
length (not a mean of per-utterance rates, which lets short clips dominate). Alignment is
jiwer's minimum-edit alignment. RTFx is audio seconds per second of transcription.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Literal

import jiwer

Operation = Literal["equal", "substitute", "insert", "delete"]


@dataclass(frozen=True)
class ErrorCounts:
    hits: int = 0
    substitutions: int = 0
    insertions: int = 0
    deletions: int = 0

    @property
    def reference_length(self) -> int:
        return self.hits + self.substitutions + self.deletions

    @property
    def errors(self) -> int:
        return self.substitutions + self.insertions + self.deletions

    @property
    def rate(self) -> float:
        """Errors per reference unit. An empty reference counts as length one, so a
        hypothesis of k words for silence scores k, and silence heard as silence scores 0."""
        return self.errors / max(self.reference_length, 1)

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(
            self.hits + other.hits,
            self.substitutions + other.substitutions,
            self.insertions + other.insertions,
            self.deletions + other.deletions,
        )

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def word_errors(reference: str, hypothesis: str) -> ErrorCounts:
    """Word-level edit counts between two (already normalized) texts."""
    ref, hyp = reference.split(), hypothesis.split()
    if not ref or not hyp:  # jiwer rejects an empty reference; the counts here are obvious
        return ErrorCounts(insertions=len(hyp), deletions=len(ref))
    return _counts(jiwer.process_words(" ".join(ref), " ".join(hyp)))


def char_errors(reference: str, hypothesis: str) -> ErrorCounts:
    """Character-level edit counts; words are joined by single spaces, which count as characters."""
    ref, hyp = " ".join(reference.split()), " ".join(hypothesis.split())
    if not ref or not hyp:
        return ErrorCounts(insertions=len(hyp), deletions=len(ref))
    return _counts(jiwer.process_characters(ref, hyp))


def _counts(output: jiwer.WordOutput | jiwer.CharacterOutput) -> ErrorCounts:
    return ErrorCounts(output.hits, output.substitutions, output.insertions, output.deletions)


def corpus_counts(pairs: Iterable[tuple[str, str]], unit: str = "word") -> ErrorCounts:
    """Summed edit counts over (reference, hypothesis) pairs; unit is "word" or "char"."""
    count = word_errors if unit == "word" else char_errors
    total = ErrorCounts()
    for reference, hypothesis in pairs:
        total = total + count(reference, hypothesis)
    return total


def align_words(reference: str, hypothesis: str) -> list[tuple[Operation, str, str]]:
    """The word alignment as (operation, reference word, hypothesis word); the missing side of
    an insertion or deletion is "". Substitutions pair words in order within each edit run."""
    ref_words, hyp_words = reference.split(), hypothesis.split()
    if not ref_words or not hyp_words:
        return [("delete", word, "") for word in ref_words] + [
            ("insert", "", word) for word in hyp_words
        ]
    output = jiwer.process_words(reference, hypothesis)
    steps: list[tuple[Operation, str, str]] = []
    for chunk in output.alignments[0]:
        refs = ref_words[chunk.ref_start_idx : chunk.ref_end_idx]
        hyps = hyp_words[chunk.hyp_start_idx : chunk.hyp_end_idx]
        if chunk.type == "insert":
            steps += [("insert", "", word) for word in hyps]
        elif chunk.type == "delete":
            steps += [("delete", word, "") for word in refs]
        else:
            operation: Operation = "equal" if chunk.type == "equal" else "substitute"
            steps += [(operation, ref, hyp) for ref, hyp in zip(refs, hyps, strict=True)]
    return steps


def rtfx(audio_seconds: float, transcription_seconds: float) -> float:
    """Inverse real-time factor: how many seconds of audio one second of compute transcribes."""
    return audio_seconds / transcription_seconds if transcription_seconds > 0 else 0.0
