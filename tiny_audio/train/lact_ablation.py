"""Compare finished LaCT training runs (e.g. model.mixer=lact against model.mixer=attention):
dev CER/WER of each run's best checkpoint (RUN/best, what `train` returns), greedy, beam and beam
with the character LM, plus training-curve PNGs. LaCT runs are also decoded with their fast
weights frozen at their learned start (no test-time training), to show what the updates add.
With two or more runs, each later run's CER is compared with the first's by a paired bootstrap
over dev utterances (is the gap real?).

    python -m tiny_audio.train.lact_ablation RUN_DIR RUN_DIR --dev dev.jsonl --out results/
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch

from tiny_audio.audio import load_audio
from tiny_audio.data.manifest import read_manifest
from tiny_audio.evaluate.metrics import char_errors, corpus_counts
from tiny_audio.lact.model import LaCTForCTC, LaCTLayer
from tiny_audio.train.run_folder import BEST, METRICS_LOG


def read_metrics(run: Path) -> list[dict[str, Any]]:
    lines = (run / METRICS_LOG).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def run_label(config: dict[str, Any]) -> str:
    """The mixer, and for LaCT its update (orthogonalised by Muon or plain) and its scan."""
    if config["mixer"] != "lact":
        return str(config["mixer"])
    update = "Muon" if config.get("lact_muon", True) else "no Muon"
    scan = "both ways" if config.get("lact_bidirectional", False) else "one way"
    return f"lact, {update}, {scan}"


def character_errors(references: list[str], hypotheses: list[str]) -> list[int]:
    """Edit distance in characters of each hypothesis to its reference."""
    return [
        char_errors(reference, hypothesis).errors
        for reference, hypothesis in zip(references, hypotheses, strict=True)
    ]


def paired_bootstrap(
    errors_a: list[int], errors_b: list[int], lengths: list[int], samples: int = 2000, seed: int = 0
) -> dict[str, float]:
    """Corpus CER of B minus A, and its 95% interval from resampling utterances with
    replacement (both systems scored on the same resample, so per-utterance difficulty cancels)."""
    a, b, n = (np.asarray(x, dtype=np.float64) for x in (errors_a, errors_b, lengths))
    picks = np.random.default_rng(seed).integers(0, len(n), size=(samples, len(n)))
    totals = n[picks].sum(axis=1)
    differences = (b[picks].sum(axis=1) - a[picks].sum(axis=1)) / totals
    low, high = np.percentile(differences, [2.5, 97.5])
    return {
        "difference": float((b.sum() - a.sum()) / n.sum()),
        "low": float(low),
        "high": float(high),
        "b_better_share": float((differences < 0).mean()),
    }


def freeze_fast_weights(model: torch.nn.Module) -> None:
    """Zero every LaCT layer's per-token learning rate: the fast weights keep their learned
    starting values for the whole utterance."""
    for module in model.modules():
        if isinstance(module, LaCTLayer):
            module.base_lr_logit = float("-inf")  # softplus(-inf) = 0 whatever lr_proj says


def score_run(
    run: Path, dev: Path, num_beams: int, batch_size: int, lm: tuple[float, float] | None
) -> dict[str, Any]:
    """Dev CER/WER of RUN/best greedy, by beam search, and by beam search fused with its
    character LM (`lm` = weight, bonus; default the checkpoint's own) where it has one."""
    checkpoint = run / BEST
    model = LaCTForCTC.from_pretrained(checkpoint)
    rows = read_manifest(dev)
    references = [model.tokenizer.normalize(row.heard) for row in rows]
    metrics = read_metrics(run)
    best_step = min((row for row in metrics if "cer" in row), key=lambda row: row["cer"])["step"]
    result: dict[str, Any] = {
        "run": str(run),
        "checkpoint": str(checkpoint),
        "best_step": best_step,
        "mixer": run_label(model.config.to_dict()),
        "parameters": model.num_parameters(),
        "steps": max(row["step"] for row in metrics),
        "train_seconds": max((row.get("elapsed_s", 0.0) for row in metrics), default=0.0),
        "dev_utterances": len(rows),
    }
    weight, bonus = lm or (model.config.lm_weight, model.config.lm_bonus)
    decodings = {"beam1": (1, 0.0), f"beam{num_beams}": (num_beams, 0.0)}
    if model.lm is not None and weight > 0:
        decodings[f"beam{num_beams}+lm"] = (num_beams, weight)
        result["lm"] = {"weight": weight, "bonus": bonus, "order": model.lm.order}
    waveforms = [load_audio(row.audio) for row in rows]
    clips = model.clip_logits(waveforms, batch_size=batch_size)
    model.config.lm_bonus = bonus
    decoded = {}
    for name, (beams, lm_weight) in decodings.items():
        model.config.lm_weight = lm_weight
        decoded[name] = model.decode_clips(clips, beams)
    if model.config.mixer == "lact":
        freeze_fast_weights(model)
        decoded["beam1-frozen"] = model.decode_clips(model.clip_logits(waveforms, batch_size), 1)
    for name, hypotheses in decoded.items():
        pairs = list(zip(references, hypotheses, strict=True))
        result[name] = {
            "cer": corpus_counts(pairs, "char").rate,
            "wer": corpus_counts(pairs).rate,
            "examples": [
                {"ref": r, "hyp": h} for r, h in list(zip(references, hypotheses, strict=True))[:3]
            ],
            "char_errors": character_errors(references, hypotheses),
        }
    result["reference_chars"] = [len(reference) for reference in references]
    return result


def compare_runs(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every later run against the first, for each decoding both have: CER difference (later
    minus first) with its paired-bootstrap 95% interval."""
    first, comparisons = results[0], []
    for other in results[1:]:
        for name in (key for key in first if key.startswith("beam") and key in other):
            interval = paired_bootstrap(
                first[name]["char_errors"], other[name]["char_errors"], first["reference_chars"]
            )
            comparisons.append(
                {"a": Path(first["run"]).name, "b": Path(other["run"]).name, "decoding": name}
                | interval
            )
    return comparisons


def plot_curves(runs: list[Path], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (loss_axis, cer_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        metrics = read_metrics(run)
        label = run_label(json.loads((run / BEST / "config.json").read_text()))
        train = [row for row in metrics if "loss" in row]
        dev = [row for row in metrics if "cer" in row]
        loss_axis.plot([r["step"] for r in train], [r["loss"] for r in train], label=label)
        cer_axis.plot([r["step"] for r in dev], [r["cer"] for r in dev], marker="o", label=label)
    loss_axis.set(xlabel="step", ylabel="train CTC loss", yscale="log", title="training loss")
    cer_axis.set(xlabel="step", ylabel="dev CER (greedy)", title="validation CER", ylim=(0, None))
    for axis in (loss_axis, cer_axis):
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(png, dpi=120)


@click.command()
@click.argument(
    "runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--dev",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Dev manifest (JSONL).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write lact_ablation.json and lact_ablation_curves.png.",
)
@click.option("--num-beams", default=4, show_default=True)
@click.option("--batch-size", default=16, show_default=True)
@click.option(
    "--lm",
    type=(float, float),
    default=None,
    help="Character-LM weight and per-character bonus for the fused beam (default: each "
    "checkpoint's own config; `python -m tiny_audio.lact.lm` adds an LM to older checkpoints).",
)
def main(
    runs: tuple[Path, ...],
    dev: Path,
    out: Path,
    num_beams: int,
    batch_size: int,
    lm: tuple[float, float] | None,
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    results = [score_run(run, dev, num_beams, batch_size, lm) for run in runs]
    comparisons = compare_runs(results)
    report = {"runs": results, "comparisons": comparisons}
    (out / "lact_ablation.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_curves(list(runs), out / "lact_ablation_curves.png")
    width = max(len(result["mixer"]) for result in results)
    for result in results:
        scores = "  ".join(
            f"{name}: CER {result[name]['cer']:.3f} WER {result[name]['wer']:.3f}"
            for name in result
            if name.startswith("beam")
        )
        click.echo(
            f"{result['mixer']:>{width}} ({result['parameters']:,} params, {result['steps']} steps, {result['train_seconds'] / 60:.1f} min): {scores}"
        )
    for c in comparisons:
        click.echo(
            f"{c['decoding']}: CER {c['b']} - {c['a']} = {c['difference']:+.4f} "
            f"(95% interval {c['low']:+.4f} .. {c['high']:+.4f}; {c['b']} better in "
            f"{c['b_better_share']:.0%} of resamples)"
        )


if __name__ == "__main__":
    main()
