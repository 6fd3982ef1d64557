"""The core install (`pip install .`, no extras) transcribes with the default model, and a command
that needs an extra names it in one line instead of a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch

from tiny_audio.audio import SAMPLE_RATE, load_audio
from tiny_audio.data.manifest import read_manifest
from tiny_audio.data.real import build_real
from tiny_audio.data.sources import data_home
from tiny_audio.extras import extras_providing, missing_extra
from tiny_audio.zoo import cache_home

ROOT = Path(__file__).resolve().parents[2]


def test_each_optional_package_names_its_extras() -> None:
    assert extras_providing("gradio") == ["demo"]
    assert extras_providing("hydra") == ["train"]  # imported as hydra, installed as hydra-core
    assert extras_providing("datasets") == ["train", "eval"]
    assert extras_providing("torch") == []  # core


def test_the_hint_is_one_line_for_a_missing_extra_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    missing = ModuleNotFoundError("No module named 'piper'", name="piper")
    assert missing_extra(missing) == "piper is not installed: pip install 'tiny-audio[data]'"
    shared = ModuleNotFoundError("No module named 'datasets'", name="datasets")
    assert missing_extra(shared) == (
        "datasets is not installed: pip install 'tiny-audio[train]' (or [eval])"
    )
    assert missing_extra(ModuleNotFoundError("No module named 'nope'", name="nope")) is None


def run(*command: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    # The cache's models are only read; offline, as `make` runs.
    env = os.environ | {"TINY_AUDIO_HOME": str(cache_home()), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def core_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin folder of a fresh venv holding this torch and the core of this checkout."""
    root = tmp_path_factory.mktemp("core")
    # What the package is built from, copied: pip builds in the tree and would leave build/ in
    # the checkout, whose stale files a later build would ship.
    source = root / "source"
    shutil.copytree(
        ROOT / "tiny_audio", source / "tiny_audio", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # No bytecode: compiling torch's files would double the time.
    pip: list[str | Path] = [venv / "bin" / "pip", "install", "-q", "--no-compile"]
    installed = run(*pip, f"torch=={torch.__version__}", source, cwd=venv)
    assert installed.returncode == 0, installed.stderr
    return venv / "bin"


@pytest.mark.slow
def test_core_install_transcribes_a_clip(core_bin: Path, tmp_path: Path) -> None:
    manifest = data_home() / "real" / "goforward.jsonl"
    if not manifest.is_file():
        manifest = tmp_path / "real" / "goforward.jsonl"
        build_real(manifest.parent, ["goforward"])
    clip = tmp_path / "clip.wav"
    sf.write(clip, load_audio(read_manifest(manifest)[0].audio), SAMPLE_RATE)

    result = run(core_bin / "ta", "transcribe", clip, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "forward" in result.stdout.lower()  # "go forward ten meters"
    assert "faster-whisper is not installed" not in result.stderr  # VAD is in the core


@pytest.mark.slow
def test_core_install_names_the_extra_a_command_needs(core_bin: Path, tmp_path: Path) -> None:
    result = run(core_bin / "ta", "train", "+experiments=smoke", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "error: omegaconf is not installed: pip install 'tiny-audio[train]'\n"
