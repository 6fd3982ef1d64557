"""Command-line faces of evaluation: `ta eval`, `ta analysis ...` and `ta bench`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console

from tiny_audio.errors import UserError
from tiny_audio.evaluate.runner import DEFAULT_OUTPUT_DIR
from tiny_audio.recognizer import fp32_option

if TYPE_CHECKING:
    from tiny_audio.evaluate.analysis import Report, Run


@click.command("eval")
@click.option(
    "-m",
    "--model",
    "models",
    multiple=True,
    required=True,
    help="tiny-audio dir, zoo name or Hub id; or a peer: whisper:tiny.en, whisper:base, "
    "pocketsphinx, assemblyai, deepgram. Repeat to compare.",
)
@click.option(
    "-d",
    "--datasets",
    "--dataset",
    "datasets",
    multiple=True,
    default=("real",),
    show_default=True,
    help="A data source name (real, real:SLICE, a manifest, a folder, "
    "a Hub dataset name). Repeat to compare.",
)
@click.option("-n", "--max-samples", type=click.IntRange(min=1), help="Utterances per dataset.")
@click.option("--split", default="test", show_default=True)
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(path_type=Path),
    default=DEFAULT_OUTPUT_DIR,
    show_default=True,
    help="Writes OUTPUT_DIR/<model>/<dataset>/{predictions.jsonl,metrics.json}.",
)
@click.option(
    "-w",
    "--num-workers",
    "workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Threads decoding audio ahead of the model.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--num-beams", type=click.IntRange(min=1), default=1, show_default=True)
@fp32_option
def eval_command(
    models: tuple[str, ...],
    datasets: tuple[str, ...],
    max_samples: int | None,
    split: str,
    output_dir: Path,
    workers: int,
    batch_size: int,
    num_beams: int,
    fp32: bool,
) -> None:
    """Score models on datasets (WER/CER with Whisper's English normalizer, RTFx)."""
    from tiny_audio.evaluate.runner import comparison_table, run_eval, write_summary

    results = run_eval(
        list(models),
        list(datasets),
        output_dir=output_dir,
        split=split,
        max_samples=max_samples,
        batch_size=batch_size,
        num_beams=num_beams,
        workers=workers,
        fp32=fp32,
        console=Console(stderr=True),
    )
    # Piped to a file or a CI log, Rich would assume 80 columns and fold the figures.
    Console(width=None if sys.stdout.isatty() else 120).print(comparison_table(results))
    summary = write_summary(output_dir, results)
    click.echo(f"predictions and metrics: {output_dir}; this eval's summary: {summary}")
    unscored = []
    for result in results:
        run, failed, n = f"{result['model']} on {result['dataset']}", result["failed"], result["n"]
        if not result["scored"]:
            why = f"all {n} items failed ({result['most_common_error']})" if n else "no utterances"
            unscored.append(f"{run}: {why}")
        elif failed:
            click.echo(
                f"warning: {failed} of {n} items of {run} failed and are not in its WER "
                f"(most often {result['most_common_error']})",
                err=True,
            )
    if unscored:
        raise UserError(f"nothing was scored for {'; '.join(unscored)}")


@click.group("analysis")
def analysis() -> None:
    """Look inside eval runs: worst utterances, comparisons, entity and word errors."""


_runs_argument = click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
_output_option = click.option(
    "-o",
    "--output-dir",
    type=click.Path(path_type=Path),
    help="Where reports go (default: RUN/analysis, or <common parent>/comparison).",
)


def _print_report(title: str, report: Report) -> None:
    """Where the report is, then its main findings, indented."""
    click.echo(f"{title}: {report.path}")
    for finding in report.findings:
        click.echo(f"  {finding}")


def _each_run(
    runs: tuple[Path, ...], output_dir: Path | None, analyse: Callable[[Run, Path], Report]
) -> None:
    """Analyse each run into OUTPUT_DIR (one subfolder per run when several) or RUN/analysis."""
    from tiny_audio.evaluate.analysis import load_runs

    loaded = load_runs(runs)
    for index, run in enumerate(loaded):
        if output_dir is None:
            out_dir = run.directory / "analysis"
        else:
            out_dir = (
                output_dir / f"{index:02d}-{run.directory.parent.name}-{run.directory.name}"
                if len(loaded) > 1
                else output_dir
            )
        _print_report(run.name, analyse(run, out_dir))


@analysis.command("high-wer")
@_runs_argument
@click.option("--threshold", type=float, default=30.0, show_default=True, help="WER percent.")
@_output_option
def high_wer_command(runs: tuple[Path, ...], threshold: float, output_dir: Path | None) -> None:
    """List utterances with WER at or above a threshold."""
    from tiny_audio.evaluate.analysis import high_wer

    _each_run(runs, output_dir, lambda run, out: high_wer(run, out, threshold))


@analysis.command("compare")
@_runs_argument
@_output_option
def compare_command(runs: tuple[Path, ...], output_dir: Path | None) -> None:
    """Compare runs: WER, insertion rate, WER by length, duration and slice."""
    import os

    from tiny_audio.evaluate.analysis import compare, load_runs, rank

    loaded = load_runs(runs)
    default = Path(os.path.commonpath([run.directory.resolve() for run in loaded])) / "comparison"
    _print_report(f"compared {len(loaded)} runs", compare(loaded, output_dir or default))
    ranking, unranked = rank(loaded)
    if ranking:
        click.echo(f"best WER: {ranking[0]}")
    for name, why in unranked.items():
        click.echo(f"not ranked: {name}: {why}")


@analysis.command("entity-errors")
@_runs_argument
@_output_option
def entity_errors_command(runs: tuple[Path, ...], output_dir: Path | None) -> None:
    """Named entities and numbers in references that hypotheses miss."""
    from tiny_audio.evaluate.analysis import entity_errors

    _each_run(runs, output_dir, entity_errors)


@analysis.command("errors")
@_runs_argument
@click.option("--top", type=click.IntRange(min=1), default=20, show_default=True)
@_output_option
def errors_command(runs: tuple[Path, ...], top: int, output_dir: Path | None) -> None:
    """Top substitution pairs, inserted words and deleted words."""
    from tiny_audio.evaluate.analysis import errors

    _each_run(runs, output_dir, lambda run, out: errors(run, out, top))


@click.command("bench")
@click.option("-m", "--model", default="default", show_default=True, help="The tiny-audio model.")
@click.option(
    "--peer", help="The system to compare with (default: faster-whisper with the model's encoder)."
)
@click.option("-d", "--dataset", default="real", show_default=True)
@click.option("--split", default="test", show_default=True)
@click.option("-n", "--max-samples", type=click.IntRange(min=1), default=40, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=2), default=8, show_default=True)
@click.option("--num-beams", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=2, show_default=True)
@fp32_option
@click.option(
    "--benchmarks",
    type=click.Path(path_type=Path),
    default=Path("BENCHMARKS.md"),
    show_default=True,
    help="Markdown file the figures are appended to.",
)
@click.option("--note", default="", help="A line to keep with the figures (what this model is).")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=Path("outputs/bench/bench.json"),
    show_default=True,
    help="JSON with every figure.",
)
def bench_command(
    model: str,
    peer: str | None,
    dataset: str,
    split: str,
    max_samples: int,
    batch_size: int,
    num_beams: int,
    threads: int,
    fp32: bool,
    benchmarks: Path,
    note: str,
    output: Path,
) -> None:
    """RTFx (batch 1 and batched), first-token latency and peak RSS: tiny-audio vs faster-whisper."""
    import json
    import shlex

    from tiny_audio.evaluate import bench
    from tiny_audio.evaluate.runner import machine_description

    peer = peer or bench.peer_for(model)
    clips = bench.load_clips(dataset, split, max_samples)
    settings = bench.BenchSettings(
        batch_size=batch_size, num_beams=num_beams, threads=threads, fp32=fp32
    )
    result = bench.run_bench(model, peer, clips, settings, progress=Console(stderr=True).print)
    # The full command with every setting, so the figures can be reproduced as they were made.
    flags = {"-m": model, "--peer": peer, "-d": dataset, "--split": split, "-n": max_samples}
    flags |= {"--batch-size": batch_size, "--num-beams": num_beams, "--threads": threads}
    command = " ".join(["ta bench", *(f"{k} {shlex.quote(str(v))}" for k, v in flags.items())])
    command += " --fp32" if fp32 else ""
    block = bench.markdown_block(result, command, machine_description(), note)
    bench.append_to_benchmarks(benchmarks, block)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    click.echo(block)
    click.echo(f"appended to {benchmarks}; all figures in {output}")
