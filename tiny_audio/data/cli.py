"""`ta data`: build corpora (synth, real, games), filter them and inspect them (stats, sources)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from tiny_audio.counts import counted
from tiny_audio.data.filter import DEFAULT_MAX_WER, DEFAULT_PEER
from tiny_audio.data.sources import data_home
from tiny_audio.data.texts import TEXT_POOLS

# --out of the commands that make new clips from a source's (data.manifest.clips_folder).
clips_manifest_option = click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Manifest to write; the clips go in a folder beside it named after it.",
)


@click.group()
def data() -> None:
    """Build and inspect speech corpora."""


@data.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Corpus folder; rerunning on it continues the build.",
)
@click.option(
    "--hours", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True
)
@click.option(
    "--voices",
    help="Comma-separated voice names (default: those `ta data voices` marks); `kokoro-en` "
    "stands for the screened native English Kokoro voices.",
)
@click.option(
    "--mixes",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="Add N new speakers kokoro-mix-0..N-1, each a random mix of 2-3 kokoro-en voices "
    "of one accent.",
)
@click.option(
    "--held-out",
    help="Comma-separated voices heard only in test.",
    default=None,
    show_default="flite-rms",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--texts",
    type=click.Choice(list(TEXT_POOLS)),
    default="sentences",
    show_default=True,
    help="What the voices say: sentences, or isolated words and short names of things.",
)
@click.option(
    "--workers", type=click.IntRange(min=1), help="Parallel processes (default: CPU count)."
)
def synth(
    out: Path,
    hours: float,
    voices: str | None,
    mixes: int,
    held_out: str | None,
    seed: int,
    texts: str,
    workers: int | None,
) -> None:
    """Synthesize an English corpus (train/dev/test FLAC + manifests) with offline TTS voices."""
    from tiny_audio.data.synth import DEFAULT_HELD_OUT, DEFAULT_VOICES, SynthConfig, build_corpus
    from tiny_audio.data.voices import expand_voices

    config = SynthConfig(
        hours=hours,
        voices=expand_voices(_names(voices) or DEFAULT_VOICES, mixes),
        held_out=expand_voices(_names(held_out) or DEFAULT_HELD_OUT),
        seed=seed,
        texts=texts,
    )
    summary = build_corpus(out, config, workers)
    for split, figures in summary["splits"].items():
        click.echo(
            f"{split}: {counted(figures['utterances'], 'utterance')}, {figures['hours']:.3f} h"
            + (f", {figures['failed']} failed" if figures["failed"] else "")
        )
    click.echo(f"{out} ({summary['wall_seconds']} s; settings in {out / 'synth.json'})")


@data.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder (default: $TINY_AUDIO_HOME/data/real).",
)
@click.option("--slices", help="Comma-separated slices (default: all).")
def real(out: Path | None, slices: str | None) -> None:
    """Build the real-speech slices from Debian packages (apt-get download, no root needed)."""
    from tiny_audio.data.real import build_real

    out = out or data_home() / "real"
    summary = build_real(out, _names(slices) or None)
    (out / "real.json").write_text(json.dumps(summary, indent=2) + "\n")
    for name, figures in summary.items():
        click.echo(f"{name}: {counted(figures['utterances'], 'utterance')}, {figures['seconds']} s")
    click.echo(f"{out}")


@data.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder (default: $TINY_AUDIO_HOME/data/games, where `-d games` looks).",
)
@click.option("--games", "names", help="Comma-separated games (default: all).")
@click.option(
    "--filter-peer",
    default=DEFAULT_PEER,
    show_default=True,
    help="Peer that checks each clip's text (see `ta data filter`); 'none' keeps every pair.",
)
@click.option("--max-wer", type=click.FloatRange(min=0), default=DEFAULT_MAX_WER, show_default=True)
@click.option(
    "--filter-splits",
    default="dev,test",
    show_default=True,
    help="Splits the peer checks; others keep every pair (checking train, 9,000 clips, takes "
    "hours on a 2-core CPU: every clip is a 30 s Whisper window).",
)
def games(
    out: Path | None, names: str | None, filter_peer: str, max_wer: float, filter_splits: str
) -> None:
    """Recorded speech for training: voice-acted English lines of three Debian games, split
    train/dev/test by voice (rerunning continues a build, and a filter where it stopped)."""
    from tiny_audio.data.games.build import UNFILTERED, build_games
    from tiny_audio.data.manifest import read_manifest, write_manifest

    out = out or data_home() / "games"
    summary = build_games(out, _names(names) or None)
    for name, figures in summary.items():
        for split, counts in figures["splits"].items():
            unfiltered = out / name / UNFILTERED.format(split=split)
            if filter_peer == "none" or split not in _names(filter_splits):
                write_manifest(out / name / f"{split}.jsonl", read_manifest(unfiltered))
            else:
                counts["filtered"] = _filter(
                    unfiltered, out / name / f"{split}.jsonl", filter_peer, max_wer
                )
            click.echo(
                f"{name} {split}: {counted(counts['utterances'], 'clip')}, {counts['hours']} h, "
                f"{counted(counts['speakers'], 'speaker')}"
                + (f"; kept {counts['filtered']['kept']}" if "filtered" in counts else "")
            )
        (out / name / "game.json").write_text(json.dumps(figures, indent=2) + "\n")
    click.echo(f"{out}")


@data.command(name="filter")
@click.argument("manifest", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--peer", default=DEFAULT_PEER, show_default=True, help="Recognizer that checks.")
@click.option(
    "--max-wer",
    type=click.FloatRange(min=0),
    default=DEFAULT_MAX_WER,
    show_default=True,
    help="Drop a clip whose peer WER against its text is above this.",
)
def filter_command(manifest: Path, out: Path, peer: str, max_wer: float) -> None:
    """Keep the clips whose text a peer recognizer confirms; the rest go to OUT.dropped.jsonl."""
    counts = _filter(manifest, out, peer, max_wer)
    click.echo(
        f"kept {counts['kept']} ({counts['kept_hours']} h), dropped {counts['dropped']}: {out}"
    )


def _filter(manifest: Path, out: Path, peer: str, max_wer: float) -> dict:
    from rich.progress import Progress

    from tiny_audio.data.filter import filter_manifest
    from tiny_audio.data.manifest import read_manifest

    with Progress(transient=True) as progress:
        task = progress.add_task(
            f"{peer} checks {manifest.name}", total=len(read_manifest(manifest))
        )
        return filter_manifest(
            manifest,
            out,
            peer=peer,
            max_wer=max_wer,
            on_item=lambda count: progress.advance(task, count),
        )


@data.command()
@click.argument("source")
@click.option("--split", default="train", show_default=True, help="Split of SOURCE.")
@clips_manifest_option
@click.option("--count", type=click.IntRange(min=1), required=True, help="Joined clips to make.")
@click.option("--max-seconds", type=click.FloatRange(min=1.0), default=25.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def join(source: str, split: str, out: Path, count: int, max_seconds: float, seed: int) -> None:
    """Longer clips of 2-4 clips of SOURCE (a manifest or named source) each, with short pauses:
    training on them teaches a model to transcribe a whole window, not its first sentence."""
    from tiny_audio.data.join import join_clips
    from tiny_audio.data.sources import load_source

    joined = join_clips(load_source(source, split), out, count, max_seconds, seed)
    hours = sum(u.duration or 0.0 for u in joined) / 3600
    click.echo(f"{len(joined)} joined clips, {hours:.2f} h: {out}")


@data.command()
@click.argument("source")
@click.option("--split", default="dev", show_default=True, help="Split of SOURCE.")
@clips_manifest_option
@click.option("--channels", help="Comma-separated channels (default: all, in turn).")
@click.option("--seed", type=int, default=0, show_default=True)
def channel(source: str, split: str, out: Path, channels: str | None, seed: int) -> None:
    """A copy of SOURCE (a manifest or named source) heard through phone lines (G.711, GSM),
    low-bitrate MP3 and Opus, and an 11 kHz recording, one channel a clip: its slices are the
    channels, so `ta eval` on it gives WER per channel."""
    from tiny_audio.data.augment import CHANNELS
    from tiny_audio.data.channel import through_channels
    from tiny_audio.data.sources import load_source

    chosen = _names(channels) or tuple(CHANNELS)
    written = through_channels(load_source(source, split), out, chosen, seed)
    click.echo(f"{counted(len(written), 'clip')} through {', '.join(chosen)}: {out}")


@data.command()
@click.argument("source")
@click.option(
    "--split", default="test", show_default=True, help="Split, for sources that have them."
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to write SOURCE-stats.json and the histogram (default: the manifest's folder).",
)
@click.option(
    "--check-audio", is_flag=True, help="Decode every file; report and skip unreadable ones."
)
def stats(source: str, split: str, out: Path | None, check_audio: bool) -> None:
    """Hours, utterances, speakers and a duration histogram of a manifest or named source."""
    from tiny_audio.data.sources import load_source
    from tiny_audio.data.stats import corpus_stats, duration_histogram

    figures = corpus_stats(load_source(source, split=split), check_audio=check_audio)
    path = Path(source)
    out = out or (path.parent if path.is_file() else path if path.is_dir() else Path.cwd())
    out.mkdir(parents=True, exist_ok=True)
    stem = path.stem if path.is_file() else Path(source.replace(":", "-")).name + f"-{split}"
    durations = figures.pop("durations")
    histogram = duration_histogram(
        durations, out / f"{stem}-durations.png", f"{stem} ({figures['hours']:.2f} h)"
    )
    figures["histogram"] = str(histogram)
    figures["date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    (out / f"{stem}-stats.json").write_text(json.dumps(figures, indent=2) + "\n")
    click.echo(
        f"{figures['hours']:.3f} h, {counted(figures['utterances'], 'utterance')}, "
        f"{counted(figures['speakers'], 'speaker')}"
        + (f", {len(figures['unreadable'])} unreadable" if figures["unreadable"] else "")
    )
    for name, count in figures["per_source"].items():
        click.echo(f"  {name}: {count}")
    click.echo(f"{out / f'{stem}-stats.json'}, {histogram}")


@data.command()
def voices() -> None:
    """List the TTS voices `ta data synth` can use; * marks its default set."""
    from tiny_audio.data.voices import DEFAULT_VOICES, KOKORO_MIX_PREFIX, VOICE_GROUPS, VOICES

    for name, voice in VOICES.items():
        mark = "*" if name in DEFAULT_VOICES else " "
        click.echo(f"{mark} {name:20s} {voice.engine} {voice.model}")
    for group, members in VOICE_GROUPS.items():
        click.echo(f"  {group:20s} group of {len(members)}: {', '.join(members)}")
    mix = f"{KOKORO_MIX_PREFIX}SEED"
    click.echo(f"  {mix:20s} kokoro-en 2-3 kokoro-en voices of one accent, mixed by SEED")


@data.command()
def sources() -> None:
    """List the named data sources and the Hub datasets behind them."""
    from tiny_audio.data.sources import HUB_DATASETS, NAMED

    click.echo(f"local: {', '.join(NAMED)}, a manifest (.jsonl), or a folder")
    for name, splits in HUB_DATASETS.items():
        where = ", ".join(
            f"{ours}={h.repo}{f'[{h.config}]' if h.config else ''}:{h.split}"
            for ours, h in splits.items()
        )
        click.echo(f"{name}: {where}")


def _names(value: str | None) -> tuple[str, ...]:
    return tuple(name.strip() for name in (value or "").split(",") if name.strip())
