"""Helpers several test files share: tiny models and configs, audio files, a small disk, a fresh
offline process, a wait for something to happen."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
import soundfile as sf

from tiny_audio.audio import SAMPLE_RATE
from tiny_audio.data.manifest import read_manifest
from tiny_audio.data.real import build_real
from tiny_audio.data.sources import data_home
from tiny_audio.lact.config import LaCTConfig
from tiny_audio.zoo.wheels import Wheel

PAGE = 4096  # tmpfs gives each file whole pages
T = TypeVar("T")


def tiny_config(**overrides: object) -> LaCTConfig:
    values: dict = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attn_heads=2,
        num_lact_heads=2,
        intermediate_size=64,
        attention_window=3,
        lact_chunk_size=4,
        dropout=0.0,
        audio_encoder_dropout=0.0,
    )
    values.update(overrides)
    return LaCTConfig(**values)


def make_wheel(
    folder: Path,
    name: str,
    version: str,
    files: dict[str, bytes],
    compression: int = zipfile.ZIP_STORED,
) -> Wheel:
    """A minimal valid wheel holding `files`; returns its pinned Wheel (with the real sha256)."""
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    path = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", compression) as archive:
        for member, data in files.items():
            archive.writestr(member, data)
        archive.writestr(
            f"{dist_info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        )
        archive.writestr(
            f"{dist_info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        archive.writestr(f"{dist_info}/RECORD", "")
    return Wheel(name, version, hashlib.sha256(path.read_bytes()).hexdigest())


def save_tiny_model(directory: Path, tiny_parts: dict[str, str]) -> Path:
    """A tiny-audio model of random tiny parts, saved the way `ta train` saves one."""
    from tiny_audio.model import ASRConfig, ASRModel

    ASRModel(
        ASRConfig(
            audio_encoder=tiny_parts["whisper"],
            text_decoder=tiny_parts["llama"],
            projector_hidden_dim=32,
        )
    ).save_pretrained(directory)
    return directory


@contextlib.contextmanager
def small_disk(directory: Path, free_pages: int) -> Iterator[Path]:
    """A real 64 KiB tmpfs at `directory`, filled until `free_pages` pages are left."""
    directory.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        filler = directory / "filler"
        filler.write_bytes(bytes(os.statvfs(directory).f_bavail * PAGE - free_pages * PAGE))
        yield directory
    finally:
        subprocess.run(["umount", str(directory)], check=True)


def tone_file(path: Path, hertz: float, seconds: float = 1.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    sf.write(path, (0.3 * np.sin(2 * np.pi * hertz * t)).astype(np.float32), SAMPLE_RATE)
    return path


def tiny_overrides(
    tiny_parts: dict[str, str], corpus: Path, output_dir: Path, **training: object
) -> list[str]:
    overrides = [
        "+experiments=smoke",
        f"model.audio_encoder={tiny_parts['whisper']}",
        f"model.text_decoder={tiny_parts['llama']}",
        "model.projector_hidden_dim=32",
        f"data.train=[{{source: {corpus}}}]",
        f"data.dev={{source: {corpus}, max_samples: 2}}",
        f"training.output_dir={output_dir}",
        "training.num_threads=1",
    ]
    return overrides + [f"training.{key}={value}" for key, value in training.items()]


def goforward_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real speech clip, "go forward ten meters": the cached `ta data real` build, else a
    fresh one."""
    folder = data_home() / "real"
    if not (folder / "goforward.jsonl").is_file():
        folder = tmp_path_factory.mktemp("real")
        build_real(folder, ["goforward"])
    return Path(read_manifest(folder / "goforward.jsonl")[0].audio)


def run_offline(script: str, *arguments: object, cwd: Path, **environment: str) -> Any:
    """Run `script` in a fresh Python process as a user without network would (the Hub and
    transformers offline; `environment` adds variables) and return the JSON its last line of
    output prints; the process's stderr is the failure when it exits with an error."""
    result = subprocess.run(
        [sys.executable, "-c", script, *map(str, arguments)],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **environment},
        cwd=cwd,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def wait_until(
    condition: Callable[[], T],
    timeout_s: float,
    explain: Callable[[], str],
    process: subprocess.Popen[Any] | None = None,
    interval_s: float = 0.1,
) -> T:
    """Call `condition` every `interval_s` until it returns something true, and return that. The
    test fails with `explain()` (a log, the state last seen) when `timeout_s` passes first, or
    when `process`, the server or job being waited on, exits before."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            pytest.fail(f"exited with {process.returncode}:\n{explain()}")
        if time.monotonic() > deadline:
            pytest.fail(f"nothing after {timeout_s} s:\n{explain()}")
        time.sleep(interval_s)
