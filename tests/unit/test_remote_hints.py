"""The `ta remote` commands a hint prints can be copied and run as they are: they carry every
login option the user gave (a key, a remote folder), not only HOST and PORT."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tiny_audio.cli import cli
from tiny_audio.ops import remote
from tiny_audio.ops.remote import Host

ADDRESS, PORT = "203.0.113.7", 22022


def test_a_host_with_the_default_login_is_address_and_port() -> None:
    assert Host(ADDRESS, PORT).command_line("train", "-e", "EXPERIMENT") == (
        f"ta remote train {ADDRESS} {PORT} -e EXPERIMENT"
    )


def test_every_login_option_that_is_not_the_default_is_repeated() -> None:
    host = Host(ADDRESS, PORT, "ubuntu", Path("/keys/my pod"), "/data/ta", "python3.11")
    assert host.command_line("logs", "--session", "s1") == (
        f"ta remote logs {ADDRESS} {PORT} --user ubuntu --key '/keys/my pod' "
        "--remote-dir /data/ta --python python3.11 --session s1"
    )


def test_deploy_says_how_to_train_on_the_same_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "pod_key"
    key.write_text("not a real key")
    monkeypatch.setattr(remote, "deploy", lambda *args, **kwargs: None)  # no host to reach
    result = CliRunner().invoke(
        cli,
        ["remote", "deploy", ADDRESS, str(PORT), "--key", str(key), "--remote-dir", "/data/ta"],
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == (
        f"ready: `ta remote train {ADDRESS} {PORT} --key {key} --remote-dir /data/ta -e EXPERIMENT`"
    )
