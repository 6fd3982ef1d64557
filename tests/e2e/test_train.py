"""Training: the smoke preset, resume after SIGKILL, a kill during a save, 2-process DDP, stages."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import tiny_overrides
from ports import free_port

from tiny_audio.train import checkpoint as ckpt
from tiny_audio.train import run_folder
from tiny_audio.train.data import LengthGroupedBatches
from tiny_audio.train.main import CONFIG_DIR, EXPERIMENTS_DIR, check_keys, compose

REPO = Path(__file__).resolve().parents[2]


# The same training command under each multi-process launcher, two CPU processes (gloo).
LAUNCHERS = {
    "torchrun": ["-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port={port}"],
    "accelerate": [
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(CONFIG_DIR / "accelerate" / "cpu2.yaml"),
        "--main_process_port={port}",
    ],
}


def run_train(
    overrides: list[str], tmp_home: Path, launcher: str | None = None, **popen: object
) -> subprocess.Popen:
    env = dict(os.environ, TINY_AUDIO_HOME=str(tmp_home), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    port = free_port()
    launch = [arg.format(port=port) for arg in LAUNCHERS[launcher]] if launcher else []
    command = [sys.executable, *launch, "-m", "tiny_audio.train", *overrides]
    return subprocess.Popen(
        command,
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )  # type: ignore[call-overload]


def test_bad_override_is_one_clear_line() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "tiny_audio", "train", "training.learnin_rate=1"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert run.returncode == 1
    assert run.stderr.strip() == (
        "error: training.learnin_rate is not a setting (did you mean training.learning_rate?)"
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("training.learning_rate=abc", "training.learning_rate='abc': must be a number >= 0"),
        ("training.per_device_train_batch_size=0", "training.per_device_train_batch_size=0: must be an integer >= 1"),
        ("training.max_steps=0", "training.max_steps=0: must be an integer >= 1"),
        ("+training.max_step=1", "training.max_step is not a setting (did you mean training.max_steps?)"),
    ],
)  # fmt: skip
def test_bad_training_setting_is_one_line_before_training_starts(
    override: str, message: str, tiny_parts: dict[str, str], tone_corpus: Path, tmp_path: Path
) -> None:
    output = tmp_path / "run"
    process = run_train([*tiny_overrides(tiny_parts, tone_corpus, output), override], tmp_path)
    log, _ = process.communicate(timeout=300)
    assert process.returncode == 1, log
    assert [line for line in log.splitlines() if "error" in line.lower()] == [f"error: {message}"]
    assert "Traceback" not in log and not output.exists()


def test_bf16_training_scores_its_dev_set_with_float32_features(
    tiny_parts: dict[str, str], tone_corpus: Path, tmp_path: Path
) -> None:
    """Dev loss under bf16 autocast: the log-mel of the dev clips stays float32 (numpy cannot
    hold bfloat16), as it is for training batches."""
    output = tmp_path / "run"
    overrides = tiny_overrides(
        tiny_parts, tone_corpus, output, bf16="true", max_steps=2, eval_steps=2, save_steps=2
    )
    process = run_train(overrides, tmp_path)
    log, _ = process.communicate(timeout=300)
    assert process.returncode == 0, log
    metrics = json.loads((output / "checkpoint-2" / run_folder.METRICS).read_text())
    assert math.isfinite(metrics["dev_loss"]) and "dev_wer" in metrics


def test_wandb_key_without_wandb_says_logging_is_off(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    tone_corpus: Path,
) -> None:
    import accelerate
    import accelerate.utils

    from tiny_audio.train.trainer import train

    class Started(Exception):
        """Raised where the accelerator would start: the trackers are settled by then."""

    def accelerator(log_with: list[str], **settings: object) -> None:
        raise Started(log_with)

    monkeypatch.setattr(accelerate, "Accelerator", accelerator)
    monkeypatch.setattr(accelerate.utils, "is_wandb_available", lambda: False)
    monkeypatch.setenv("WANDB_API_KEY", "a-key")
    with caplog.at_level(logging.WARNING, logger="tiny_audio"), pytest.raises(Started) as started:
        data = [f"data.train=[{{source: {tone_corpus}}}]", f"data.dev={{source: {tone_corpus}}}"]
        train(compose([f"training.output_dir={tmp_path}", *data]))
    assert started.value.args == (["tensorboard"],)
    assert [record.message for record in caplog.records] == [
        "WANDB_API_KEY is set but wandb is not installed: W&B logging is off "
        "(pip install 'tiny-audio[wandb]')"
    ]


def test_presets_compose() -> None:
    """Every preset composes, and its family reads each of its keys."""
    for preset in sorted(EXPERIMENTS_DIR.glob("*.yaml")):
        cfg = compose([f"+experiments={preset.stem}"])
        assert cfg.experiment == preset.stem
        check_keys(cfg, cfg.model.family)
    assert compose(["+experiments=mlp_lora"]).model.lora_rank > 0


def test_batches_are_a_pure_function_of_step() -> None:
    durations = list(np.linspace(1, 10, 40))
    first, again = (
        LengthGroupedBatches(durations, 4, seed=1, group_by_length=True),
        LengthGroupedBatches(durations, 4, seed=1, group_by_length=True),
    )
    assert [first[i] for i in range(25)] == [again[i] for i in reversed(range(25))][::-1]
    epoch = sorted(i for b in range(first.per_epoch) for i in first[b])
    assert epoch == list(range(40))  # each example once per epoch
    ranks = [LengthGroupedBatches(durations, 2, 1, True, rank=r, world=2)[3] for r in range(2)]
    assert not set(ranks[0]) & set(ranks[1])


def test_sigkill_then_resume_reaches_the_final_step(
    tiny_parts: dict[str, str], tone_corpus: Path, tmp_path: Path
) -> None:
    output = tmp_path / "run"
    overrides = tiny_overrides(
        tiny_parts, tone_corpus, output, max_steps=40, save_steps=4, eval_steps=1000
    )
    process = run_train(overrides, tmp_path)
    deadline = time.time() + 300
    while not run_folder.checkpoints(output) and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert process.poll() is None, process.stdout.read() if process.stdout else ""
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = run_folder.latest_checkpoint(output)
    assert killed_at is not None
    killed_step = int(killed_at.name.split("-")[1])
    assert killed_step < 40

    resumed = run_train(overrides + ["training.resume_from_checkpoint=latest"], tmp_path)
    log, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, log
    assert f"resumed from {killed_at}" in log
    final = run_folder.latest_checkpoint(output)
    assert final is not None and final.name == "checkpoint-40"
    assert int(ckpt.load_training_state(final)["step"]) == 40
    assert len(run_folder.checkpoints(output)) <= 3  # keep-last-2 plus best
    assert (output / "best").resolve().is_dir()


def test_kill_during_save_leaves_previous_checkpoint(tmp_path: Path) -> None:
    def save_model(directory: Path) -> None:
        directory.mkdir(parents=True)
        (directory / "model.safetensors").write_bytes(b"x")

    state = {"optimizer": {}, "scheduler": {}, "best_wer": 1.0}
    ckpt.save_checkpoint(tmp_path, 2, save_model, state, {})

    def dies_mid_save(directory: Path) -> None:
        save_model(directory)
        raise KeyboardInterrupt  # stands in for the process dying half-way

    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(tmp_path, 4, dies_mid_save, state, {})
    assert (tmp_path / "checkpoint-4.tmp").is_dir() and not (tmp_path / "checkpoint-4").exists()
    assert run_folder.latest_checkpoint(tmp_path) == tmp_path / "checkpoint-2"
    assert ckpt.load_training_state(tmp_path / "checkpoint-2")["step"] == 2
    run_folder.clean_partial(tmp_path)
    assert not (tmp_path / "checkpoint-4.tmp").exists()


def test_best_links_a_checkpoint_that_pruning_keeps(tmp_path: Path) -> None:
    def save_model(directory: Path) -> None:
        directory.mkdir(parents=True)

    (tmp_path / "best").mkdir()  # a LaCT run from when best was a copy
    (tmp_path / "best" / "model.safetensors").write_bytes(b"old")
    state = {"optimizer": {}, "scheduler": {}}
    first = ckpt.save_checkpoint(tmp_path, 1, save_model, state, {"dev_wer": 0.5})
    run_folder.point_best(tmp_path, first)
    for step in (2, 3, 4):
        ckpt.save_checkpoint(tmp_path, step, save_model, state, {})
        run_folder.prune(tmp_path, keep_last=2)
    best = tmp_path / "best"
    assert best.is_symlink() and best.readlink() == Path("checkpoint-1")  # the folder can move
    assert json.loads((best / "metrics.json").read_text()) == {"step": 1, "dev_wer": 0.5}
    names = [path.name for path in run_folder.checkpoints(tmp_path)]
    assert names == ["checkpoint-1", "checkpoint-3", "checkpoint-4"]


def test_run_config_is_found_under_the_name_older_lact_runs_used(tmp_path: Path) -> None:
    assert run_folder.run_config(tmp_path) is None
    (tmp_path / "training_config.yaml").write_text("experiment: lact_tiny\n")
    assert run_folder.run_config(tmp_path) == tmp_path / "training_config.yaml"
    (tmp_path / run_folder.RUN_CONFIG).write_text("experiment: lact_tiny\n")
    assert run_folder.run_config(tmp_path) == tmp_path / run_folder.RUN_CONFIG


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_two_process_ddp_trains_and_checkpoints(
    tiny_parts: dict[str, str], tone_corpus: Path, tmp_path: Path, launcher: str
) -> None:
    output = tmp_path / "ddp"
    process = run_train(
        tiny_overrides(tiny_parts, tone_corpus, output, max_steps=4, save_steps=2, eval_steps=4),
        tmp_path,
        launcher,
    )
    log, _ = process.communicate(timeout=900)
    assert process.returncode == 0, log
    assert [p.name for p in run_folder.checkpoints(output)] == ["checkpoint-2", "checkpoint-4"]
    assert "2 process(es)" in log and "dev WER" in log and "dev loss" in log, log[-3000:]


def test_stage_two_starts_from_stage_one(
    tiny_parts: dict[str, str], tone_corpus: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    stage1 = tmp_path / "stage1"
    first = run_train(
        tiny_overrides(tiny_parts, tone_corpus, stage1, max_steps=2, save_steps=2, eval_steps=100),
        tmp_path,
    )
    assert first.wait(timeout=600) == 0
    stage2 = tmp_path / "stage2"
    second = run_train(
        tiny_overrides(tiny_parts, tone_corpus, stage2, max_steps=2, save_steps=2, eval_steps=100)
        + [
            "model.lora_rank=4",
            f"model.init_from={stage1 / 'best'}",
            "training.train_projector=false",
        ],
        tmp_path,
    )
    log, _ = second.communicate(timeout=600)
    assert second.returncode == 0, log
    before, after = (
        load_file(str(stage1 / "best" / "model.safetensors")),
        load_file(str(stage2 / "best" / "model.safetensors")),
    )
    assert any("lora_A" in name for name in after)
    for name, tensor in before.items():  # the frozen projector came through unchanged
        assert np.array_equal(tensor.numpy(), after[name].numpy())


@pytest.mark.slow
def test_smoke_preset_with_real_models(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "tiny_audio", "train", "+experiments=smoke", f"training.output_dir={tmp_path}", "training.max_steps=2", "training.eval_steps=2", "training.save_steps=2"],
        capture_output=True, text=True, cwd=REPO, timeout=1200,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "checkpoint-2" / "model.safetensors").is_file()
    assert "dev WER" in run.stderr + run.stdout
