"""Train on a rented GPU host (RunPod or any machine you can reach over SSH): sync the code,
install it, run jobs in tmux sessions that outlive the connection, read their logs and copy
checkpoints back. Everything goes through the system `ssh` and `rsync`, so your SSH keys and
~/.ssh/config work as they do in a terminal."""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import click
from rich.console import Console

from tiny_audio.errors import UserError
from tiny_audio.train.run_folder import CHECKPOINT_GLOB, RUN_CONFIGS, checkpoint_step
from tiny_audio.zoo.cache import cache_home

# Variables copied from your shell into remote jobs; they travel over the SSH connection's stdin
# into a file only the job's user can read, which the job deletes before it starts the command.
SECRET_NAMES = ("HF_TOKEN", "WANDB_API_KEY", "ASSEMBLYAI_API_KEY", "DEEPGRAM_API_KEY")
# Commands the host needs before anything else works; installed with apt-get when missing.
SETUP_PACKAGES = ("tmux", "rsync")
STATE_DIR = ".tiny-audio"  # inside the remote directory: job logs and short-lived env files
OUTPUTS_DIR = "outputs"  # where `ta train` writes outputs/EXPERIMENT/checkpoint-N
DEFAULT_SESSION = "tiny-audio"
SESSION_NAME = re.compile(r"[A-Za-z0-9_-]+")  # safe as a tmux target and as a file name
EXIT_MARKER = "[tiny-audio] job exited with status"
SSH_UNREACHABLE = 255  # ssh's own exit status when it could not connect or authenticate
# Host field -> the option that sets it (host_options), for the commands a hint prints.
LOGIN_OPTIONS = {
    "user": "--user",
    "key": "--key",
    "directory": "--remote-dir",
    "python": "--python",
}

console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Host:
    """One SSH-reachable machine and the directory and Python that tiny-audio uses there."""

    address: str
    port: int
    user: str = "root"
    key: Path | None = None
    directory: str = "~/tiny-audio"
    python: str = "python3"

    @property
    def target(self) -> str:
        return f"{self.user}@{self.address}"

    def command_line(self, subcommand: str, *args: str) -> str:
        """`ta remote SUBCOMMAND HOST PORT ARGS` with every login option that is not the default,
        so a hint can be copied and run as it is."""
        words = ["ta", "remote", subcommand, self.address, str(self.port)]
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in LOGIN_OPTIONS and value != field.default:
                words += [LOGIN_OPTIONS[field.name], str(value)]
        return shlex.join([*words, *args])

    def ssh_args(self) -> list[str]:
        known_hosts = known_hosts_file()
        args = [
            "ssh",
            "-p",
            str(self.port),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-o",
            "ConnectTimeout=15",
            "-o",
            "ServerAliveInterval=30",
            "-o",
            "LogLevel=ERROR",
        ]
        if self.key is not None:
            args += ["-i", str(self.key), "-o", "IdentitiesOnly=yes"]
        return args

    def shell_path(self, relative: str = "") -> str:
        """A path inside the remote directory, quoted for the remote shell ("~/" expanded there)."""
        path = f"{self.directory.rstrip('/')}/{relative}" if relative else self.directory
        if path == "~" or path.startswith("~/"):
            return '"$HOME"' + (shlex.quote(path[1:]) if len(path) > 1 else "")
        return shlex.quote(path)

    def rsync_path(self, relative: str = "") -> str:
        """A path inside the remote directory as rsync's remote side reads it (home-relative)."""
        path = f"{self.directory.rstrip('/')}/{relative}" if relative else self.directory
        if path == "~" or path.startswith("~/"):
            path = path[2:] or "."
        return f"{self.target}:{path}"

    def run(self, script: str, *, stdin: str = "", what: str) -> str:
        """Run a bash script on the host and return its output; a failure becomes one clear line."""
        command = [*self.ssh_args(), self.target, "bash -c " + shlex.quote(script)]
        result = subprocess.run(command, input=stdin, capture_output=True, text=True)
        if result.returncode != 0:
            raise self.failure(what, result.returncode, result.stderr or result.stdout)
        return result.stdout

    def interact(self, script: str) -> int:
        """Run a script with your terminal attached (tmux attach, tail -f)."""
        tty = ["-t"] if sys.stdin.isatty() else []
        command = [*self.ssh_args(), *tty, self.target, "bash -c " + shlex.quote(script)]
        return subprocess.run(command).returncode

    def failure(self, what: str, returncode: int, output: str) -> UserError:
        lines = [line for line in output.strip().splitlines() if line.strip()]
        detail = lines[-1].strip() if lines else f"exit status {returncode}"
        if "REMOTE HOST IDENTIFICATION HAS CHANGED" in output:
            return UserError(
                f"the host key of {self.address} port {self.port} changed (a new pod on a reused "
                f"address?); if you expect that, forget the old key with: ssh-keygen -R "
                f"'[{self.address}]:{self.port}' -f {known_hosts_file()}"
            )
        if returncode == SSH_UNREACHABLE:
            return UserError(f"cannot reach {self.target} port {self.port} over ssh: {detail}")
        return UserError(f"{what} on {self.address} failed: {detail}")


def known_hosts_file() -> Path:
    """Host keys of rented machines live in the cache, apart from ~/.ssh/known_hosts, which
    short-lived pods on reused addresses would otherwise fill with stale entries."""
    directory = cache_home() / "remote"
    directory.mkdir(parents=True, exist_ok=True)
    return directory / "known_hosts"


def require_local(program: str, package: str | None = None) -> None:
    if shutil.which(program) is None:
        raise UserError(f"`{program}` is not installed here (apt-get install {package or program})")


# ---- deploy: setup, sync, deps ------------------------------------------------------------


def setup_host(host: Host) -> None:
    """Install the commands remote jobs rely on, with apt-get when we are root."""
    wanted = " ".join(SETUP_PACKAGES)
    host.run(
        f"""
        missing=""
        for program in {wanted}; do command -v "$program" >/dev/null || missing="$missing $program"; done
        [ -z "$missing" ] && exit 0
        if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
            echo "missing on the host:$missing (install them, or deploy as root)" >&2; exit 1
        fi
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q && apt-get install -y -q $missing
        """,
        what="installing system packages",
    )


def checkout_root(source: Path) -> Path:
    """The top of the git checkout holding `source` (deploy may be run from a subfolder)."""
    result = subprocess.run(
        ["git", "-C", str(source), "rev-parse", "--show-toplevel"], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise UserError(f"{source} is not in a git checkout; deploy syncs the files git tracks")
    return Path(result.stdout.strip())


def project_files(root: Path) -> list[str]:
    """The files git tracks, relative to root: an untracked file (a .env holding a token, say)
    stays on this machine."""
    listed = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z", "--cached"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # A file deleted but not yet committed is still listed; rsync would stop on it.
    return [name for name in listed.split("\0") if name and (root / name).is_file()]


def sync_code(host: Host, source: Path) -> None:
    """Copy a checkout's files to the host (rsync sends only what changed)."""
    require_local("rsync")
    files = project_files(source)
    host.run(f"mkdir -p {host.shell_path()}", what="creating the remote directory")
    command = [
        "rsync",
        "--archive",
        "--compress",
        "--from0",
        "--files-from=-",
        "--rsh",
        shlex.join(host.ssh_args()),
        f"{source}/",
        host.rsync_path() + "/",
    ]
    result = subprocess.run(command, input="\0".join(files), capture_output=True, text=True)
    if result.returncode != 0:
        raise host.failure("syncing the code", result.returncode, result.stderr)


def install_project(host: Host) -> None:
    """pip-install the synced checkout into the host's Python, next to its preinstalled torch."""
    host.run(
        f"cd {host.shell_path()} && {shlex.quote(host.python)} -m pip install -q -e '.[train]'",
        what="installing dependencies",
    )


@contextmanager
def step(message: str) -> Iterator[None]:
    with console.status(message):
        yield
    console.print(f"[green]done[/green] {message}")


def deploy(host: Host, source: Path, *, setup: bool, sync: bool, deps: bool) -> None:
    host.run("true", what="connecting")  # one clear line before any work if unreachable
    if setup:
        with step(f"checking {', '.join(SETUP_PACKAGES)} on {host.address}"):
            setup_host(host)
    if sync:
        root = checkout_root(source)
        with step(f"syncing {root} to {host.address}:{host.directory}"):
            sync_code(host, root)
    if deps:
        with step(f"installing tiny-audio with {host.python} on {host.address}"):
            install_project(host)


# ---- jobs in tmux -------------------------------------------------------------------------


def job_environment(extra: dict[str, str]) -> dict[str, str]:
    """Secrets set in this shell, plus --env values, for the remote job."""
    environment = {name: os.environ[name] for name in SECRET_NAMES if os.environ.get(name)}
    environment.update(extra)
    return environment


def job_log(session: str) -> str:
    """A job's log, relative to the remote directory."""
    return f"{STATE_DIR}/{session}.log"


def start_job(host: Host, session: str, command: list[str], environment: dict[str, str]) -> None:
    """Start `command` in a detached tmux session in the remote directory. Its output goes to the
    pane (a real terminal, so progress bars draw) and, through `script`, to a log file."""
    env_file = f"{STATE_DIR}/{session}.env"
    log_file = job_log(session)
    job = f"""
        set -a; . ./{shlex.quote(env_file)}; set +a; rm -f ./{shlex.quote(env_file)}
        script -qefa -c {shlex.quote(shlex.join(command))} {shlex.quote(log_file)}
        status=$?
        echo "{EXIT_MARKER} $status" | tee -a {shlex.quote(log_file)}
        exit $status
    """
    name = shlex.quote(session)
    env_lines = "".join(
        f"export {key}={shlex.quote(value)}\n" for key, value in environment.items()
    )
    host.run(
        f"""
        set -e
        cd {host.shell_path()}
        mkdir -p {STATE_DIR}
        if tmux has-session -t ={name} 2>/dev/null; then
            if [ "$(tmux display-message -p -t ={name}: '#{{pane_dead}}')" = 1 ]; then
                tmux kill-session -t ={name}
            else
                echo "session {session} is still running: attach to it, stop it, or pick another --session" >&2
                exit 1
            fi
        fi
        rm -f {shlex.quote(env_file)}
        (umask 077; cat > {shlex.quote(env_file)})
        tmux new-session -d -s {name} -c "$PWD" -x 200 -y 50 bash -c {shlex.quote(job)} \\; \\
            set-option -w -t ={name}: remain-on-exit on \\
            || {{ rm -f {shlex.quote(env_file)}; exit 1; }}
        """,
        stdin=env_lines,
        what=f"starting session {session}",
    )


def attach_or_hint(host: Host, session: str, attach: bool) -> None:
    if attach and sys.stdin.isatty():
        attach_session(host, session)
        return
    click.echo(  # not wrapped: the commands are copied as they are
        f"started tmux session {session} on {host.address}; follow it with "
        f"`{host.command_line('attach', '--session', session)}` or "
        f"`{host.command_line('logs', '--session', session)}`",
        err=True,
    )


def attach_session(host: Host, session: str) -> None:
    console.print("detach with Ctrl+B then D; the job keeps running")
    status = host.interact(f"exec tmux attach-session -t ={shlex.quote(session)}")
    if status == SSH_UNREACHABLE:
        raise UserError(f"cannot reach {host.target} port {host.port} over ssh")
    if status != 0:
        raise UserError(f"no session {session} on {host.address} (see `ta remote list`)")


def list_sessions(host: Host) -> list[tuple[str, str]]:
    """(session, state) for every tmux session on the host; state is `running` or `exited N`."""
    output = host.run(
        "tmux list-panes -a -F '#{session_name}|#{pane_dead}|#{pane_dead_status}' 2>/dev/null || true",
        what="listing sessions",
    )
    sessions = []
    for line in output.splitlines():
        name, dead, status = line.split("|")
        if dead == "1" and not status:
            # tmux marks a pane dead when its terminal closes, a moment before it reaps the
            # process and learns the status; the job's log already holds it.
            status = exit_status_from_log(host, name)
        sessions.append((name, f"exited {status}" if dead == "1" else "running"))
    return sessions


def exit_status_from_log(host: Host, session: str) -> str:
    """The status in the job log's exit line, or `?` when the job died before writing it."""
    log_file = host.shell_path(job_log(session))
    last = host.run(f"tail -n 1 {log_file} 2>/dev/null || true", what="reading the log")
    marker = re.search(re.escape(EXIT_MARKER) + r" (\d+)", last)
    return marker.group(1) if marker else "?"


def read_log(host: Host, session: str, lines: int) -> str:
    log_file = host.shell_path(job_log(session))
    return host.run(
        f"[ -f {log_file} ] || {{ echo 'no log for session {session}' >&2; exit 1; }}; "
        f"tail -n {lines} {log_file}",
        what="reading the log",
    )


def stop_session(host: Host, session: str) -> None:
    host.run(f"tmux kill-session -t ={shlex.quote(session)}", what=f"stopping session {session}")


# ---- checkpoints --------------------------------------------------------------------------


def latest_checkpoint(host: Host, experiment: str | None = None) -> str:
    """The newest checkpoint-N directory under the remote outputs, relative to the remote dir."""
    outputs = f"{OUTPUTS_DIR}/{experiment}" if experiment else OUTPUTS_DIR
    listing = host.run(
        f"cd {host.shell_path()} && [ -d {shlex.quote(outputs)} ] && "
        f"find {shlex.quote(outputs)} -type d -name {shlex.quote(CHECKPOINT_GLOB)} "
        "-printf '%T@ %p\\n' || true",
        what="looking for checkpoints",
    )
    found = []
    for line in listing.splitlines():
        modified, path = line.split(" ", 1)
        step = checkpoint_step(path.rsplit("/", 1)[-1])  # None for a staging folder
        if step is not None:
            found.append((float(modified), step, path))
    if not found:
        raise UserError(f"no checkpoint under {host.directory}/{outputs} on {host.address}")
    return max(found)[2]


def pull_checkpoint(host: Host, checkpoint: str, destination: Path) -> Path:
    """Copy a remote checkpoint into destination/EXPERIMENT/checkpoint-N, with the experiment's
    training config beside it (`ta push` puts that recipe in the model card). Resumable."""
    require_local("rsync")
    remote = PurePosixPath(checkpoint)
    local_parent = destination / remote.parent.name
    local_parent.mkdir(parents=True, exist_ok=True)

    def source(name: str) -> str:  # "/./" marks where --relative starts the copied path
        path = f"{remote.parent}/./{name}"
        return f"{host.target}:{path}" if remote.is_absolute() else host.rsync_path(path)

    progress = ["--info=progress2"] if sys.stdout.isatty() else []
    command = [
        "rsync",
        "--archive",
        "--copy-links",  # outputs/EXPERIMENT/best is a link to a checkpoint
        "--compress",
        "--partial",
        "--relative",
        "--ignore-missing-args",  # the training config is optional
        *progress,
        "--rsh",
        shlex.join(host.ssh_args()),
        source(remote.name),
        *(source(name) for name in RUN_CONFIGS),
        f"{local_parent}/",
    ]
    result = subprocess.run(
        command, stdout=None if progress else subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    if result.returncode != 0:
        raise host.failure(f"copying {checkpoint}", result.returncode, result.stderr)
    local = local_parent / remote.name
    if not local.is_dir():
        raise UserError(f"no checkpoint {checkpoint} on {host.address}")
    return local


# ---- command line -------------------------------------------------------------------------


def host_options(command: F) -> F:
    """HOST PORT and how to log in, shared by every subcommand, which receives them as one `host`."""
    decorators = [
        click.argument("address", metavar="HOST"),
        click.argument("port", type=int),
        click.option("--user", default="root", show_default=True, envvar="TINY_AUDIO_REMOTE_USER"),
        click.option(
            "--key",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            envvar="TINY_AUDIO_REMOTE_KEY",
            help="SSH private key (default: your ssh agent and ~/.ssh).",
        ),
        click.option(
            "--remote-dir",
            default="~/tiny-audio",
            show_default=True,
            envvar="TINY_AUDIO_REMOTE_DIR",
            help="Where the code lives on the host.",
        ),
        click.option(
            "--python",
            default="python3",
            show_default=True,
            envvar="TINY_AUDIO_REMOTE_PYTHON",
            help="The host's Python (RunPod images: the system python3 with CUDA torch).",
        ),
    ]

    @functools.wraps(command)
    def with_host(
        address: str,
        port: int,
        user: str,
        key: Path | None,
        remote_dir: str,
        python: str,
        **rest: Any,
    ) -> Any:
        return command(make_host(address, port, user, key, remote_dir, python), **rest)

    wrapped: Any = with_host
    for decorator in reversed(decorators):
        wrapped = decorator(wrapped)
    return wrapped


def make_host(
    address: str, port: int, user: str, key: Path | None, remote_dir: str, python: str
) -> Host:
    require_local("ssh")
    return Host(address, port, user, key.expanduser() if key else None, remote_dir, python)


def check_session(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not SESSION_NAME.fullmatch(value):
        raise click.BadParameter("use letters, digits, '-' and '_'")
    return value


session_option = click.option(
    "--session",
    default=DEFAULT_SESSION,
    show_default=True,
    callback=check_session,
    help="tmux session name (also names the job's log).",
)
env_option = click.option(
    "--env",
    "env_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help=f"Extra environment for the job ({', '.join(SECRET_NAMES)} are passed when set).",
)
attach_option = click.option(
    "--no-attach", is_flag=True, help="Start the job and return instead of attaching to it."
)


def parse_env(pairs: tuple[str, ...]) -> dict[str, str]:
    environment = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise UserError(f"--env {pair!r}: expected KEY=VALUE")
        environment[key] = value
    return environment


def tiny_audio_command(host: Host, *args: str) -> list[str]:
    """`ta ARGS` as the host runs it, through the Python that deploy installed into."""
    return [host.python, "-m", "tiny_audio", *args]


@click.group()
def remote() -> None:
    """Train on a GPU host over SSH (RunPod or any machine): deploy, train, attach, pull."""


@remote.command("deploy")
@host_options
@click.option(
    "--source",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=".",
    help="The checkout to sync (default: the current directory).",
)
@click.option("--skip-setup", is_flag=True, help="Do not check or install tmux and rsync.")
@click.option("--skip-sync", is_flag=True, help="Do not copy the code.")
@click.option("--skip-deps", is_flag=True, help="Do not pip-install the project.")
def deploy_command(
    host: Host,
    source: Path,
    skip_setup: bool,
    skip_sync: bool,
    skip_deps: bool,
) -> None:
    """Prepare HOST: system packages, the code (files git tracks) and its Python dependencies."""
    deploy(host, source, setup=not skip_setup, sync=not skip_sync, deps=not skip_deps)
    click.echo(f"ready: `{host.command_line('train', '-e', 'EXPERIMENT')}`", err=True)


@remote.command("train", context_settings={"ignore_unknown_options": True})
@host_options
@click.option(
    "-e",
    "--experiment",
    default="mlp",
    show_default=True,
    help="tiny_audio/configs/experiments/NAME.yaml",
)
@session_option
@env_option
@attach_option
@click.argument("overrides", nargs=-1, type=click.UNPROCESSED)
def train_command(
    host: Host,
    experiment: str,
    session: str,
    env_pairs: tuple[str, ...],
    no_attach: bool,
    overrides: tuple[str, ...],
) -> None:
    """Run `ta train +experiments=EXPERIMENT OVERRIDES...` on HOST in a tmux session."""
    command = tiny_audio_command(host, "train", f"+experiments={experiment}", *overrides)
    start_job(host, session, command, job_environment(parse_env(env_pairs)))
    attach_or_hint(host, session, attach=not no_attach)


@remote.command("eval")
@host_options
@click.option("-m", "--model", "checkpoint", help="Remote checkpoint (default: the latest).")
@click.option("-d", "--dataset", "datasets", multiple=True, required=True)
@click.option("-n", "--max-samples", type=int)
@session_option
@env_option
@attach_option
def eval_command(
    host: Host,
    checkpoint: str | None,
    datasets: tuple[str, ...],
    max_samples: int | None,
    session: str,
    env_pairs: tuple[str, ...],
    no_attach: bool,
) -> None:
    """Run `ta eval` on HOST; results land in CHECKPOINT/eval, so `pull` brings them back for `ta push`."""
    checkpoint = checkpoint or latest_checkpoint(host)
    args = ["eval", "-m", checkpoint, "-o", f"{checkpoint}/eval"]
    for dataset in datasets:
        args += ["-d", dataset]
    if max_samples is not None:
        args += ["-n", str(max_samples)]
    start_job(host, session, tiny_audio_command(host, *args), job_environment(parse_env(env_pairs)))
    attach_or_hint(host, session, attach=not no_attach)


@remote.command("run", context_settings={"ignore_unknown_options": True})
@host_options
@session_option
@env_option
@attach_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run_command(
    host: Host,
    session: str,
    env_pairs: tuple[str, ...],
    no_attach: bool,
    command: tuple[str, ...],
) -> None:
    """Run any COMMAND in the remote directory in a tmux session (e.g. -- nvidia-smi -l 5)."""
    start_job(host, session, list(command), job_environment(parse_env(env_pairs)))
    attach_or_hint(host, session, attach=not no_attach)


@remote.command("attach")
@host_options
@session_option
def attach_command(host: Host, session: str) -> None:
    """Attach your terminal to a job's tmux session (detach: Ctrl+B then D)."""
    attach_session(host, session)


@remote.command("logs")
@host_options
@session_option
@click.option("-n", "--lines", default=50, show_default=True)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (Ctrl+C stops).")
def logs_command(
    host: Host,
    session: str,
    lines: int,
    follow: bool,
) -> None:
    """Print the end of a job's log without attaching."""
    if follow:
        host.interact(f"tail -n {lines} -F {host.shell_path(job_log(session))}")
        return
    click.echo(read_log(host, session, lines), nl=False)


@remote.command("list")
@host_options
def list_command(host: Host) -> None:
    """List the tmux sessions on HOST and whether their jobs still run."""
    sessions = list_sessions(host)
    if not sessions:
        click.echo("no tmux sessions")
    for name, state in sessions:
        click.echo(f"{name}\t{state}")


@remote.command("stop")
@host_options
@session_option
def stop_command(host: Host, session: str) -> None:
    """End a job's tmux session (and the job with it)."""
    stop_session(host, session)


@remote.command("checkpoint")
@host_options
@click.option("-e", "--experiment", help="Only look under outputs/EXPERIMENT.")
def checkpoint_command(
    host: Host,
    experiment: str | None,
) -> None:
    """Print the newest checkpoint on HOST (relative to the remote directory)."""
    click.echo(latest_checkpoint(host, experiment))


@remote.command("pull")
@host_options
@click.argument("checkpoint", required=False)
@click.option("-e", "--experiment", help="With no CHECKPOINT: the latest of this experiment.")
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=OUTPUTS_DIR,
    show_default=True,
)
def pull_command(
    host: Host,
    checkpoint: str | None,
    experiment: str | None,
    output_dir: Path,
) -> None:
    """Copy CHECKPOINT (default: the latest) to OUTPUT_DIR/EXPERIMENT/checkpoint-N."""
    checkpoint = checkpoint or latest_checkpoint(host, experiment)
    click.echo(pull_checkpoint(host, checkpoint, output_dir))
