"""README's training section, walked in order as a newcomer would, on an empty TINY_AUDIO_HOME:
every command exits 0. Sizes are tiny (a few seconds of synthetic speech, random two-layer
models, one step), and everything runs in this process: a command's own start-up (torch,
transformers) would cost more than its work."""

from __future__ import annotations

import json
import math
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from tiny_audio.cli import cli

REPO = Path(__file__).resolve().parents[2]
# The multi-process launchers, run by test_train's test_two_process_ddp_trains_and_checkpoints
# (two CPU processes; README's ddp.yaml wants 8 GPUs).
LAUNCHER_LINES = ("accelerate launch ", "torchrun ")
# Each README value -> the tiny one (the rest of the command as written).
TINY_SYNTH = {"--hours": "0.03", "--workers": "1"}
TINY_VOICES = ["--voices", "flite-kal16,flite-slt,flite-rms"]  # the fastest offline voices
# Presets whose corpora README builds elsewhere -> this walk's corpus in their place.
THIS_CORPUS = {
    "recorded": [
        "model.init_from=null",  # the shipped model, whose parts are not the tiny ones
        "data.train=[{source: synth}]",
        "data.dev=[{source: synth, max_samples: 2}]",  # its dev set is a list of domains
    ],
    "smoke": ["data.train=[{source: synth}]", "data.dev={source: synth, max_samples: 2}"],
}


def training_section() -> list[str]:
    """The commands of README's first bash block under "### Training", comments removed and
    `a | b | c` alternatives of one command expanded."""
    text = (REPO / "README.md").read_text()
    section = text.split("### Training", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        command = re.sub(r"\s+#.*$", "", line).strip()
        head, *alternatives = (part.strip() for part in command.split(" | "))
        commands.append(head)
        stem = head.rsplit("=", 1)[0]
        commands += [f"{stem}={alternative}" for alternative in alternatives]
    return [command for command in commands if command]


def tiny_training(tiny_parts: dict[str, str], preset: str) -> list[str]:
    """Overrides that keep a preset's recipe at toy size (LaCT's tiny preset is small already).
    `recorded` and `smoke` read corpora that README builds elsewhere (game voices, real clips:
    downloads) and `recorded` starts from the shipped model: here they read this walk's corpus."""
    overrides = ["training.max_steps=1", "training.eval_steps=1", "training.save_steps=1"]
    overrides += ["training.num_threads=1", "training.bf16=false"]
    if preset.startswith("lact"):
        return overrides
    overrides += [
        f"model.audio_encoder={tiny_parts['whisper']}",
        f"model.text_decoder={tiny_parts['llama']}",
        "model.projector_hidden_dim=32",
        "training.per_device_train_batch_size=2",
    ]
    return overrides + THIS_CORPUS.get(preset, ["data.dev.max_samples=2"])


def run(arguments: list[str]) -> str:
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 0, f"ta {shlex.join(arguments)}\n{result.output}"
    return result.output


@pytest.mark.slow
def test_readme_training_section_in_order(
    tiny_parts: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("TINY_AUDIO_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    commands = training_section()
    assert commands[0].startswith("export TINY_AUDIO_HOME=")  # set above, as the test's own
    walked = []
    for command in commands[1:]:
        if command.startswith(LAUNCHER_LINES):
            continue
        words = shlex.split(command.replace("$TINY_AUDIO_HOME", str(home)))
        assert words[0] == "ta", command
        arguments = words[1:]
        if arguments[:2] == ["data", "synth"]:
            for option, value in TINY_SYNTH.items():
                if option in arguments:
                    arguments[arguments.index(option) + 1] = value
                else:
                    arguments += [option, value]
            arguments += TINY_VOICES
        elif arguments[:1] == ["train"] and "--help" not in arguments:
            preset = next(a for a in arguments if a.startswith("+experiments=")).split("=")[1]
            arguments += tiny_training(tiny_parts, preset)
        run(arguments)
        walked.append(command)

    assert sum(command.startswith("ta train +experiments=") for command in walked) >= 13
    for preset in ("mlp", "mlp_lora", "mlp_fine_tune", "swiglu", "mosa", "moe", "qformer"):
        assert (tmp_path / "outputs" / preset / "best" / "model.safetensors").is_file(), preset
    assert (tmp_path / "outputs" / "lact_tiny" / "best").is_dir()
    # stage 1 was trained, then resumed at its last checkpoint: the dev loss is logged beside WER
    metrics = json.loads((tmp_path / "outputs" / "mlp" / "best" / "metrics.json").read_text())
    assert math.isfinite(metrics["dev_loss"]) and "dev_wer" in metrics
