"""Each `ta analysis` subcommand on small predictions files written the way `ta eval` writes
them, producing its Markdown, JSON and PNG files with the right figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tiny_audio.cli import cli
from tiny_audio.data.manifest import Utterance
from tiny_audio.evaluate.runner import score, summarize, write_run

# (id, slice, duration s, reference, hypothesis of model A, hypothesis of model B)
ITEMS = [
    ("u1", "news", 1.5, "John Smith flew to Paris.", "john smith flew to paris", "john smith flew to paris"),
    ("u2", "news", 3.0, "Microsoft paid twenty five dollars.", "microsoft paid $25", "micro soft paid 20 dollars"),
    ("u3", "cmd", 1.0, "go forward", "go forward", "go forward ten times now"),
    ("u4", "cmd", 6.0, "turn left at the red door and stop", "turn left at the bed door", "turn left at the red door and stop"),
    ("u5", "cmd", 0.8, "stop", "top", "stop"),
]  # fmt: skip
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write(directory: Path, model: str, column: int, failed: str | None = None) -> Path:
    """A run of one model's hypotheses; the item with id `failed` (every item for "*") failed."""
    predictions = []
    for item in ITEMS:
        utterance = Utterance(item[0], "unused", item[3], source=item[1])
        error = "AudioError: broken" if failed == "*" or item[0] == failed else None
        predictions.append(
            score(utterance, str(item[column]) if error is None else "", item[2], 0.1, error)
        )
    run = directory / model / "set"
    write_run(run, predictions, {"model": model, "dataset": "set", **summarize(predictions)})
    return run


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, Path]:
    return _write(tmp_path / "eval", "model-a", 4), _write(
        tmp_path / "eval", "model-b", 5, failed="u5"
    )


def _invoke(*arguments: str) -> str:
    result = CliRunner().invoke(cli, ["analysis", *arguments])
    assert result.exit_code == 0, result.output
    return result.output


def _is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC


def test_high_wer_lists_utterances_at_or_over_threshold(runs: tuple[Path, Path]) -> None:
    run_a, _ = runs
    output = _invoke("high-wer", str(run_a), "--threshold", "30")
    # the findings on the terminal, not only the report's path
    assert output.splitlines()[1:] == [
        "  2 of 5 scored utterances have WER ≥ 30%; 0 failed.",
        "  u5 (100.00%): 'stop' -> 'top'",
        "  u4 (37.50%): 'turn left at the red door and stop' -> 'turn left at the bed door'",
    ]
    report = json.loads((run_a / "analysis" / "high_wer.json").read_text())
    # u5 "stop"->"top": 100%; u4 loses "red"->"bed" plus "and stop": 3/9 = 33%; the rest lower
    assert [item["id"] for item in report["items"]] == ["u5", "u4"]
    assert report["above_threshold"] == 2 and report["scored"] == 5
    markdown = (run_a / "analysis" / "high_wer.md").read_text()
    assert "| u5 | cmd | 100.00 | stop | top |" in markdown
    assert _is_png(run_a / "analysis" / "high_wer_histogram.png")


def test_high_wer_reports_failed_items_and_every_run_below_a_folder(
    runs: tuple[Path, Path],
) -> None:
    run_a, run_b = runs
    output = _invoke("high-wer", str(run_a.parent.parent), "--threshold", "50")
    assert "model-a on set" in output and "model-b on set" in output
    report = json.loads((run_b / "analysis" / "high_wer.json").read_text())
    assert report["failed"] == [{"id": "u5", "error": "AudioError: broken"}]
    # u3 "go forward" -> "go forward 10 times now": 3 insertions over 2 words
    assert [item["id"] for item in report["items"]] == ["u3", "u2"]


def test_compare_gives_corpus_wer_insertions_and_buckets(
    runs: tuple[Path, Path], tmp_path: Path
) -> None:
    run_a, run_b = runs
    out = tmp_path / "cmp"
    output = _invoke("compare", str(run_a), str(run_b), "-o", str(out))
    assert "  model-a on set: WER 21.05% (sub 10.53, ins 0.00, del 10.53; n=5)" in output
    data = json.loads((out / "compare.json").read_text())["runs"]
    a, b = data["model-a on set"], data["model-b on set"]
    # model A: u4 red->bed, "and" and "stop" deleted (3 errors), u5 stop->top (1): 4 errors over
    # 5 + 3 ("microsoft paid $25") + 2 + 8 + 1 = 19 normalized reference words
    assert a["overall"]["wer"] == pytest.approx(4 / 19)
    assert a["overall"]["insertion_rate"] == 0.0
    # model B (u5 failed, 18 words scored): "micro soft paid $20" inserts one word in u2 and
    # "go forward 10 times now" three in u3
    assert b["overall"]["failed"] == 1 and b["overall"]["n"] == 4
    assert b["overall"]["insertion_rate"] == pytest.approx(4 / 18)
    assert set(a["by_slice"]) == {"news", "cmd"}
    assert a["by_slice"]["news"]["wer"] == 0.0
    assert a["by_reference_length"]["1-3"]["n"] == 3  # u2 (3 normalized words), u3 (2), u5 (1)
    assert a["by_duration"]["<2 s"]["n"] == 3 and a["by_duration"]["5-10 s"]["n"] == 1
    for name in ("wer_by_length.png", "wer_by_duration.png", "error_types.png"):
        assert _is_png(out / name)
    markdown = (out / "compare.md").read_text()
    assert "| model-a on set | 5 | 0 | 21.05 |" in markdown and "## WER per slice" in markdown


def test_errors_counts_substitution_pairs_insertions_and_deletions(runs: tuple[Path, Path]) -> None:
    _, run_b = runs
    output = _invoke("errors", str(run_b), "--top", "5")
    assert "  substituted: microsoft -> soft ×1, $25 -> $20 ×1" in output
    assert "  deleted: none" in output
    data = json.loads((run_b / "analysis" / "errors.json").read_text())
    assert {"ref": "$25", "hyp": "$20", "count": 1} in data["substitutions"]
    inserted = {item["word"]: item["count"] for item in data["insertions"]}
    assert set(inserted) == {"micro", "10", "times", "now"}
    assert data["totals"]["insertions"] == 4 and data["totals"]["deletions"] == 0
    assert _is_png(run_b / "analysis" / "error_types.png")
    assert _is_png(run_b / "analysis" / "top_substitutions.png")


def test_errors_headline_says_one_error_of_a_kind_in_the_singular(tmp_path: Path) -> None:
    predictions = [score(Utterance("u1", "unused", "stop here"), "top", 1.0, 0.1, None)]
    run = tmp_path / "eval" / "model" / "set"
    write_run(run, predictions, {"model": "model", "dataset": "set", **summarize(predictions)})
    assert _invoke("errors", str(run)).splitlines()[1] == (
        "  1 substitution, 0 insertions and 1 deletion over 2 reference words (WER 100.00%)."
    )


def test_entity_errors_find_missed_names_and_numbers(runs: tuple[Path, Path]) -> None:
    _, run_b = runs
    _invoke("entity-errors", str(run_b))
    data = json.loads((run_b / "analysis" / "entity_errors.json").read_text())
    missed = {miss["entity"] for miss in data["misses"]}
    # model B wrote "micro soft" and "20 dollars": the ORG and the MONEY are missed, while the
    # names and the place it got right are found and not missed
    assert "Microsoft" in missed
    assert any("twenty five" in entity for entity in missed)
    assert not missed & {"John Smith", "Paris"}
    assert data["entities"] >= 4 and data["numbers"]["missed"] >= 1
    assert _is_png(run_b / "analysis" / "entity_miss_rate.png")
    assert (
        "# Entity errors: model-b on set" in (run_b / "analysis" / "entity_errors.md").read_text()
    )


def test_analysis_without_predictions_is_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["analysis", "errors", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: {tmp_path}: no predictions.jsonl here or below (run `ta eval` first)"
    ]


def test_run_can_be_named_by_model_in_default_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _write(Path("outputs/eval"), "whisper-tiny.en", 4)
    output = _invoke("compare", "whisper:tiny.en")
    assert "compared 1 runs" in output
    assert (tmp_path / "outputs/eval/whisper-tiny.en/set/comparison/compare.md").is_file()


def test_compare_ranks_only_runs_that_scored_every_item(
    runs: tuple[Path, Path], tmp_path: Path
) -> None:
    run_a, run_b = runs
    run_c = _write(tmp_path / "eval", "model-c", 4, failed="*")  # every item failed
    run_d = _write(tmp_path / "eval", "model-d", 5)  # stopped part way (Ctrl-C, full disk)
    metrics = json.loads((run_d / "metrics.json").read_text())
    (run_d / "metrics.json").write_text(json.dumps({**metrics, "complete": False}))
    out = tmp_path / "cmp"
    output = _invoke("compare", *map(str, (run_a, run_b, run_c, run_d)), "-o", str(out))
    # Before: model C's WER read 0.00, the best of all.
    data = json.loads((out / "compare.json").read_text())
    assert data["runs"]["model-c on set"]["overall"]["wer"] is None
    assert data["ranking"] == ["model-a on set"]
    why = {
        "model-b on set": "1 of 5 items failed and are not in its WER",
        "model-c on set": "nothing scored (5 items failed)",
        "model-d on set": "interrupted: its WER covers only the items it reached",
    }
    assert data["not_ranked"] == why
    assert [line for line in output.splitlines() if not line.startswith(("compared", "  "))] == [
        "best WER: model-a on set"
    ] + [f"not ranked: {name}: {reason}" for name, reason in why.items()]
    markdown = (out / "compare.md").read_text()
    assert "| model-c on set | 0 | 5 | — |" in markdown
    assert "1. model-a on set: 21.05%" in markdown
