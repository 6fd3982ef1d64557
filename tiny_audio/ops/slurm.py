"""Train on a Slurm cluster: `submit` writes an sbatch script into the run's folder that starts
`ta train` under torchrun on every allocated node, and `status`, `logs` and `cancel` follow the
job. Jobs are submitted with --requeue and always resume from the run's newest checkpoint, so a
preempted or requeued job carries on where it stopped."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
from rich.console import Console

from tiny_audio.errors import UserError
from tiny_audio.ops.remote import env_option, parse_env, require_local
from tiny_audio.zoo.cache import cache_home

SCRIPT_NAME = "train.sbatch"  # in OUTPUT_DIR/slurm/, beside the jobs' logs (JOBID.out)
SLURM_FOLDER = "slurm"
CLIENT_PACKAGE = "slurm-client"  # the Debian package with sbatch, squeue, sacct, scontrol, scancel
# torchrun's rendezvous port when MASTER_PORT is not set: derived from the job id, so two jobs
# sharing a node are unlikely to collide.
PORT_BASE, PORT_SPAN = 20000, 10000
RESUME = "training.resume_from_checkpoint=latest"
FIELD = re.compile(r"(\w+)=(\S*)")  # one KEY=VALUE of `scontrol --oneliner show job`

console = Console(stderr=True)


def run_slurm(
    command: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    require_local(command, CLIENT_PACKAGE)
    return subprocess.run([command, *args], env=env, capture_output=True, text=True)


def refusal(command: str, stderr: str) -> UserError:
    """Slurm's first complaint ("sbatch: error: invalid partition specified: gpu"), prefix dropped."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    complaints = [line for line in lines if re.match(rf"{command}: (error|fatal):", line)]
    detail = (complaints or lines or ["no output"])[0]
    return UserError(f"{command} failed: {re.sub(rf'^{command}: ((error|fatal): )?', '', detail)}")


# ---- the batch script ---------------------------------------------------------------------


def batch_script(
    directives: list[str], python: str, overrides: list[str], workdir: Path, log: Path
) -> str:
    """One torchrun per node (srun, one task each), which starts --ntasks-per-node processes
    there; the nodes meet at the first node of the allocation (c10d rendezvous)."""
    header = [
        *directives,
        f"--chdir={workdir}",
        f"--output={log}",
        "--open-mode=append",  # a requeued run adds to the log rather than replacing it
        "--requeue",
        "--export=ALL",  # secrets travel in the job's environment, never in this file
    ]
    return "\n".join(
        [
            "#!/bin/bash",
            *(f"#SBATCH {directive}" for directive in header),
            "# Written by `ta slurm submit`. A requeued job runs this again and resumes from the",
            "# newest checkpoint in the run's folder.",
            "set -eu",
            'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
            f"MASTER_PORT=${{MASTER_PORT:-$(({PORT_BASE} + SLURM_JOB_ID % {PORT_SPAN}))}}",
            'echo "[tiny-audio] job $SLURM_JOB_ID run $((${SLURM_RESTART_COUNT:-0} + 1)):'
            " $SLURM_NNODES node(s) x $SLURM_NTASKS_PER_NODE process(es),"
            ' rendezvous $MASTER_ADDR:$MASTER_PORT"',
            'exec srun --nodes="$SLURM_NNODES" --ntasks="$SLURM_NNODES" --ntasks-per-node=1 \\',
            '    --cpus-per-task="$((SLURM_NTASKS_PER_NODE * SLURM_CPUS_PER_TASK))" \\',
            "    --kill-on-bad-exit=1 \\",
            f"    {shlex.join([python, '-m', 'torch.distributed.run'])} \\",
            '    --nnodes="$SLURM_NNODES" --nproc_per_node="$SLURM_NTASKS_PER_NODE" \\',
            '    --rdzv_backend=c10d --rdzv_endpoint="$MASTER_ADDR:$MASTER_PORT" \\',
            '    --rdzv_id="$SLURM_JOB_ID" \\',
            f"    {shlex.join(['-m', 'tiny_audio.train', *overrides])}",
            "",
        ]
    )


def run_folder(overrides: list[str]) -> Path:
    """The run's output folder as `ta train` will compose it (a bad override fails here, at
    submit time, rather than in the queue)."""
    from tiny_audio.train.main import compose

    return Path(compose(overrides).training.output_dir).resolve()


# ---- job records --------------------------------------------------------------------------


def record_file(job_id: str) -> Path:
    """Where submit notes a job's log, for `logs` once the controller has forgotten the job."""
    return cache_home() / SLURM_FOLDER / f"{job_id}.log-path"


def job_fields(job_id: str) -> dict[str, str] | None:
    """`scontrol show job` as a dict, or None when the controller does not know the job (any
    more: it forgets finished jobs after MinJobAge, 5 minutes by default)."""
    result = run_slurm("scontrol", "--oneliner", "show", "job", job_id)
    return dict(FIELD.findall(result.stdout)) if result.returncode == 0 else None


def log_path(job_id: str) -> Path:
    fields = job_fields(job_id)
    if fields and fields.get("StdOut"):
        return Path(fields["StdOut"])
    record = record_file(job_id)
    if not record.is_file():
        raise UserError(f"job {job_id} is unknown to Slurm and was not submitted from here")
    return Path(record.read_text())


# ---- status -------------------------------------------------------------------------------


def job_state(job_id: str) -> str:
    """One line: from squeue while queued or running, then scontrol while the controller remembers
    the finished job, then sacct (where the cluster keeps accounting)."""
    queued = run_slurm("squeue", "--noheader", "--jobs", job_id, "--format=%T|%M|%N|%r").stdout
    if queued.strip():  # empty once the job has finished; an unknown job is an error (no stdout)
        state, elapsed, nodes, reason = queued.strip().split("|")
        where = f"on {nodes}" if nodes else f"waiting: {reason}"
        return f"job {job_id}: {state}, elapsed {elapsed}, {where}"
    fields = job_fields(job_id)
    if fields is not None:
        return (
            f"job {job_id}: {fields.get('JobState')}, exit code {fields.get('ExitCode')}, "
            f"elapsed {fields.get('RunTime')}, restarts {fields.get('Restarts')}"
        )
    accounted = run_slurm(
        "sacct",
        "--noheader",
        "--parsable2",
        "--allocations",
        "--jobs",
        job_id,
        "--format=State,ExitCode,Elapsed",
    ).stdout  # empty, with a line on stderr, where the cluster keeps no accounting
    if accounted.strip():
        state, exit_code, elapsed = accounted.strip().splitlines()[-1].split("|")
        return f"job {job_id}: {state}, exit code {exit_code}, elapsed {elapsed}"
    raise UserError(f"Slurm has no record of job {job_id}")


# ---- command line -------------------------------------------------------------------------


def check_job_id(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value.isdigit():
        raise click.BadParameter("a job id is a number")
    return value


job_id_argument = click.argument("job_id", metavar="JOBID", callback=check_job_id)


def check_sbatch_args(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[str, ...]:
    for arg in value:
        # Each becomes an #SBATCH line: a line break would add commands to the script.
        if not arg.startswith("-") or "\n" in arg:
            raise click.BadParameter(f"{arg!r}: expected one sbatch option such as --gres=gpu:4")
    return value


@click.group()
def slurm() -> None:
    """Train on a Slurm cluster: submit, status, logs, cancel. Your environment, tokens included,
    reaches the job through Slurm, never through a file."""


@slurm.command("submit", context_settings={"ignore_unknown_options": True})
@click.option(
    "-e", "--experiment", default="mlp", show_default=True, help="a preset (ta train --help)"
)
@click.option("-p", "--partition", help="Slurm partition (default: the cluster's default).")
@click.option("-N", "--nodes", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--ntasks-per-node",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Training processes per node (one per GPU).",
)
@click.option("-c", "--cpus-per-task", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("-t", "--time", "time_limit", help="Time limit, e.g. 1-00:00:00 (sbatch --time).")
@click.option("-J", "--job-name", help="Default: ta-EXPERIMENT.")
@click.option(
    "--sbatch-arg",
    "sbatch_args",
    multiple=True,
    callback=check_sbatch_args,
    metavar="OPTION",
    help="Any other sbatch option, once each, e.g. --sbatch-arg=--gres=gpu:4.",
)
@env_option
@click.argument("overrides", nargs=-1, type=click.UNPROCESSED)
def submit_command(
    experiment: str,
    partition: str | None,
    nodes: int,
    ntasks_per_node: int,
    cpus_per_task: int,
    time_limit: str | None,
    job_name: str | None,
    sbatch_args: tuple[str, ...],
    env_pairs: tuple[str, ...],
    overrides: tuple[str, ...],
) -> None:
    """Queue `ta train` on the cluster and print the job id.

    Runs `ta train +experiments=EXPERIMENT OVERRIDES...` on NODES x NTASKS_PER_NODE processes,
    from this checkout and this Python, which the cluster's nodes must see at the same paths."""
    require_local("sbatch", CLIENT_PACKAGE)
    train_overrides = [f"+experiments={experiment}", *overrides, RESUME]
    folder = run_folder(train_overrides) / SLURM_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    directives = [
        f"--job-name={job_name or f'ta-{experiment}'}",
        f"--nodes={nodes}",
        f"--ntasks-per-node={ntasks_per_node}",
        f"--cpus-per-task={cpus_per_task}",
        *([f"--partition={partition}"] if partition else []),
        *([f"--time={time_limit}"] if time_limit else []),
        *sbatch_args,
    ]
    log_pattern = folder / "%j.out"
    script = folder / SCRIPT_NAME
    script.write_text(
        batch_script(directives, sys.executable, train_overrides, Path.cwd(), log_pattern)
    )
    environment = {**os.environ, **parse_env(env_pairs)}
    submitted = run_slurm("sbatch", "--parsable", str(script), env=environment)
    if submitted.returncode != 0:
        raise refusal("sbatch", submitted.stderr)
    job_id = submitted.stdout.strip().split(";")[0]  # --parsable: "ID" or "ID;CLUSTER"
    log = Path(str(log_pattern).replace("%j", job_id))
    record = record_file(job_id)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(str(log))
    console.print(
        f"submitted job [bold]{job_id}[/bold] ({script}); follow it with "
        f"`ta slurm status {job_id}` and `ta slurm logs -f {job_id}` (log: {log})"
    )
    click.echo(job_id)


@slurm.command("status")
@job_id_argument
def status_command(job_id: str) -> None:
    """Show the job's state (pending, running, completed, failed, cancelled...)."""
    click.echo(job_state(job_id))


@slurm.command("logs")
@job_id_argument
@click.option("-n", "--lines", type=click.IntRange(min=0), default=50, show_default=True)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (Ctrl+C stops).")
def logs_command(job_id: str, lines: int, follow: bool) -> None:
    """Print the end of the job's output; a requeued job's runs follow one another."""
    log = log_path(job_id)
    if follow:
        subprocess.run(["tail", "-n", str(lines), "-F", str(log)])
        return
    if not log.is_file():
        raise UserError(f"job {job_id} has written no output yet ({log})")
    tail = subprocess.run(
        ["tail", "-n", str(lines), str(log)], capture_output=True, text=True, errors="replace"
    )
    click.echo(tail.stdout, nl=False)


@slurm.command("cancel")
@job_id_argument
def cancel_command(job_id: str) -> None:
    """Cancel the job; its checkpoints stay, and a new submit resumes from them."""
    # scancel exits 0 even for a finished or unknown job; --verbose at least says so.
    result = run_slurm("scancel", "--verbose", job_id)
    if result.returncode != 0 or "error:" in result.stderr:
        raise refusal("scancel", result.stderr)
    console.print(f"cancelled job {job_id}")
