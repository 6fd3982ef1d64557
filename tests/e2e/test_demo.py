"""`ta demo`: the page's handler in process, then the real server driven by headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner
from helpers import wait_until
from ports import free_port

from tiny_audio.audio import SAMPLE_RATE, load_audio
from tiny_audio.cli import cli
from tiny_audio.data import read_manifest
from tiny_audio.data.real import build_real
from tiny_audio.data.sources import data_home
from tiny_audio.demo import live as live_module
from tiny_audio.demo.app import build_app, decoding_options, model_info, transcribe
from tiny_audio.demo.limits import MAX_AUDIO_S, MAX_UPLOAD_MB
from tiny_audio.demo.live import LiveTranscript
from tiny_audio.errors import UserError
from tiny_audio.lact.config import LaCTConfig
from tiny_audio.lact.model import LaCTForCTC
from tiny_audio.model import ASRConfig, ASRModel
from tiny_audio.recognizer import Recognizer, load_recognizer
from tiny_audio.zoo import cache_home

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip
ARTIFACTS = Path(
    os.environ.get("TINY_AUDIO_ARTIFACTS", Path(__file__).parents[2] / "outputs" / "test-artifacts")
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
    def answers() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def explain() -> str:
        return f"ta demo at {url}:\n{log.read_text()[-3000:]}"

    wait_until(answers, WAIT_MS / 1000, explain, server, interval_s=1)


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


def open_demo(
    playwright: Playwright, url: str, extra_args: Sequence[str] = ()
) -> tuple[Browser, Page]:
    """Headless Chromium (with EXTRA_ARGS) on the demo at URL, waiting up to WAIT_MS."""
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args]
    )
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
    return browser, page


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
        browser, page = open_demo(playwright, url)
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


# ---- live microphone ---------------------------------------------------------------------------

LIVE_WINDOW_S, LIVE_STRIDE_S = 4.0, 1.0


def _wait_text(live: LiveTranscript, expected: str) -> None:
    """Fails unless the live transcript reads `expected` within WAIT_MS."""

    def explain() -> str:
        return f"the live transcript reads {live.text!r}, not {expected!r}"

    wait_until(lambda: live.text == expected, WAIT_MS / 1000, explain, interval_s=0.05)


def test_live_transcript_finalises_each_utterance_at_its_pause(speech: tuple[Path, float]) -> None:
    """Two real utterances with a pause between are each heard whole, once, as final text."""
    clip = load_audio(speech[0])
    silence = np.zeros(SAMPLE_RATE, dtype=np.float32)
    recording = np.concatenate([silence, clip, silence, silence, clip, silence])

    def seconds(audio: np.ndarray) -> str:
        return f"{len(audio) / SAMPLE_RATE:.1f}"

    live = LiveTranscript(seconds, window_s=20, stride_s=2)
    for start in range(0, len(recording), SAMPLE_RATE // 2):  # chunks as the page sends them
        live.add(recording[start : start + SAMPLE_RATE // 2])
    finals = [float(value) for value in live.finish().split()]
    assert len(finals) == 2  # one per utterance, not one for the whole recording
    assert all(speech[1] - 0.5 < value < speech[1] + 1.5 for value in finals), finals


def test_live_transcript_overlaps_windows_of_unbroken_speech(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a pause, windows are cut at their length and overlap by the stride; the words the
    overlap repeats are dropped. Each second of this signal 'says' its own number."""
    monkeypatch.setattr(live_module, "speech_windows", lambda audio, max_s: None)  # no detector
    recording = np.repeat(np.arange(11, dtype=np.float32), SAMPLE_RATE)

    def words(audio: np.ndarray) -> str:
        return " ".join(f"s{int(second)}" for second in dict.fromkeys(audio.tolist()))

    live = LiveTranscript(words, window_s=LIVE_WINDOW_S, stride_s=LIVE_STRIDE_S)
    live.add(recording[: 6 * SAMPLE_RATE])
    _wait_text(live, "s0 s1 s2 s3 s4 s5")  # the first window final, the rest tentative
    live.add(recording[6 * SAMPLE_RATE :])
    assert live.finish() == " ".join(f"s{second}" for second in range(11))


def test_live_transcript_reports_a_failing_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live_module, "speech_windows", lambda audio, max_s: None)  # no detector

    def broken(audio: np.ndarray) -> str:
        raise UserError("the model broke")

    live = LiveTranscript(broken, window_s=LIVE_WINDOW_S, stride_s=LIVE_STRIDE_S)
    live.add(np.ones(SAMPLE_RATE, dtype=np.float32))
    with pytest.raises(UserError, match="the model broke"):
        live.finish()


@pytest.fixture
def spoken_clip(speech: tuple[Path, float], tmp_path: Path) -> tuple[Path, float]:
    """Real speech for the fake microphone: the clip three times with pauses, 16-bit WAV (what
    Chromium's fake capture device reads)."""
    clip = load_audio(speech[0])
    pause = np.zeros(SAMPLE_RATE, dtype=np.float32)
    recording = np.concatenate([pause, clip, pause, clip, pause, clip, pause])
    path = tmp_path / "spoken.wav"
    sf.write(path, recording, SAMPLE_RATE, subtype="PCM_16")
    return path, len(recording) / SAMPLE_RATE


def test_browser_live_microphone_transcript_grows_while_speaking(
    server: tuple[str, subprocess.Popen[bytes]], spoken_clip: tuple[Path, float], tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, process = server
    clip, duration = spoken_clip
    fake_microphone = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={clip}",  # looped: it may start as the page loads
    ]
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        browser, page = open_demo(playwright, url, fake_microphone)
        expect(page.locator("#model-info")).to_contain_text("Trainable parameters")  # loaded
        transcript = page.locator("#transcript textarea")
        live = page.locator("#live")
        expect(live.locator("select")).to_contain_text("Fake")  # the microphone is found
        live.get_by_role("button", name=re.compile("record", re.I)).click()
        started = time.monotonic()
        expect(live.get_by_role("button", name=re.compile("stop", re.I))).to_be_visible()
        expect(transcript).not_to_have_value("")
        heard_after = time.monotonic() - started
        _screenshot(page, tmp_path, "demo-live.png")
        assert heard_after < duration, f"first words after {heard_after:.1f} s of {duration:.1f}"
        assert process.poll() is None
        browser.close()


# ---- limits, workers and temporary files -------------------------------------------------------


def _write_seconds(path: Path, seconds: float) -> Path:
    """Quiet noise of the given length: only its length matters to the limits."""
    noise = np.random.default_rng(0).normal(0, 0.01, int(seconds * SAMPLE_RATE))
    sf.write(path, noise.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
    return path


def test_handler_refuses_audio_over_the_duration_limit(
    recognizer: Recognizer, tmp_path: Path
) -> None:
    import gradio as gr

    long_wav = _write_seconds(tmp_path / "long.wav", MAX_AUDIO_S + 1)
    with pytest.raises(gr.Error) as caught:
        transcribe(recognizer, str(long_wav), 1, 8, 30, 5, "")
    assert caught.value.message == (
        f"long.wav: {MAX_AUDIO_S + 1} s of audio, over the demo's limit of {MAX_AUDIO_S} s; "
        "`ta transcribe` takes any length"
    )


def test_http_two_requests_are_transcribed_at_once(
    server: tuple[str, subprocess.Popen[bytes]], speech: tuple[Path, float], tmp_path: Path
) -> None:
    """Two workers by default: a second request is processed while the first still is, not
    queued behind it (one worker would show it waiting in the queue)."""
    from gradio_client import Client, handle_file
    from gradio_client.utils import Status

    url, _ = server
    long_clip = tmp_path / "long.wav"
    clip = load_audio(speech[0])
    repeats = int(MAX_AUDIO_S * 0.9 * SAMPLE_RATE) // len(clip)  # just under the limit
    sf.write(long_clip, np.tile(clip, repeats), SAMPLE_RATE)
    clients = [Client(url, verbose=False) for _ in range(2)]
    # beams, max new tokens (0: scaled to the audio), chunk length, stride, prompt
    jobs = [
        client.submit(handle_file(str(long_clip)), 4, 0, 30, 5, "", api_name="/transcribe")
        for client in clients
    ]
    # Both processing for a whole second: with one worker they overlap only for the moment in
    # which the first one's result is on its way back.
    together_since: float | None = None
    seen_together = False
    while not seen_together and not any(job.done() for job in jobs):
        if all(job.status().code == Status.PROCESSING for job in jobs):
            together_since = together_since or time.monotonic()
            seen_together = time.monotonic() - together_since >= 1.0
        else:
            together_since = None
        time.sleep(0.02)
    for job in jobs:
        text, _ = job.result(timeout=WAIT_MS / 1000)
        assert text.strip()
    assert seen_together, "the second request waited in the queue for the first"


def test_browser_limits_uploads_and_leaves_no_files_behind(
    server: tuple[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, process = server
    uploads = tmp_path / "uploads"  # the server's GRADIO_TEMP_DIR
    too_long = _write_seconds(tmp_path / "too-long.wav", MAX_AUDIO_S + 1)
    too_big = tmp_path / "too-big.wav"
    with too_big.open("wb") as file:
        file.truncate(MAX_UPLOAD_MB * 1024 * 1024 + 1)
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        browser, page = open_demo(playwright, url)
        toast = page.get_by_test_id("toast-body")

        page.locator("#audio input[type=file]").set_input_files(str(too_long))
        page.locator("#transcribe").click()
        expect(toast).to_contain_text(f"too-long.wav: {MAX_AUDIO_S + 1} s of audio, over the")
        toast.get_by_label("Close").click()
        expect(toast).to_have_count(0)
        assert [path for path in uploads.rglob("*.wav")]  # the upload is on disk while served

        page.locator("#audio").get_by_label("Clear").click()
        page.locator("#audio input[type=file]").set_input_files(str(too_big))
        size = f"{MAX_UPLOAD_MB}.0 Mb"  # in the words of Gradio, which enforces the limit
        expect(toast).to_contain_text(f'exceed the maximum allowed size of {size}: "too-big.wav"')
        _screenshot(page, tmp_path, "demo-too-big.png")
        browser.close()
    assert process.poll() is None
    process.terminate()  # as a service manager stops it
    assert process.wait(timeout=60) == 0
    assert [path for path in uploads.rglob("*") if path.is_file()] == []
