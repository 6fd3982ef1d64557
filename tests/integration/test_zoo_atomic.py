"""A pull that dies half way leaves nothing that resolves, and the next pull sweeps it away."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import wait_until

from tiny_audio.zoo import registry
from tiny_audio.zoo.cache import PARTIAL_MARK, build_atomically
from tiny_audio.zoo.registry import ZooModel, is_cached, model_dir, resolve

# A zoo model with no wheels whose conversion writes one file, then (in the child) waits to be killed.
SLOW_PULL = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tiny_audio.zoo import registry
    from tiny_audio.zoo.registry import ZooModel

    def convert(source: Path, destination: Path) -> None:
        (destination / "config.json").write_text("{}")
        (destination / "half-written").touch()
        time.sleep(600)

    registry.ZOO["slow-model"] = ZooModel("slow-model", "encoder", "1", "MIT", "test", (), (), convert)
    registry.pull("slow-model")
    """
)


def write_config(source: Path, destination: Path) -> None:
    (destination / "config.json").write_text("{}")


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TINY_AUDIO_HOME", str(tmp_path))
    return tmp_path


def register(
    monkeypatch: pytest.MonkeyPatch, name: str, convert: Callable[[Path, Path], None]
) -> None:
    monkeypatch.setitem(
        registry.ZOO, name, ZooModel(name, "encoder", "1", "MIT", "test", (), (), convert)
    )


def partials(name: str) -> list[Path]:
    return list(model_dir(name).parent.glob(f".{name}{PARTIAL_MARK}*"))


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_killed_pull_leaves_no_model_and_is_swept(
    fresh_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**os.environ, "TINY_AUDIO_HOME": str(fresh_home)}
    child = subprocess.Popen([sys.executable, "-c", SLOW_PULL], env=env)
    try:
        wait_until(
            lambda: any(p.joinpath("half-written").exists() for p in partials("slow-model")),
            120,
            lambda: "the child never started converting",
            child,
        )
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
    assert not is_cached("slow-model")
    assert len(partials("slow-model")) == 1

    register(monkeypatch, "slow-model", write_config)
    folder = resolve("slow-model")
    assert folder == model_dir("slow-model")
    assert not (folder / "half-written").exists()
    assert partials("slow-model") == []


def test_stale_partial_is_never_resolved(fresh_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = model_dir("some-model").with_name(f".some-model{PARTIAL_MARK}{dead_pid()}")
    stale.mkdir(parents=True)
    (stale / "config.json").write_text('{"stale": true}')
    register(monkeypatch, "some-model", write_config)
    assert not is_cached("some-model")
    assert (resolve("some-model") / "config.json").read_text() == "{}"
    assert not stale.exists()


def test_dead_partials_are_swept_by_any_later_pull(
    fresh_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pull killed while another process finished the same model, or while pulling a model that
    is never pulled again, leaves partials that no build of their own will sweep."""
    register(monkeypatch, "cached-model", write_config)
    register(monkeypatch, "other-model", write_config)
    resolve("cached-model")
    stale = [
        model_dir(name).with_name(f".{name}{PARTIAL_MARK}{dead_pid()}")
        for name in ("cached-model", "abandoned-model")
    ]
    for partial in stale:
        partial.mkdir()
        (partial / "weights.bin").write_bytes(bytes(1000))
    resolve("cached-model")
    assert not any(partial.exists() for partial in stale)

    stale[1].mkdir()
    resolve("other-model")
    assert not stale[1].exists()


def test_partial_of_a_live_process_is_left_alone(fresh_home: Path) -> None:
    live = fresh_home / f".other{PARTIAL_MARK}{os.getppid()}"
    live.mkdir()
    build_atomically(fresh_home / "other", lambda folder: None)
    assert live.is_dir()
    assert (fresh_home / "other").is_dir()


def test_failed_conversion_leaves_nothing(
    fresh_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(source: Path, destination: Path) -> None:
        (destination / "config.json").write_text("{}")
        raise RuntimeError("conversion failed")

    register(monkeypatch, "broken-model", broken)
    with pytest.raises(RuntimeError, match="conversion failed"):
        resolve("broken-model")
    assert not is_cached("broken-model")
    assert partials("broken-model") == []
