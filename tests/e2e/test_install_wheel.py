"""An installed wheel trains: `ta train` finds the Hydra configs shipped in the package, run from
a folder outside the clone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from helpers import tiny_overrides

from tiny_audio.train import run_folder

ROOT = Path(__file__).resolve().parents[2]


def build_and_install(root: Path) -> Path:
    """A fresh venv holding a wheel of this checkout; its dependencies are this venv's packages
    (a .pth line), so nothing is downloaded. Returns the venv's bin folder."""
    # Built from a copy: pip builds in the tree and would leave build/ in the checkout.
    source = root / "source"
    shutil.copytree(
        ROOT / "tiny_audio", source / "tiny_audio", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    pip = [sys.executable, "-m", "pip", "-q", "--no-input"]
    offline = ["--no-index", "--no-deps"]
    subprocess.run(
        [*pip, "wheel", *offline, "--no-build-isolation", "-w", root / "dist", source], check=True
    )
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    venv_python = venv / "bin" / "python"
    packages = subprocess.run(
        [venv_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # A plain path line: this venv's own .pth files (the editable install of the clone) stay unread.
    (Path(packages) / "project.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    (wheel,) = (root / "dist").glob("tiny_audio-*.whl")
    subprocess.run(
        [*pip, "--python", venv_python, "install", *offline, "--no-compile", wheel], check=True
    )
    return venv / "bin"


@pytest.mark.slow
def test_the_installed_wheel_trains_the_smoke_preset_outside_the_clone(
    tmp_path: Path, tiny_parts: dict[str, str], tone_corpus: Path
) -> None:
    bin_dir = build_and_install(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = os.environ | {
        "TINY_AUDIO_HOME": str(tmp_path / "home"),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    imported = subprocess.run(
        [bin_dir / "python", "-c", "import tiny_audio; print(tiny_audio.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert Path(imported.stdout.strip()).is_relative_to(tmp_path / "venv"), imported.stdout

    output = tmp_path / "run"
    overrides = tiny_overrides(
        tiny_parts, tone_corpus, output, max_steps=2, eval_steps=2, save_steps=2
    )
    run = subprocess.run(
        [bin_dir / "ta", "train", *overrides],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run_folder.latest_checkpoint(output) is not None
