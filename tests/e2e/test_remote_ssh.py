"""`ta remote` against a real OpenSSH server on 127.0.0.1: this machine plays the rented GPU host,
with its own throwaway keys, its own remote directory and a Python environment of its own."""

from __future__ import annotations

import getpass
import hashlib
import os
import pty
import secrets
import select
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers import run_offline
from ports import free_port, wait_until_listening

from tiny_audio.cli import cli
from tiny_audio.data.sources import load_source
from tiny_audio.ops.remote import EXIT_MARKER, STATE_DIR

REPO = Path(__file__).resolve().parents[2]
SSHD = Path("/usr/sbin/sshd")
# What the job on the "remote" needs to find this machine's model cache offline.
FORWARDED = ("TINY_AUDIO_HOME", "HF_HOME", "TOKENIZERS_PARALLELISM")


@dataclass
class Remote:
    port: int
    key: Path
    user: str
    directory: Path  # the remote checkout
    python: Path  # the remote Python environment
    local_home: Path  # TINY_AUDIO_HOME of the client (its known_hosts)

    def args(self) -> list[str]:
        return [
            "127.0.0.1",
            str(self.port),
            "--user",
            self.user,
            "--key",
            str(self.key),
            "--remote-dir",
            str(self.directory),
            "--python",
            str(self.python),
        ]

    def ta(self, subcommand: str, *extra: str, env: dict[str, str] | None = None) -> Result:
        """`ta remote SUBCOMMAND HOST PORT ... EXTRA` in this process."""
        environment = {"TINY_AUDIO_HOME": str(self.local_home), **(env or {})}
        return CliRunner().invoke(
            cli,
            ["remote", subcommand, *self.args(), *extra],
            env=environment,
            catch_exceptions=False,
        )

    def job_env(self) -> list[str]:
        pairs = [f"{name}={os.environ[name]}" for name in FORWARDED if os.environ.get(name)]
        pairs.append("HF_HUB_OFFLINE=1")
        return [arg for pair in pairs for arg in ("--env", pair)]

    def wait_for_exit(self, session: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # The log's exit line comes a moment before the shell ends and tmux marks the pane.
            log = self.ta("logs", "--session", session, "-n", "400").output
            if EXIT_MARKER in log and f"{session}\trunning" not in self.ta("list").output:
                return log
            time.sleep(1)
        raise AssertionError(f"session {session} did not finish in {timeout} s:\n{log}")


def start_sshd(root: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    host_key, user_key = root / "host_key", root / "user_key"
    for key in (host_key, user_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (root / "authorized_keys").write_text((root / "user_key.pub").read_text())
    port = free_port()
    (root / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\nPidFile {root / 'sshd.pid'}\n"
        "UsePAM no\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
    )
    if os.geteuid() == 0:  # root's sshd insists on its privilege separation directory
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    log = (root / "sshd.log").open("wb")
    process = subprocess.Popen(
        [str(SSHD), "-D", "-e", "-f", str(root / "sshd_config")], stdout=log, stderr=log
    )
    try:
        wait_until_listening(port, process, root / "sshd.log", timeout_s=20)
    except AssertionError:
        process.kill()
        raise
    return process, port, user_key


def make_remote_python(root: Path) -> Path:
    """A venv on the 'host' that sees this project's installed packages (so `pip install -e .`
    there resolves every dependency offline) but gets its own editable install of the copy."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    (site / "project_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # pip reads $prefix/pip.conf: no index, build with the setuptools already installed.
    (venv / "pip.conf").write_text(
        "[global]\nno-index = true\n[install]\nno-build-isolation = false\n"
    )
    return venv / "bin" / "python"


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    root = tmp_path_factory.mktemp("ssh")
    process, port, key = start_sshd(root)
    host = Remote(
        port=port,
        key=key,
        user=getpass.getuser(),
        directory=root / "host" / "tiny-audio",
        python=make_remote_python(root),
        local_home=root / "client-home",
    )
    secret = REPO / UNTRACKED_SECRET  # a file git does not track, as a user's .env would be
    secret.write_text("HF_TOKEN=hf_not_a_real_token\n")
    try:
        result = host.ta("deploy", "--source", str(REPO))
        secret.unlink()
        assert result.exit_code == 0, result.output
        yield host
    finally:
        secret.unlink(missing_ok=True)
        sessions = host.ta("list").output.splitlines()
        for line in sessions:
            name = line.split("\t")[0]
            if name.startswith("ta-test-"):
                host.ta("stop", "--session", name)
        process.terminate()
        process.wait(timeout=10)


UNTRACKED_SECRET = "untracked-test-secret.env"


def git_files() -> set[str]:
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "--cached"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {name for name in listed if (REPO / name).is_file()}


def test_deploy_syncs_what_git_tracks_and_installs_the_copy(remote: Remote) -> None:
    synced = {
        str(path.relative_to(remote.directory))
        for path in remote.directory.rglob("*")
        if path.is_file() and ".egg-info" not in str(path) and "__pycache__" not in str(path)
    }
    assert synced == git_files()
    assert not (remote.directory / ".venv").exists()  # ignored by git, so never shipped
    assert not (remote.directory / UNTRACKED_SECRET).exists()  # untracked: never shipped
    # The remote Python imports the synced copy, not this checkout.
    where = subprocess.run(
        [str(remote.python), "-c", "import tiny_audio; print(tiny_audio.__file__)"],
        capture_output=True,
        text=True,
        cwd="/",
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(remote.directory)


def test_redeploy_sends_only_changes_and_skips_steps(remote: Remote) -> None:
    marker = remote.directory / "pyproject.toml"
    marker.write_text("stale copy")  # as if the remote copy fell behind
    # From a subfolder too: the whole checkout is synced.
    result = remote.ta(
        "deploy", "--source", str(REPO / "tiny_audio"), "--skip-setup", "--skip-deps"
    )
    assert result.exit_code == 0, result.output
    assert "syncing" in result.output and "installing" not in result.output
    assert marker.read_bytes() == (REPO / "pyproject.toml").read_bytes()


TRAIN_SESSION = "ta-test-train"


@pytest.fixture(scope="module")
def trained(remote: Remote) -> str:
    """`ta remote train -e smoke` (real weights), seen running in `list`, waited for; its log."""
    # The smoke preset, shortened further by Hydra overrides that must reach the remote command.
    overrides = ["training.max_steps=2", "training.save_steps=1", "data.dev.max_samples=1"]
    started = remote.ta(
        "train",
        "-e",
        "smoke",
        "--session",
        TRAIN_SESSION,
        "--no-attach",
        *remote.job_env(),
        *overrides,
    )
    assert started.exit_code == 0, started.output
    assert f"started tmux session {TRAIN_SESSION}" in started.output
    assert f"{TRAIN_SESSION}\trunning" in remote.ta("list").output.splitlines()
    return remote.wait_for_exit(TRAIN_SESSION, timeout=900)


@pytest.mark.slow
def test_smoke_training_runs_in_tmux_to_the_end(remote: Remote, trained: str) -> None:
    assert f"{EXIT_MARKER} 0" in trained, trained
    assert "+experiments=smoke training.max_steps=2" in trained  # the command `script` ran
    assert f"{TRAIN_SESSION}\texited 0" in remote.ta("list").output.splitlines()
    tail = remote.ta("logs", "--session", TRAIN_SESSION, "-n", "1")
    assert tail.output.strip().endswith(f"{EXIT_MARKER} 0")
    saved = sorted(p.name for p in (remote.directory / "outputs/smoke").glob("checkpoint-*"))
    assert saved == ["checkpoint-1", "checkpoint-2"]  # max_steps=2, save_steps=1 were applied


@pytest.mark.slow
def test_latest_checkpoint_is_pulled_then_pushed_and_loads_in_a_pipeline(
    remote: Remote, trained: str, tmp_path: Path
) -> None:
    found = remote.ta("checkpoint", "-e", "smoke")
    assert found.exit_code == 0, found.output
    checkpoint = found.stdout.strip()
    assert checkpoint == "outputs/smoke/checkpoint-2"

    # `ta eval` on the host writes into the checkpoint, so the pull brings the figures back.
    session = "ta-test-eval"
    evaluated = remote.ta(
        "eval",
        "-d",
        "real:librivox",
        "-n",
        "1",
        "--session",
        session,
        "--no-attach",
        *remote.job_env(),
    )
    assert evaluated.exit_code == 0, evaluated.output
    log = remote.wait_for_exit(session, timeout=600)
    assert f"{EXIT_MARKER} 0" in log, log
    remote.ta("stop", "--session", session)

    pulled = remote.ta("pull", "-o", str(tmp_path / "outputs"))
    assert pulled.exit_code == 0, pulled.output
    local = Path(pulled.stdout.strip())
    assert local == tmp_path / "outputs" / "smoke" / "checkpoint-2"
    original = remote.directory / checkpoint
    names = sorted(str(p.relative_to(original)) for p in original.rglob("*") if p.is_file())
    assert names == sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file())
    for name in names:
        assert (local / name).read_bytes() == (original / name).read_bytes()
    config = remote.directory / "outputs/smoke/config.yaml"
    assert (local.parent / "config.yaml").read_bytes() == config.read_bytes()

    # The pulled checkpoint is what `ta push` publishes: the card carries its recipe.
    folder = tmp_path / "hub"
    pushed = CliRunner().invoke(
        cli, ["push", "-m", str(local), "--repo-id", "someone/smoke", "--dry-run", str(folder)]
    )
    assert pushed.exit_code == 0, pushed.output
    card = (folder / "README.md").read_text()
    assert "| experiment | smoke |" in card and "| checkpoint step | 2 |" in card
    assert "| real:librivox (test) | 1 |" in card  # the remote eval's figures
    assert not (folder / "training_state.pt").exists()

    clip = next(iter(load_source("real:goforward"))).audio
    script = (
        "import json, sys\n"
        "from transformers import pipeline\n"
        "asr = pipeline('automatic-speech-recognition', model=sys.argv[1], trust_remote_code=True)\n"
        "print(json.dumps(asr(sys.argv[2], max_new_tokens=12)))\n"
    )
    output = run_offline(script, folder, clip, cwd=tmp_path)
    assert set(output) == {"text"} and isinstance(output["text"], str)


def test_a_finished_session_name_can_be_reused_a_running_one_cannot(remote: Remote) -> None:
    session = "ta-test-reuse"
    assert remote.ta("run", "--session", session, "--no-attach", "--", "true").exit_code == 0
    deadline = time.monotonic() + 30
    while f"{session}\texited 0" not in remote.ta("list").output.splitlines():
        assert time.monotonic() < deadline
        time.sleep(0.5)
    again = remote.ta("run", "--session", session, "--no-attach", "--", "sleep", "60")
    assert again.exit_code == 0, again.output
    refused = remote.ta("run", "--session", session, "--no-attach", "--", "true")
    assert refused.exit_code == 1
    assert refused.output.strip().splitlines() == [
        f"error: starting session {session} on 127.0.0.1 failed: session {session} is still "
        "running: attach to it, stop it, or pick another --session"
    ]
    assert remote.ta("stop", "--session", session).exit_code == 0
    assert session not in remote.ta("list").output


def test_a_failed_job_lists_its_exit_status(remote: Remote) -> None:
    session = "ta-test-fail"
    started = remote.ta("run", "--session", session, "--no-attach", "--", "bash", "-c", "exit 3")
    assert started.exit_code == 0, started.output
    remote.wait_for_exit(session, timeout=30)
    assert f"{session}\texited 3" in remote.ta("list").output.splitlines()
    assert remote.ta("stop", "--session", session).exit_code == 0


def test_secrets_reach_the_job_but_no_command_line_or_file(remote: Remote) -> None:
    session = "ta-test-secrets"
    token = "hf_" + secrets.token_hex(16)
    job = 'sleep 3; printf %s "$HF_TOKEN" | sha256sum'
    started = remote.ta(
        "run", "--session", session, "--no-attach", "--", "bash", "-c", job, env={"HF_TOKEN": token}
    )
    assert started.exit_code == 0, started.output
    time.sleep(1)  # the job is sleeping: look at every process's command line now
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            assert token.encode() not in cmdline.read_bytes()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    log = remote.wait_for_exit(session, timeout=60)
    assert hashlib.sha256(token.encode()).hexdigest() in log
    assert not (remote.directory / STATE_DIR / f"{session}.env").exists()
    for path in remote.directory.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path
    remote.ta("stop", "--session", session)


def test_attach_shows_the_live_session_and_detaches(remote: Remote) -> None:
    session = "ta-test-attach"
    job = "for i in $(seq 1 300); do echo tick-$i; sleep 1; done"
    assert (
        remote.ta("run", "--session", session, "--no-attach", "--", "bash", "-c", job).exit_code
        == 0
    )
    environment = {**os.environ, "TINY_AUDIO_HOME": str(remote.local_home), "TERM": "xterm"}
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tiny_audio",
            "remote",
            "attach",
            *remote.args(),
            "--session",
            session,
        ],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=environment,
        start_new_session=True,
    )
    os.close(terminal)
    seen = b""
    deadline = time.monotonic() + 30
    while b"tick-" not in seen and time.monotonic() < deadline:
        if select.select([controller], [], [], 0.5)[0]:
            seen += os.read(controller, 65536)
    assert b"tick-" in seen, seen
    settle = time.monotonic() + 2  # tmux drops keys typed while it is still setting up the terminal
    while time.monotonic() < settle:
        if select.select([controller], [], [], 0.2)[0]:
            seen += os.read(controller, 65536)
    os.write(controller, b"\x02d")  # Ctrl+B then D: detach
    deadline = time.monotonic() + 20
    while process.poll() is None and time.monotonic() < deadline:
        # Keep reading, or a full terminal buffer would block the client on its way out.
        if select.select([controller], [], [], 0.5)[0]:
            try:
                seen += os.read(controller, 65536)
            except OSError:  # the other side closed
                break
    assert process.wait(timeout=5) == 0
    assert b"detached" in seen
    os.close(controller)
    assert f"{session}\trunning" in remote.ta("list").output.splitlines()
    remote.ta("stop", "--session", session)


def test_unreachable_host_is_one_clear_line(tmp_path: Path) -> None:
    environment = {**os.environ, "TINY_AUDIO_HOME": str(tmp_path)}
    closed_port = str(free_port())
    result = subprocess.run(
        [sys.executable, "-m", "tiny_audio", "remote", "list", "127.0.0.1", closed_port],
        capture_output=True,
        text=True,
        env=environment,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: cannot reach root@127.0.0.1 port {closed_port} over ssh: "
        f"ssh: connect to host 127.0.0.1 port {closed_port}: Connection refused"
    ]


def test_no_checkpoint_yet_is_one_clear_line(remote: Remote) -> None:
    result = remote.ta("checkpoint", "-e", "never-trained")
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"error: no checkpoint under {remote.directory}/outputs/never-trained on 127.0.0.1"
    )


def test_a_changed_host_key_is_one_line_that_names_the_fix(remote: Remote, tmp_path: Path) -> None:
    impostor = tmp_path / "impostor"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(impostor)], check=True)
    known_hosts = tmp_path / "remote" / "known_hosts"
    known_hosts.parent.mkdir()
    key_type, key = impostor.with_suffix(".pub").read_text().split()[:2]
    known_hosts.write_text(f"[127.0.0.1]:{remote.port} {key_type} {key}\n")
    home = {"TINY_AUDIO_HOME": str(tmp_path)}

    refused = remote.ta("list", env=home)
    assert refused.exit_code == 1
    fix = f"ssh-keygen -R '[127.0.0.1]:{remote.port}' -f {known_hosts}"
    assert refused.output.strip().splitlines() == [
        f"error: the host key of 127.0.0.1 port {remote.port} changed (a new pod on a reused "
        f"address?); if you expect that, forget the old key with: {fix}"
    ]
    subprocess.run(["bash", "-c", fix], check=True, capture_output=True)
    assert remote.ta("list", env=home).exit_code == 0
