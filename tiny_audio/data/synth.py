"""`ta data synth`: an English speech corpus from offline TTS voices.

The corpus is a deterministic function of its settings. Sentences go to train, dev or test by a
hash of their text, the same in every corpus (so no sentence is in two splits, even across
corpora built with different seeds); the held-out voices speak only in test.
Each split is an ordered list of jobs (sentence, voice, speed, pitch, stretch); the corpus is
the shortest prefix of that list whose audio reaches the split's share of the hours. Audio is
renamed into place when complete and its manifest line is appended only after that, in job
order, so an interrupted build is always a prefix and a rerun just continues it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from tiny_audio.data.manifest import Utterance, append_manifest, iter_manifest, write_manifest
from tiny_audio.data.texts import TEXT_POOLS, Sentence
from tiny_audio.data.voices import (
    DEFAULT_VOICES,
    KOKORO_MIX_PREFIX,
    VOICE_GROUPS,
    VOICES,
    check_installed,
    find_voice,
    is_voice,
    speak,
)
from tiny_audio.errors import UserError

logger = logging.getLogger(__name__)

SPLIT_SHARES = {"train": 0.85, "dev": 0.05, "test": 0.10}
DEFAULT_HELD_OUT = ("flite-rms",)
SETTINGS_FILE = "synth.json"
FLAC_16K_MONO = ("-r", "16000", "-c", "1", "-b", "16")
SCRATCH = ".scratch"  # engines' raw output; emptied when a build starts


@dataclass(frozen=True)
class SynthConfig:
    hours: float = 1.0
    voices: tuple[str, ...] = DEFAULT_VOICES
    held_out: tuple[str, ...] = DEFAULT_HELD_OUT
    seed: int = 0
    texts: str = "sentences"  # a TEXT_POOLS name
    speed: tuple[float, float] = (0.92, 1.08)  # sox `speed`: tempo and pitch together
    pitch_cents: float = 150.0  # sox `pitch`, uniform in +-this
    stretch: tuple[float, float] = (0.95, 1.15)  # the engine's own duration scale
    split_shares: dict[str, float] = field(default_factory=lambda: dict(SPLIT_SHARES))

    def __post_init__(self) -> None:
        unknown = [name for name in (*self.voices, *self.held_out) if not is_voice(name)]
        if unknown:
            known = ", ".join([*VOICES, *VOICE_GROUPS, f"{KOKORO_MIX_PREFIX}SEED"])
            raise UserError(f"unknown voice {', '.join(unknown)}; known: {known}")
        if not set(self.held_out) <= set(self.voices):
            raise UserError("held-out voices must be among --voices")
        if not set(self.voices) - set(self.held_out):
            raise UserError("at least one voice must remain for train")
        if self.texts not in TEXT_POOLS:
            raise UserError(f"unknown texts {self.texts}; known: {', '.join(TEXT_POOLS)}")

    def identity(self) -> dict:
        """Settings that decide what each job is; `hours` only decides how many jobs run."""
        settings = asdict(self)
        del settings["hours"]
        settings["splits"] = "by-text"  # see split_of
        return json.loads(json.dumps(settings))


@dataclass(frozen=True)
class Job:
    id: str
    split: str
    voice: str
    written: str
    spoken: str
    speed: float
    pitch_cents: float
    stretch: float


def split_of(sentence: Sentence, config: SynthConfig) -> str:
    """The split is the same for a sentence in every corpus, whatever its seed, so that no
    corpus trains on another's test sentences. (The "0:" salt is the seed-0 corpora's.)"""
    digest = hashlib.sha1(f"0:{sentence.key}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64
    for split, share in config.split_shares.items():
        if point < share:
            return split
        point -= share
    return split


def plan(config: SynthConfig, split: str) -> Iterator[Job]:
    """The ordered jobs of one split. Voices take turns in seed-shuffled rounds, so every
    voice (the held-out ones in test included) gets an even share from the first rounds on."""
    pool = TEXT_POOLS[config.texts](config.seed)
    sentences = [s for s in pool if split_of(s, config) == split]
    voices = [v for v in config.voices if split == "test" or v not in config.held_out]
    rng = random.Random(f"{config.seed}:{split}")
    turns: list[str] = []
    for index, sentence in enumerate(sentences):
        if not turns:
            turns = rng.sample(voices, len(voices))
        yield Job(
            id=f"{split}-{index:06d}",
            split=split,
            voice=turns.pop(),
            written=sentence.written,
            spoken=sentence.spoken,
            speed=round(rng.uniform(*config.speed), 3),
            pitch_cents=round(rng.uniform(-config.pitch_cents, config.pitch_cents)),
            stretch=round(rng.uniform(*config.stretch), 3),
        )


def synthesize(job: Job, out: Path) -> Utterance:
    """Speak one job into out/audio/SPLIT/ID.flac (16 kHz mono), renamed into place when done."""
    audio = out / "audio" / job.split / f"{job.id}.flac"
    audio.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out / SCRATCH) as scratch:
        raw, flac = Path(scratch) / "raw.wav", Path(scratch) / "out.flac"
        speak(find_voice(job.voice), job.spoken, raw, job.stretch)
        effects = ["speed", str(job.speed), "pitch", str(job.pitch_cents), "norm", "-1"]
        command = ["sox", str(raw), *FLAC_16K_MONO, str(flac), *effects]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"sox failed: {result.stderr.strip()[:200]}")
        duration = sf.info(str(flac)).duration
        os.replace(flac, audio)
    spoken = job.spoken if job.spoken != job.written else None
    return Utterance(
        job.id, str(audio), job.written, round(duration, 3), job.voice, "synth", spoken
    )


def add_spoken_forms(
    manifest: Path, done: dict[str, Utterance], jobs: Iterator[Job]
) -> dict[str, Utterance]:
    """Corpora built before manifests kept the spoken form get it on their next build: the plan
    is deterministic, so each finished clip's job says what it was made to say."""
    if not done or any(u.spoken for u in done.values()):
        return done
    spoken: dict[str, str] = {}
    remaining = len(done)
    for job in jobs:
        if remaining == 0:
            break
        utterance = done.get(job.id)
        if utterance is None:
            continue
        remaining -= 1
        if job.spoken != job.written and utterance.text == job.written:
            spoken[job.id] = job.spoken
    if not spoken:
        return done
    upgraded = {key: replace(u, spoken=spoken.get(key)) for key, u in done.items()}
    write_manifest(manifest, upgraded.values())
    return upgraded


def build_corpus(out: Path, config: SynthConfig, workers: int | None = None) -> dict:
    """Build (or continue) the corpus in `out`; returns and writes out/synth.json."""
    if shutil.which("sox") is None:
        raise UserError("sox is not installed (apt-get install sox)")
    check_installed(config.voices)
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, config)
    shutil.rmtree(out / SCRATCH, ignore_errors=True)  # left by a killed build
    (out / SCRATCH).mkdir()
    workers = workers or os.cpu_count() or 1
    summary: dict = {"settings": config.identity(), "hours_requested": config.hours, "splits": {}}
    started = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        for split, share in config.split_shares.items():
            summary["splits"][split] = _build_split(
                out, config, split, share * config.hours * 3600, pool, workers
            )
    summary["wall_seconds"] = round(time.perf_counter() - started, 1)
    summary["workers"] = workers
    (out / SETTINGS_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _build_split(
    out: Path,
    config: SynthConfig,
    split: str,
    target: float,
    pool: ProcessPoolExecutor,
    workers: int,
) -> dict:
    manifest = out / f"{split}.jsonl"
    done = {u.id: u for u in iter_manifest(manifest)} if manifest.exists() else {}
    done = add_spoken_forms(manifest, done, plan(config, split))
    total = sum(u.duration or 0.0 for u in done.values())
    jobs = (job for job in plan(config, split) if job.id not in done)
    pending: deque[tuple[Job, Future[Utterance]]] = deque()
    failed = 0
    with tqdm(
        total=round(target),
        initial=min(round(total), round(target)),
        unit="s",
        desc=f"synth {split}",
        leave=False,
    ) as bar:
        while True:
            while total < target and len(pending) < 2 * workers and (job := next(jobs, None)):
                pending.append((job, pool.submit(synthesize, job, out)))
            if not pending:
                break
            job, future = pending.popleft()
            try:
                utterance = future.result()
            except Exception as error:  # one bad sentence or engine hiccup must not stop a build
                logger.warning("skipped %s (%s): %s", job.id, job.voice, error)
                failed += 1
                continue
            if total >= target:  # submitted ahead while earlier jobs were still running
                Path(utterance.audio).unlink(missing_ok=True)
                continue
            append_manifest(manifest, utterance)
            total += utterance.duration or 0.0
            bar.update(min(round(total), round(target)) - bar.n)
    if total < target:
        logger.warning(
            "%s: ran out of sentences at %.2f of %.2f hours", split, total / 3600, target / 3600
        )
    count = sum(1 for _ in iter_manifest(manifest)) if manifest.exists() else 0
    return {"hours": round(total / 3600, 4), "utterances": count, "failed": failed}


def _check_settings(out: Path, config: SynthConfig) -> None:
    """A rerun may change --hours and --workers only; anything else would mix two corpora."""
    settings_file, current = out / SETTINGS_FILE, config.identity()
    if settings_file.exists():
        previous = json.loads(settings_file.read_text())["settings"]
        previous.setdefault("texts", "sentences")  # corpora built before --texts existed
        # Before splits were by text alone, the seed salted them: the same splits for seed 0 only.
        previous.setdefault("splits", "by-text" if previous["seed"] == 0 else "by-seed")
        if previous["splits"] != current["splits"]:
            raise UserError(
                f"{out} was built when sentence splits depended on --seed; "
                "build it again with a new --out"
            )
        if previous != current:
            changed = sorted(k for k in previous if previous[k] != current.get(k))
            raise UserError(
                f"{out} was built with other settings ({', '.join(changed)}); "
                "use the same options or a new --out"
            )
    else:
        settings_file.write_text(json.dumps({"settings": current}, indent=2) + "\n")
