"""The paid API peers (AssemblyAI, Deepgram): one clear error without a key, and the real
clients against a local HTTP server on 127.0.0.1 that speaks each API's protocol (the only
mock this project allows). The server "transcribes" a clip as its length in seconds, and
fails on silence, so a failing item can be checked too."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from tiny_audio.cli import cli
from tiny_audio.data.manifest import Utterance
from tiny_audio.evaluate.runner import evaluate, summarize
from tiny_audio.recognizer import load_recognizer

KEY = "test-key-123"
WORDS = {1: "one second", 2: "two seconds", 3: "three seconds"}


def _heard(body: bytes) -> tuple[str | None, dict[str, Any]]:
    """What the fake service hears in an uploaded WAV: its length in words, or None for silence."""
    audio, rate = sf.read(io.BytesIO(body), dtype="float32")
    info = sf.info(io.BytesIO(body))
    facts = {
        "rate": rate,
        "channels": info.channels,
        "subtype": info.subtype,
        "samples": len(audio),
    }
    return (None if np.abs(audio).max() < 1e-3 else WORDS[round(len(audio) / rate)]), facts


class FakeSpeechAPI(BaseHTTPRequestHandler):
    """AssemblyAI v2 (upload, transcript, poll) and Deepgram v1/listen, in memory."""

    uploads: dict[str, bytes]
    jobs: dict[str, dict[str, Any]]
    seen: list[dict[str, Any]]

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def do_POST(self) -> None:
        url = urlparse(self.path)
        body = self._body()
        if url.path == "/v1/listen":
            if self.headers.get("Authorization") != f"Token {KEY}":
                return self._reply(401, {"err_msg": "Invalid credentials."})
            text, facts = _heard(body)
            self.seen.append({"api": "deepgram", "query": parse_qs(url.query), **facts})
            if text is None:
                return self._reply(500, {"err_msg": "no speech detected"})
            alternative = {"transcript": text, "confidence": 0.99}
            return self._reply(200, {"results": {"channels": [{"alternatives": [alternative]}]}})
        if self.headers.get("authorization") != KEY:
            return self._reply(401, {"error": "Authentication error"})
        if url.path == "/v2/upload":
            name = f"upload-{len(self.uploads)}"
            self.uploads[name] = body
            host, port = self.server.server_address[:2]
            return self._reply(200, {"upload_url": f"http://{host}:{port}/files/{name}"})
        if url.path == "/v2/transcript":
            job = json.loads(body)
            text, facts = _heard(self.uploads[job["audio_url"].rsplit("/", 1)[1]])
            self.seen.append({"api": "assemblyai", "job": job, **facts})
            job_id = f"job-{len(self.jobs)}"
            self.jobs[job_id] = {"text": text, "polls": 0}
            return self._reply(200, {"id": job_id, "status": "queued"})
        return self._reply(404, {"error": "not found"})

    def do_GET(self) -> None:
        job = self.jobs.get(self.path.rsplit("/", 1)[1])
        if self.headers.get("authorization") != KEY or job is None:
            return self._reply(404, {"error": "not found"})
        job["polls"] += 1
        if job["polls"] < 2:  # one "processing" answer before the result
            return self._reply(200, {"status": "processing"})
        if job["text"] is None:
            return self._reply(200, {"status": "error", "error": "no spoken audio"})
        return self._reply(200, {"status": "completed", "text": job["text"]})


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeSpeechAPI]]:
    handler = type("Handler", (FakeSpeechAPI,), {"uploads": {}, "jobs": {}, "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    for variable, value in {
        "ASSEMBLYAI_API_KEY": KEY,
        "ASSEMBLYAI_BASE_URL": base,
        "DEEPGRAM_API_KEY": KEY,
        "DEEPGRAM_BASE_URL": base,
    }.items():
        monkeypatch.setenv(variable, value)
    yield handler
    server.shutdown()
    server.server_close()


def _tone(seconds: int, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(seconds * 16_000) / 16_000
    return (amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


@pytest.mark.parametrize(
    ("peer", "variable"), [("assemblyai", "ASSEMBLYAI_API_KEY"), ("deepgram", "DEEPGRAM_API_KEY")]
)
def test_api_peer_without_key_is_one_line_error(
    peer: str, variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(variable, raising=False)
    result = CliRunner().invoke(cli, ["eval", "-m", peer, "-d", "real"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: {variable} is not set; export your API key to use this peer"
    ]


def test_assemblyai_client_against_local_server(fake_api: type[FakeSpeechAPI]) -> None:
    recognizer = load_recognizer("assemblyai:universal")
    recognizer.poll_interval_s = 0.01  # type: ignore[attr-defined]
    assert recognizer.transcribe([_tone(1), _tone(2)]) == ["one second", "two seconds"]
    assert [seen["job"]["speech_model"] for seen in fake_api.seen] == ["universal", "universal"]
    assert all(seen["job"]["language_code"] == "en" for seen in fake_api.seen)
    assert sorted(seen["samples"] for seen in fake_api.seen) == [16_000, 32_000]
    assert {(seen["rate"], seen["channels"], seen["subtype"]) for seen in fake_api.seen} == {
        (16_000, 1, "PCM_16")
    }


def test_assemblyai_error_status_is_raised(fake_api: type[FakeSpeechAPI]) -> None:
    recognizer = load_recognizer("assemblyai")
    recognizer.poll_interval_s = 0.01  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match="no spoken audio"):
        recognizer.transcribe([_tone(1, amplitude=0.0)])


def test_deepgram_client_against_local_server(fake_api: type[FakeSpeechAPI]) -> None:
    recognizer = load_recognizer("deepgram")
    assert recognizer.name == "deepgram:nova-3"
    assert recognizer.transcribe([_tone(3)]) == ["three seconds"]
    (seen,) = fake_api.seen
    assert seen["query"] == {"model": ["nova-3"], "language": ["en"], "smart_format": ["true"]}
    assert (seen["rate"], seen["channels"], seen["samples"]) == (16_000, 1, 48_000)


def test_failed_request_is_recorded_and_the_rest_scored(fake_api: type[FakeSpeechAPI]) -> None:
    utterances = [
        Utterance("a", _tone(1), "one second", source="tones"),
        Utterance("silent", _tone(2, amplitude=0.0), "two seconds", source="tones"),
        Utterance("c", _tone(2), "two seconds", source="tones"),
    ]
    predictions = evaluate(load_recognizer("deepgram"), utterances, batch_size=3)
    assert [p.id for p in predictions] == ["a", "silent", "c"]
    assert [p.hyp for p in predictions] == ["one second", "", "two seconds"]
    assert "HTTP 500" in (predictions[1].error or "")
    summary = summarize(predictions)
    assert (summary["scored"], summary["failed"], summary["wer"]) == (2, 1, 0.0)
