"""`ta debug` against tiny models trained a few steps and saved, run through the real CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

from tiny_audio.cli import cli
from tiny_audio.model import ASRConfig, ASRModel
from tiny_audio.ops.debug import effective_rank, routing_report


@pytest.fixture(scope="module")
def manifest(tone_corpus: Path) -> Path:
    return tone_corpus


def train_and_save(
    tiny_parts: dict[str, str], manifest: Path, directory: Path, **fields: Any
) -> Path:
    """A few AdamW steps on the manifest's clips, then save_pretrained."""
    from tiny_audio.data.manifest import decoded, read_manifest

    torch.manual_seed(0)
    config = ASRConfig(
        audio_encoder=tiny_parts["whisper"], text_decoder=tiny_parts["llama"], **fields
    )
    model = ASRModel(config).train()
    clips = list(decoded(read_manifest(manifest)))
    waves, texts = [wave for _, wave in clips], [u.text for u, _ in clips]
    features, lengths = model.processor.features(waves)
    batch = model.processor.text_inputs(model.audio_token_counts(lengths), texts=texts)
    optimizer = torch.optim.AdamW(model.trained_parameters().values(), lr=3e-3)
    for _ in range(4):
        loss = model(**batch, input_features=features, feature_lengths=lengths)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def moe_lora_model(
    tiny_parts: dict[str, str], manifest: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    fields = dict(projector_type="moe", projector_hidden_dim=16, lora_rank=4)
    return train_and_save(tiny_parts, manifest, tmp_path_factory.mktemp("moe_lora"), **fields)


@pytest.fixture(scope="module")
def mosa_model(
    tiny_parts: dict[str, str], manifest: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return train_and_save(
        tiny_parts,
        manifest,
        tmp_path_factory.mktemp("mosa"),
        projector_type="mosa",
        projector_hidden_dim=16,
    )


def run_debug(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["debug", *args])
    return result.exit_code, result.output


def run_report(tmp_path: Path, *args: str) -> tuple[str, dict[str, Any]]:
    """A debug command that succeeds, its output and the report it writes with --json."""
    report = tmp_path / "report.json"
    code, output = run_debug(*args, "--json", str(report))
    assert code == 0, output
    return output, json.loads(report.read_text())


@pytest.mark.parametrize("kind", ["mosa", "moe"])
def test_check_routing_reports_every_expert(
    kind: str, mosa_model: Path, moe_lora_model: Path, manifest: Path, tmp_path: Path
) -> None:
    model = mosa_model if kind == "mosa" else moe_lora_model
    output, report = run_report(
        tmp_path, f"check-{kind}", str(model), "-d", str(manifest), "-n", "5"
    )
    assert report["clips"] == 5 and report["frames"] > 0
    assert len(report["expert_share"]) == report["num_experts"] == 4
    assert sum(report["expert_share"]) == pytest.approx(1.0, abs=1e-4)
    assert 0.0 <= report["routing_entropy"] <= 1.0
    assert ("balance_loss" in report) == (kind == "moe")
    assert "routing entropy" in output
    assert all(f"warning: {w}" in output for w in report["warnings"])


@pytest.mark.parametrize(
    ("command", "model", "error"),
    [
        ("check-mosa", "moe_lora_model", "{model} has a 'moe' projector, not 'mosa'"),
        ("analyze-lora", "mosa_model", "{model} has no LoRA adapters"),
        ("check-model", "tmp_path", "{model}: no config.json of a tiny-audio or LaCT model"),
    ],
    ids=["another projector", "no LoRA", "not a model"],
)
def test_a_model_the_command_cannot_inspect_is_one_error_line(
    command: str, model: str, error: str, manifest: Path, request: pytest.FixtureRequest
) -> None:
    folder = request.getfixturevalue(model)
    data = [] if command == "analyze-lora" else ["-d", str(manifest)]  # it reads no clips
    code, output = run_debug(command, str(folder), *data)
    last_line = output.strip().splitlines()[-1]  # after any weight-loading bars
    assert code == 1 and last_line.startswith("error: " + error.format(model=folder))
    assert "Traceback" not in output


def test_routing_report_flags_collapse_and_dead_experts() -> None:
    probs = torch.tensor([[0.97, 0.01, 0.01, 0.01]]).repeat(50, 1)
    report = routing_report("mosa", probs, None)
    assert report["dead_experts"] == [1, 2, 3]
    assert report["routing_entropy"] < 0.2
    assert any("collapsing" in w for w in report["warnings"])
    uniform = routing_report(
        "moe", torch.full((40, 4), 0.25), torch.arange(80).remainder(4).reshape(40, 2)
    )
    assert uniform["dead_experts"] == [] and uniform["balance_loss"] == pytest.approx(1.0)
    assert uniform["routing_entropy"] == pytest.approx(1.0)
    assert any("barely prefers" in w for w in uniform["warnings"])


def test_effective_rank() -> None:
    torch.manual_seed(0)
    assert effective_rank(torch.zeros(5, 3)) == 0.0
    assert effective_rank(torch.randn(6, 1) @ torch.randn(1, 4)) == pytest.approx(1.0, abs=1e-6)
    assert effective_rank(torch.eye(4)) == pytest.approx(4.0)


def test_analyze_lora(moe_lora_model: Path, tmp_path: Path) -> None:
    _, report = run_report(tmp_path, "analyze-lora", str(moe_lora_model))
    # the tiny llama has two layers with q_proj and v_proj adapted
    assert len(report["modules"]) == 4
    assert all(m["module"].endswith(("q_proj", "v_proj")) for m in report["modules"])
    assert all(m["norm"] > 0 and 0 < m["effective_rank"] <= 4 + 1e-6 for m in report["modules"])


def test_gradient_flow(moe_lora_model: Path, manifest: Path, tmp_path: Path) -> None:
    _, report = run_report(
        tmp_path, "gradient-flow", str(moe_lora_model), "-d", str(manifest), "-n", "3"
    )
    modules = report["modules"]
    assert any(name.startswith("projector.experts") for name in modules)
    assert any("lora_B" in name for name in modules)
    assert report["total_norm"] == pytest.approx(math.sqrt(sum(v**2 for v in modules.values())))
    assert math.isfinite(report["loss"]) and report["total_norm"] > 0


def test_check_model_compares_scales(mosa_model: Path, manifest: Path, tmp_path: Path) -> None:
    _, report = run_report(tmp_path, "check-model", str(mosa_model), "-d", str(manifest), "-n", "2")
    weights = json.loads((mosa_model / "config.json").read_text())
    assert report["projector"] == "mosa"
    assert report["ratio"] == pytest.approx(
        report["audio_embedding_rms"] / report["text_embedding_rms"]
    )
    # the output norm starts at the LLM's embedding scale and four steps barely move it
    assert report["ratio"] == pytest.approx(1.0, abs=0.2)
    assert weights["embedding_scale"] == pytest.approx(report["text_embedding_rms"], rel=0.2)


def test_analyze_lora_shows_whole_names_quietly(moe_lora_model: Path) -> None:
    """Run as a user runs it: no weight-loading bars, and every module's own name, not 120 rows
    cut to the same prefix."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "COLUMNS": "200"}
    env.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    run = subprocess.run(
        [sys.executable, "-m", "tiny_audio", "debug", "analyze-lora", str(moe_lora_model)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "Loading weights" not in run.stderr
    names = [f"decoder.model.layers.{layer}.self_attn.{module}" for layer in (0, 1) for module in ("q_proj", "v_proj")]  # fmt: skip
    assert all(name in run.stdout for name in names), run.stdout


def test_a_narrow_table_wraps_names_instead_of_cutting_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    from rich.console import Console

    from tiny_audio.ops import debug

    out = io.StringIO()
    monkeypatch.setattr(debug, "console", Console(file=out, width=40))
    names = [f"decoder.model.layers.{layer}.self_attn.q_proj" for layer in range(3)]
    debug.print_table("LoRA updates", ["module", "|BA|"], [[name, 1.0] for name in names])
    folded = "".join(
        line.split("│")[1].strip() for line in out.getvalue().splitlines() if "│" in line
    )
    assert "…" not in out.getvalue() and folded == "".join(names)
