"""`ta slurm` against a real single-node Slurm on 127.0.0.1: munged, slurmctld and slurmd started
here with a throwaway key and a config of their own. The jobs train the smoke preset on the real
zoo models, two processes under torchrun."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers import wait_until
from ports import free_port

from tiny_audio.cli import cli
from tiny_audio.train import run_folder
from tiny_audio.zoo.cache import HOME_VARIABLE, cache_home

pytestmark = pytest.mark.slurm

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scontrol", "scancel", "sinfo")
# The daemons live in sbin, which a user's PATH may leave out.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
# The jobs find the cached zoo models; the client keeps its job records in a folder of its own.
JOB_ENV = ("--env", f"{HOME_VARIABLE}={cache_home()}", "--env", "HF_HUB_OFFLINE=1")
# The smoke preset, made cheaper: no encoder cache written into the shared model cache.
SMOKE = ("-e", "smoke", "--ntasks-per-node", "2", "training.cache_encoder_outputs=false")
FINISHED = re.compile(r"job \d+: (COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY)")


@dataclass
class Cluster:
    root: Path
    client_home: Path

    def ta(self, *args: str, env: dict[str, str] | None = None) -> Result:
        """`ta slurm ARGS` in this process."""
        return CliRunner().invoke(
            cli,
            ["slurm", *args],
            env={HOME_VARIABLE: str(self.client_home), **(env or {})},
            catch_exceptions=False,
        )

    def submit(self, *args: str) -> str:
        result = self.ta("submit", *SMOKE, *JOB_ENV, *args)
        assert result.exit_code == 0, result.output
        return result.stdout.strip()

    def wait_for(self, job_id: str, pattern: re.Pattern[str], timeout_s: float) -> str:
        seen = [""]

        def status() -> str | None:
            seen[0] = self.ta("status", job_id).stdout.strip()
            return seen[0] if pattern.search(seen[0]) else None

        def explain() -> str:
            logs = self.ta("logs", job_id, "-n", "60").output
            return f"job {job_id}: no {pattern.pattern} ({seen[0]}):\n{logs}"

        return wait_until(status, timeout_s, explain, interval_s=1)

    def logs(self) -> str:
        return "\n".join(
            f"== {log.name}\n{log.read_text(errors='replace')[-3000:]}"
            for log in sorted(self.root.glob("*.log"))
        )


def slurm_config(root: Path, socket: Path) -> str:
    return f"""\
ClusterName=tiny-audio-test
SlurmctldHost=localhost
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
# cred_expire: a requeued job waits this long before it may start again (default 120 s)
AuthInfo=socket={socket},cred_expire=5
StateSaveLocation={root / "state"}
SlurmdSpoolDir={root / "spool"}
SlurmctldPidFile={root / "slurmctld.pid"}
SlurmdPidFile={root / "slurmd.pid"}
SlurmctldLogFile={root / "slurmctld.log"}
SlurmdLogFile={root / "slurmd.log"}
# No cgroups in a container: track job processes by their parent ids, bind no tasks to CPUs.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
AccountingStorageType=accounting_storage/none
MpiDefault=none
# Schedule often, so a requeued job starts as soon as it is eligible.
SchedulerParameters=sched_interval=1
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def start(root: Path, name: str, *args: str) -> subprocess.Popen[bytes]:
    with (root / f"{name}.out.log").open("wb") as out:
        command = [shutil.which(name, path=SEARCH_PATH) or name, *args]
        return subprocess.Popen(command, stdout=out, stderr=out)


def wait_until_idle(daemons: dict[str, subprocess.Popen[bytes]], cluster: Cluster) -> None:
    def idle() -> bool:
        for name, daemon in daemons.items():
            assert daemon.poll() is None, f"{name} exited:\n{cluster.logs()}"
        sinfo = subprocess.run(
            ["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True
        )
        return sinfo.stdout.strip() == "idle"

    wait_until(idle, 60, lambda: f"the node never became idle:\n{cluster.logs()}", interval_s=0.5)


def stop_cluster(daemons: dict[str, subprocess.Popen[bytes]]) -> None:
    """Cancel what is left and wait for it to end, so no job step outlives its slurmd."""
    controller = daemons.get("slurmctld")
    if controller is not None and controller.poll() is None:
        queued = subprocess.run(
            ["squeue", "--noheader", "--format=%i"], capture_output=True, text=True
        )
        if queued.stdout.split():
            subprocess.run(["scancel", *queued.stdout.split()])
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                left = subprocess.run(["squeue", "--noheader"], capture_output=True, text=True)
                if not left.stdout.strip():
                    break
                time.sleep(0.5)
    for daemon in reversed(daemons.values()):
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    missing = [name for name in DAEMONS + CLIENTS if not shutil.which(name, path=SEARCH_PATH)]
    if missing:
        pytest.skip(f"Slurm is not installed (apt-get install slurm-wlm munge): {missing}")
    # munged wants every folder above its socket open to all, which pytest's tmp_path is not.
    with tempfile.TemporaryDirectory(prefix="tiny-audio-slurm-") as name:
        root = Path(name)
        root.chmod(0o755)
        for folder in ("state", "spool", "munge"):
            (root / folder).mkdir()
        key = root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        socket = root / "munge.socket"
        conf = root / "slurm.conf"
        conf.write_text(slurm_config(root, socket))
        found = Cluster(root, root / "client-home")
        daemons: dict[str, subprocess.Popen[bytes]] = {}
        with pytest.MonkeyPatch.context() as environment:
            environment.setenv("SLURM_CONF", str(conf))  # for every Slurm command and the jobs
            try:
                daemons["munged"] = start(
                    root, "munged", "--foreground", f"--key-file={key}", f"--socket={socket}",
                    f"--pid-file={root / 'munged.pid'}", f"--seed-file={root / 'munge' / 'seed'}",
                    f"--log-file={root / 'munged.log'}",
                )  # fmt: skip
                # Slurm's daemons authenticate through munged's socket from the start.
                wait_until(socket.exists, 20, found.logs, daemons["munged"])
                daemons["slurmctld"] = start(root, "slurmctld", "-D", "-f", str(conf))
                daemons["slurmd"] = start(root, "slurmd", "-D", "-f", str(conf), "-N", "localhost")
                wait_until_idle(daemons, found)
                yield found
            finally:
                stop_cluster(daemons)


def test_without_sbatch_submit_is_one_clear_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["slurm", "submit", "-e", "smoke"], env={"PATH": str(tmp_path)}
    )
    assert result.exit_code == 1
    assert result.output == "error: `sbatch` is not installed here (apt-get install slurm-client)\n"


def test_refusals_are_one_clear_line(cluster: Cluster, tmp_path: Path) -> None:
    refused = cluster.ta("submit", "-e", "smoke", "-p", "nope", f"training.output_dir={tmp_path}")
    assert refused.exit_code == 1
    assert refused.output.splitlines() == [
        "error: sbatch failed: invalid partition specified: nope"
    ]
    assert cluster.ta("status", "999999").output == "error: Slurm has no record of job 999999\n"
    assert cluster.ta("logs", "999999").output == (
        "error: job 999999 is unknown to Slurm and was not submitted from here\n"
    )
    cancelled = cluster.ta("cancel", "999999")
    assert cancelled.exit_code == 1
    assert cancelled.output == (
        "error: scancel failed: Kill job error on job id 999999: Invalid job id specified\n"
    )


def test_two_task_job_trains_the_smoke_preset(cluster: Cluster, tmp_path: Path) -> None:
    output = tmp_path / "smoke"
    job_id = cluster.submit(
        f"training.output_dir={output}",
        "training.max_steps=2",
        "training.save_steps=2",
        "training.eval_steps=2",
        "data.dev.max_samples=1",
    )
    script = (output / "slurm" / "train.sbatch").read_text()
    assert "#SBATCH --requeue" in script and "training.resume_from_checkpoint=latest" in script
    status = cluster.wait_for(job_id, FINISHED, timeout_s=600)
    assert status.startswith(f"job {job_id}: COMPLETED, exit code 0:0"), status
    log = cluster.ta("logs", job_id, "-n", "1000").stdout
    assert f"[tiny-audio] job {job_id} run 1: 1 node(s) x 2 process(es)" in log
    assert "training smoke: 5 examples" in log and "2 process(es)" in log
    assert "dev WER" in log and log.count(f"best checkpoint: {output / 'best'}") == 2
    assert [path.name for path in run_folder.checkpoints(output)] == ["checkpoint-2"]
    # What `logs` reads once the controller has forgotten the job.
    record = cluster.client_home / "slurm" / f"{job_id}.log-path"
    assert record.read_text() == str(output / "slurm" / f"{job_id}.out")


def test_cancelled_then_requeued_job_resumes_from_its_checkpoint(
    cluster: Cluster, tmp_path: Path
) -> None:
    output = tmp_path / "requeued"
    job_id = cluster.submit(
        f"training.output_dir={output}",
        "training.max_steps=4",
        "training.save_steps=1",
        "data.dev.max_samples=0",  # no dev set: nothing to evaluate, faster steps
    )
    wait_until(
        lambda: run_folder.checkpoints(output),
        600,
        lambda: cluster.ta("logs", job_id).output,
        interval_s=0.2,
    )
    running = cluster.ta("status", job_id).stdout
    assert re.fullmatch(rf"job {job_id}: RUNNING, elapsed [\d:]+, on localhost\n", running)
    cancelled = cluster.ta("cancel", job_id)
    assert cancelled.exit_code == 0, cancelled.output
    status = cluster.wait_for(job_id, FINISHED, timeout_s=60)
    assert status.startswith(f"job {job_id}: CANCELLED"), status
    stopped_at = run_folder.latest_checkpoint(output)
    assert stopped_at is not None and stopped_at.name != "checkpoint-4"

    subprocess.run(["scontrol", "requeue", job_id], check=True)
    status = cluster.wait_for(job_id, FINISHED, timeout_s=600)
    assert status.startswith(f"job {job_id}: COMPLETED, exit code 0:0"), status
    assert status.endswith("restarts 1"), status
    log = cluster.ta("logs", job_id, "-n", "1000").stdout
    first, _, second = log.partition(f"[tiny-audio] job {job_id} run 2:")
    assert "resumed from" not in first and "CANCELLED" in first, log
    assert f"resumed from {stopped_at} at step {stopped_at.name.split('-')[1]}" in second, log
    assert (output / "checkpoint-4").is_dir()
