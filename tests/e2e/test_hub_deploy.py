"""`ta deploy --dry-run`: the Space folder (app.py, requirements, README metadata), the app itself
started locally, serving a transcription over HTTP to gradio_client, and the Space of the bundled
`default` run with what its requirements.txt installs."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from click.testing import CliRunner
from helpers import goforward_clip, run_offline
from packaging.requirements import Requirement
from ports import free_port, wait_until_listening

from tiny_audio.cli import cli
from tiny_audio.lact.config import LaCTConfig
from tiny_audio.lact.model import LaCTForCTC
from tiny_audio.model import ASRConfig, ASRModel

# Imported in the Space folder, app.py builds its interface and loads the model; then one clip.
APP_SCRIPT = """
import json, sys
import gradio, app
assert isinstance(app.demo, gradio.Blocks)
print(json.dumps(app.transcribe(sys.argv[1], 1, 16)))
"""


@pytest.fixture(scope="module")
def model_dir(tiny_parts: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("model")
    config = ASRConfig(
        audio_encoder=tiny_parts["whisper"],
        text_decoder=tiny_parts["llama"],
        projector_hidden_dim=64,
    )
    ASRModel(config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def space(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("space") / "out"
    result = CliRunner().invoke(
        cli,
        [
            "deploy",
            "--repo-id",
            "someone/tiny-space",
            "-m",
            str(model_dir),
            "--dry-run",
            str(folder),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture(scope="module")
def app_url(space: Path) -> Iterator[str]:
    port = free_port()
    environment = {
        **os.environ,
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
    }
    log = (space.parent / "app.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "app.py"], cwd=space, env=environment, stdout=log, stderr=log
    )
    try:
        wait_until_listening(port, process, space.parent / "app.log", timeout_s=240)
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_space_folder_has_app_requirements_and_metadata(space: Path, model_dir: Path) -> None:
    import gradio

    assert {p.name for p in space.iterdir()} == {"app.py", "requirements.txt", "README.md", "model"}
    _, header, body = (space / "README.md").read_text().split("---\n", 2)
    meta = yaml.safe_load(header)
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    assert meta["sdk_version"] == gradio.__version__
    assert "the bundled model" in body

    app = (space / "app.py").read_text()
    assert 'os.environ.get("MODEL", "model")' in app
    compile(app, "app.py", "exec")

    requirements = {
        line.split(">=")[0] for line in (space / "requirements.txt").read_text().split()
    }
    assert requirements >= {"transformers", "torch", "soundfile", "soxr", "numpy", "safetensors"}
    assert "gradio" not in requirements  # the Space's sdk_version provides it
    bundled = space / "model"
    assert (bundled / "model.safetensors").read_bytes() == (
        model_dir / "model.safetensors"
    ).read_bytes()
    assert (bundled / "README.md").is_file() and (bundled / "modeling.py").is_file()


def test_space_with_a_hub_model_points_app_at_it(tmp_path: Path) -> None:
    folder = tmp_path / "space"
    result = CliRunner().invoke(
        cli,
        [
            "deploy",
            "--repo-id",
            "someone/space",
            "-m",
            "someone/tiny-asr",
            "--dry-run",
            str(folder),
        ],
    )
    assert result.exit_code == 0, result.output
    assert 'os.environ.get("MODEL", "someone/tiny-asr")' in (folder / "app.py").read_text()
    meta = yaml.safe_load((folder / "README.md").read_text().split("---\n", 2)[1])
    assert meta["models"] == ["someone/tiny-asr"]
    assert not (folder / "model").exists()
    requirements = {
        line.split(">=")[0] for line in (folder / "requirements.txt").read_text().split()
    }
    assert requirements >= {"transformers", "torch", "soundfile", "soxr"}


def test_app_serves_a_transcription(app_url: str, model_dir: Path, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    clip = (0.1 * np.random.default_rng(2).standard_normal(20000)).astype(np.float32)
    wav = tmp_path / "clip.wav"
    sf.write(wav, clip, 16000, subtype="FLOAT")
    client = Client(app_url, verbose=False, download_files=str(tmp_path / "downloads"))
    text, timing = client.predict(handle_file(str(wav)), 1, 16, api_name="/transcribe")
    expected = ASRModel.from_pretrained(model_dir).transcribe([clip], max_new_tokens=16)[0]
    assert text == expected
    assert timing.startswith("1.2 s of audio in ")


def test_app_reports_a_corrupt_file_and_keeps_serving(app_url: str, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    client = Client(app_url, verbose=False, download_files=str(tmp_path / "downloads"))
    with pytest.raises(AppError, match="Could not read this file as audio"):
        client.predict(handle_file(str(corrupt)), 1, 16, api_name="/transcribe")
    good = tmp_path / "silence.wav"
    sf.write(good, np.zeros(8000, dtype=np.float32), 16000)
    text, timing = client.predict(handle_file(str(good)), 1, 16, api_name="/transcribe")
    assert isinstance(text, str) and timing.startswith("0.5 s of audio")


def test_deploy_of_an_unknown_model_is_one_clear_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["deploy", "--repo-id", "a/b", "-m", "no-such-model", "--dry-run", str(tmp_path / "s")]
    )
    assert result.exit_code == 1
    assert result.output.strip().startswith(
        "error: no-such-model: not a model folder, a bundled model"
    )


def deploy(model: str, folder: Path) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli, ["deploy", "--repo-id", "someone/space", "-m", model, "--dry-run", str(folder)]
    )
    return result.exit_code, result.output


@pytest.mark.slow
def test_space_of_the_default_builds_and_transcribes_with_its_requirements(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    space = tmp_path / "space"
    code, output = deploy("default", space)
    assert code == 0, output
    requirements = [
        Requirement(line) for line in (space / "requirements.txt").read_text().splitlines()
    ]
    assert {r.name for r in requirements} >= {"torch", "transformers", "peft", "soundfile"}
    for requirement in requirements:  # what the Space installs is what this test runs on
        assert requirement.specifier.contains(importlib.metadata.version(requirement.name))

    clip = goforward_clip(tmp_path_factory)
    text, timing = run_offline(APP_SCRIPT, clip, cwd=space, GRADIO_ANALYTICS_ENABLED="False")
    assert "forward" in text.lower()
    assert timing.startswith("2.8 s of audio in ")


def test_space_of_a_lact_model_transcribes_without_tiny_audio(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = LaCTConfig(hidden_size=32, num_hidden_layers=1, num_attn_heads=2, num_lact_heads=2)
    model_dir = LaCTForCTC(config).save_pretrained(tmp_path / "lact")
    space = tmp_path / "space"
    code, output = deploy(str(model_dir), space)
    assert code == 0, output
    clip = goforward_clip(tmp_path_factory)
    without_tiny_audio = (
        'import sys\nsys.modules["tiny_audio"] = None\n' + APP_SCRIPT
    )  # as on a Space
    text, timing = run_offline(
        without_tiny_audio, clip, cwd=space, GRADIO_ANALYTICS_ENABLED="False"
    )
    assert isinstance(text, str)  # an untrained model's characters
    assert timing.startswith("2.8 s of audio in ")
