"""Each model family's keys: a key only the other family reads is one error line before anything
loads, and a key the family reads is accepted whether or not the preset has it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tiny_audio.cli import cli
from tiny_audio.train.lact import TrainingArgs
from tiny_audio.train.main import check_keys, compose


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty TINY_AUDIO_HOME, and an empty folder to run in."""
    monkeypatch.setenv("TINY_AUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


def foreign(key: str, of: str, run: str) -> str:
    return f"{key} is a setting of model.family={of}, not of this run's model.family={run}"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["+experiments=smoke", "model.lact_inner_multiplier=2"], foreign("model.lact_inner_multiplier", "lact", "tiny_audio")),
        (["+experiments=smoke", "+training.lm_order=3"], foreign("training.lm_order", "lact", "tiny_audio")),
        (["+experiments=lact_tiny", "model.lora_rank=8"], foreign("model.lora_rank", "tiny_audio", "lact")),
        (["+experiments=lact_tiny", "model.init_from=outputs/mlp/best"], foreign("model.init_from", "tiny_audio", "lact")),
        (["+experiments=lact_tiny", "training.lora_learning_rate=1e-4"], foreign("training.lora_learning_rate", "tiny_audio", "lact")),
        (["+experiments=lact_tiny", "data.audio_token_dropout=0.1"], foreign("data.audio_token_dropout", "tiny_audio", "lact")),
        (["+experiments=mlp", "model.family=lact"], foreign("model.audio_encoder", "tiny_audio", "lact")),
        (["+experiments=lact_tiny", "model.hiden_size=8"], "model.hiden_size is not a setting (did you mean model.hidden_size?)"),
        (["+experiments=lact_tiny", "training.lr_scheduler=step"], "training.lr_scheduler='step' is not one of cosine, linear, constant"),
    ],
)  # fmt: skip
def test_a_key_the_family_does_not_read_is_one_line(
    home: Path, overrides: list[str], message: str
) -> None:
    result = CliRunner().invoke(cli, ["train", *overrides])
    assert result.exit_code == 1, result.output
    assert result.output.strip() == f"error: {message}"
    assert not Path("outputs").exists()


def test_a_key_the_family_reads_is_accepted_outside_its_preset() -> None:
    """LaCT honours the learning-rate schedule, and any LaCTConfig field is a model.* override."""
    cfg = compose(
        ["+experiments=lact_tiny", "training.lr_scheduler=linear", "model.lact_base_lr=0.02"]
    )
    check_keys(cfg, "lact")
    assert TrainingArgs(**cfg.training).lr_scheduler == "linear"
    assert cfg.model.lact_base_lr == 0.02
