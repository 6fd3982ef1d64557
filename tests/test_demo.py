"""`ta demo`: the page's handler in process, then the real server driven by headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner
from ports import free_port

from tiny_audio.cli import cli
from tiny_audio.data import read_manifest
from tiny_audio.data.real import build_real
from tiny_audio.data.sources import data_home
from tiny_audio.demo.app import build_app, decoding_options, model_info, transcribe
from tiny_audio.lact.config import LaCTConfig
from tiny_audio.lact.model import LaCTForCTC
from tiny_audio.model import ASRConfig, ASRModel
from tiny_audio.recognizer import Recognizer, load_recognizer
from tiny_audio.zoo import cache_home

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip
ARTIFACTS = Path(
    os.environ.get("TINY_AUDIO_ARTIFACTS", Path(__file__).parents[1] / "outputs" / "test-artifacts")
)
WAIT_MS = 180_000  # the CPU may be shared with other jobs


@pytest.fixture(scope="module")
def model_dir(tiny_parts: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny-audio model of tiny random parts: gibberish, but fast and real end to end."""
    torch.manual_seed(0)
    config = ASRConfig(
        audio_encoder=tiny_parts["whisper"],
        text_decoder=tiny_parts["llama"],
        projector_hidden_dim=32,
    )
    directory = tmp_path_factory.mktemp("demo_model")
    ASRModel(config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def recognizer(model_dir: Path) -> Recognizer:
    return load_recognizer(str(model_dir))


@pytest.fixture(scope="module")
def real_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TINY_AUDIO_HOME holding `ta data real`'s goforward slice: this machine's, else a fresh
    build (the demo offers the first clip of each slice as an example)."""
    if (data_home() / "real" / "goforward.jsonl").is_file():
        return cache_home()
    home = tmp_path_factory.mktemp("home")
    build_real(home / "data" / "real", ["goforward"])
    return home


@pytest.fixture(scope="module")
def speech(real_home: Path) -> tuple[Path, float]:
    """A real speech clip (FLAC) and its length."""
    utterance = read_manifest(real_home / "data" / "real" / "goforward.jsonl")[0]
    return Path(utterance.audio), sf.info(utterance.audio).duration


@pytest.fixture
def corrupt_wav(tmp_path: Path) -> Path:
    path = tmp_path / "corrupt.wav"
    path.write_bytes(np.random.default_rng(0).bytes(4000))
    return path


def test_handler_transcribes_and_times_a_real_clip(
    recognizer: Recognizer, speech: tuple[Path, float]
) -> None:
    path, duration = speech
    text, timing = transcribe(recognizer, str(path), 1, 8, 30, 5, "names: Tux")
    assert text.strip()
    assert timing.startswith(f"{duration:.1f} s of audio in ")
    assert re.search(r"RTFx \d+\.\d\)$", timing)


def test_handler_turns_bad_audio_into_page_errors(
    recognizer: Recognizer, tmp_path: Path, corrupt_wav: Path
) -> None:
    import gradio as gr

    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 16000)
    expected = {
        None: "Upload or record some audio first.",
        str(empty): "empty.wav: no audio samples",
        str(corrupt_wav): "corrupt.wav: not a readable audio file",
    }
    for path, message in expected.items():
        with pytest.raises(gr.Error) as caught:
            transcribe(recognizer, path, 1, 8, 30, 5, "")
        assert caught.value.message == message  # the name, not Gradio's upload folder


def test_model_info_and_options_follow_the_recognizer(
    recognizer: Recognizer, model_dir: Path
) -> None:
    info = model_info(recognizer)
    config = recognizer.config  # type: ignore[attr-defined]
    trainable = recognizer.num_trainable_parameters()  # type: ignore[attr-defined]
    assert trainable > 0
    for value in (model_dir, config.audio_encoder, config.text_decoder, "mlp", f"{trainable:,}"):
        assert f"`{value}`" in info
    assert decoding_options(recognizer, 2, 0, 20, 2.5, "  ") == {
        "num_beams": 2, "max_new_tokens": None, "chunk_length_s": 20.0, "stride_length_s": 2.5, "prompt": None,
    }  # fmt: skip

    peer = load_recognizer("pocketsphinx")
    assert model_info(peer) == "**Model:** `pocketsphinx`"
    assert decoding_options(peer, 3, 64, 20, 2.5, "Tux") == {"num_beams": 3}


def shown_settings(recognizer: Recognizer) -> dict[str, object]:
    """The page's decoding controls that are shown, by elem_id, with their starting values."""
    import gradio as gr

    app = build_app(recognizer)
    controls = {"prompt", "max-new-tokens", "chunk-length", "stride-length"}
    return {
        block.elem_id: block.value
        for block in app.blocks.values()
        if isinstance(block, gr.components.Component)
        and block.elem_id in controls
        and block.visible
    }


def test_controls_match_the_model_family(
    recognizer: Recognizer, tmp_path: Path, speech: tuple[Path, float]
) -> None:
    assert shown_settings(recognizer) == {
        "prompt": None, "max-new-tokens": 0, "chunk-length": 30.0, "stride-length": 5.0,
    }  # fmt: skip

    # LaCT has no prompt or token budget; its windows start at its own length.
    config = LaCTConfig(
        hidden_size=32, num_hidden_layers=1, num_attn_heads=2, num_lact_heads=2,
        max_audio_seconds=12.0,
    )  # fmt: skip
    lact = load_recognizer(str(LaCTForCTC(config).save_pretrained(tmp_path / "lact")))
    assert shown_settings(lact) == {"chunk-length": 12.0, "stride-length": 2.0}
    options = decoding_options(lact, 3, 64, 12, 2, "Tux")
    assert options == {"num_beams": 3, "chunk_length_s": 12.0, "stride_length_s": 2.0}
    text, timing = transcribe(lact, str(speech[0]), 3, 64, 12, 2, None)  # prompt hidden: None
    assert isinstance(text, str) and timing.startswith(f"{speech[1]:.1f} s of audio")

    assert shown_settings(load_recognizer("pocketsphinx")) == {}  # beams only


def test_cli_reports_an_unknown_model_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["demo", "-m", str(tmp_path / "missing")])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and "Traceback" not in result.output


def _wait_for_http(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"ta demo exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    pytest.fail(f"ta demo did not answer at {url}:\n{log.read_text()[-3000:]}")


@pytest.fixture
def server(
    model_dir: Path, real_home: Path, tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    log = tmp_path / "server.log"
    env = {
        **os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_TEMP_DIR": str(tmp_path / "uploads"), "TINY_AUDIO_HOME": str(real_home),
    }  # fmt: skip
    command = [sys.executable, "-m", "tiny_audio", "demo", "-m", str(model_dir), "-p", str(port)]
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_for_http(url, process, log)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, ARTIFACTS / name)
    return path


def test_browser_uploads_transcribes_and_survives_a_corrupt_file(
    server: tuple[str, subprocess.Popen[bytes]],
    speech: tuple[Path, float],
    corrupt_wav: Path,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, process = server
    clip, duration = speech
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(WAIT_MS)
        page.goto(url)
        expect(page.get_by_role("heading", name="tiny-audio demo")).to_be_visible()
        expect(page.locator("#model-info")).to_contain_text("Trainable parameters")

        max_tokens = page.get_by_label("number input for Max new tokens")
        max_tokens.fill("12")
        max_tokens.press("Tab")
        transcript, timing = page.locator("#transcript textarea"), page.locator("#timing textarea")

        def upload_and_transcribe(path: Path) -> None:
            page.locator("#audio input[type=file]").set_input_files(str(path))
            expect(transcript).to_have_value("")  # a new upload clears the last result
            page.locator("#transcribe").click()

        upload_and_transcribe(clip)
        expect(timing).to_have_value(re.compile(rf"^{duration:.1f} s of audio in .*RTFx"))
        assert transcript.input_value().strip()

        page.locator("#audio").get_by_label("Clear").click()
        upload_and_transcribe(corrupt_wav)
        toast = page.get_by_test_id("toast-body")
        expect(toast).to_contain_text("corrupt.wav: not a readable audio file")
        expect(toast).to_have_css("opacity", "1")  # faded in, for the screenshot
        _screenshot(page, tmp_path, "demo-error.png")
        toast.get_by_label("Close").click()
        expect(toast).to_have_count(0)
        assert process.poll() is None

        page.locator("#audio").get_by_label("Clear").click()
        with page.expect_response(lambda response: response.url.endswith(f"/{clip.name}")):
            page.get_by_text(clip.name, exact=True).click()  # the same recording, as an example
        page.locator("#transcribe").click()
        expect(timing).to_have_value(re.compile(rf"^{duration:.1f} s of audio in .*RTFx"))
        assert transcript.input_value().strip()
        assert _screenshot(page, tmp_path, "demo.png").stat().st_size > 10_000
        browser.close()
