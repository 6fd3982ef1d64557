"""`ta data filter`: keep the clips whose transcript a peer recognizer confirms.

Found speech comes with text that is sometimes not what was said (grunts written as words,
ad-libs, a line recorded differently). A peer (`whisper:base` by default) transcribes each clip;
a clip whose peer WER against its text is above the threshold is dropped, with the peer's
words recorded beside it. Scores are appended as they come, keyed by the clip's audio content,
so a killed run continues and a rebuilt clip is scored again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tiny_audio.data.manifest import Utterance, content_key, read_manifest, write_manifest

DEFAULT_PEER = "whisper:base"
DEFAULT_MAX_WER = 0.5
CHUNK = 32  # clips scored between two appends to the score file


def filter_manifest(
    manifest: Path,
    out: Path,
    *,
    peer: str = DEFAULT_PEER,
    max_wer: float = DEFAULT_MAX_WER,
    batch_size: int = 8,
    on_item: Callable[[int], None] | None = None,
) -> dict:
    """Write `out` (kept clips) and OUT.dropped.jsonl (dropped ones with the peer's text and
    WER); returns the counts."""
    from tiny_audio.evaluate.runner import evaluate
    from tiny_audio.recognizer import load_recognizer

    utterances = read_manifest(manifest)
    scores_path = out.with_name(f"{out.stem}.scores.jsonl")
    scores = _read_scores(scores_path, peer)
    todo = [u for u in utterances if content_key(u) not in scores]
    if todo:
        recognizer = load_recognizer(peer)
        with scores_path.open("a", encoding="utf-8") as file:
            for start in range(0, len(todo), CHUNK):
                chunk = todo[start : start + CHUNK]
                for utterance, prediction in zip(
                    chunk, evaluate(recognizer, chunk, batch_size=batch_size), strict=True
                ):
                    score: dict[str, Any] = {
                        "key": content_key(utterance),
                        "peer": peer,
                        "wer": prediction.wer,
                        "hyp": prediction.hyp,
                        "error": prediction.error,
                    }
                    scores[score["key"]] = score
                    file.write(json.dumps(score, ensure_ascii=False) + "\n")
                file.flush()
                if on_item is not None:
                    on_item(len(chunk))
    kept, dropped = [], []
    for utterance in utterances:
        score = scores[content_key(utterance)]
        if score["error"] is None and score["wer"] <= max_wer:
            kept.append(utterance)
        else:
            dropped.append((utterance, score))
    write_manifest(out, kept)
    with out.with_name(f"{out.stem}.dropped.jsonl").open("w", encoding="utf-8") as file:
        for utterance, score in dropped:
            reason = score["error"] or f"{peer} WER {score['wer']:.2f} > {max_wer}"
            entry = {"id": utterance.id, "text": utterance.text, "peer_text": score["hyp"]}
            file.write(json.dumps({**entry, "reason": reason}, ensure_ascii=False) + "\n")
    return {
        "kept": len(kept),
        "dropped": len(dropped),
        "kept_hours": round(_hours(kept), 3),
        "dropped_hours": round(_hours([u for u, _ in dropped]), 3),
    }


def _read_scores(path: Path, peer: str) -> dict[str, dict[str, Any]]:
    """Scores by this peer; a line cut short by a kill is ignored (the clip is scored again)."""
    scores = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                score = json.loads(line)
            except json.JSONDecodeError:
                continue
            if score.get("peer") == peer:
                scores[score["key"]] = score
    return scores


def _hours(utterances: list[Utterance]) -> float:
    return sum(u.duration or 0.0 for u in utterances) / 3600
