"""`ta dev` passes on its tools' exit codes; `ta doctor` reports the set-up and fails when
something required is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tiny_audio.ops import dev


@pytest.fixture
def lint_targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    clean = tmp_path / "clean.py"
    clean.write_text('"""Clean."""\n\nVALUE = 1\n')
    dirty = tmp_path / "dirty.py"
    dirty.write_text("import os\n")  # unused import: ruff F401
    steps = {
        "lint": [["ruff", "check", "--isolated", "--select", "F", str(clean)]],
        "typecheck": [["ruff", "check", "--isolated", "--select", "F", str(dirty)]],
        "test": [["ruff", "check", "--isolated", "--select", "F", str(clean)]],
    }
    monkeypatch.setattr(dev, "STEPS", steps)
    return {"clean": clean, "dirty": dirty}


def test_step_exit_codes_pass_through(lint_targets: dict[str, Path]) -> None:
    runner = CliRunner()
    assert runner.invoke(dev.dev, ["lint"]).exit_code == 0
    assert runner.invoke(dev.dev, ["typecheck"]).exit_code == 1
    # Extra arguments reach the tool: here they add the dirty file to a clean step.
    assert runner.invoke(dev.dev, ["test", str(lint_targets["dirty"])]).exit_code == 1


def test_check_runs_every_step_and_fails_with_the_first_error(
    lint_targets: dict[str, Path],
) -> None:
    result = CliRunner().invoke(dev.dev, ["check"])
    assert result.exit_code == 1
    for step in ("lint", "typecheck", "test"):
        assert step in result.output


def test_doctor_reports_this_machine(tmp_path: Path) -> None:
    env = {**os.environ, "TINY_AUDIO_HOME": str(tmp_path), "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "tiny_audio", "doctor"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for check in ("python", "package torch", "torch threads", "model whisper-tiny.en", "tool sox"):
        assert check in result.stdout
    assert "ta models pull --defaults" in result.stdout  # a fresh cache says how to fill it
    corpus = tmp_path / "data" / "synth-1h"  # and the corpus `ta train` reads
    assert f"to fix train data synth-1h: ta data synth --out {corpus} --hours 1" in result.stdout
    assert "all required checks passed" in result.stdout


def test_doctor_fails_on_a_missing_required_package(monkeypatch: pytest.MonkeyPatch) -> None:
    requirements = ["numpy", "tiny-audio-no-such-package>=1.0", 'ruff-no-such-tool; extra == "dev"']
    monkeypatch.setattr(dev.importlib.metadata, "requires", lambda name: requirements)
    findings = {finding.check: finding for finding in dev.check_packages()}
    assert findings["package numpy"].status == "ok"
    assert findings["package tiny-audio-no-such-package"].status == "missing"
    assert "pip install" in findings["package tiny-audio-no-such-package"].fix
    assert findings["extra [dev]"].status == "optional"  # an extra is one line, its install
    assert findings["extra [dev]"].detail == "ruff-no-such-tool (not installed)"
    assert findings["extra [dev]"].fix == dev.DEV_TOOLS_HINT
    monkeypatch.setattr(dev, "CHECKS", [dev.check_python, dev.check_packages])
    result = CliRunner().invoke(dev.doctor, [])
    assert result.exit_code == 1
    assert "1 required check(s) failed" in result.output
