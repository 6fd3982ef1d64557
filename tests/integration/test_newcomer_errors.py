"""What a newcomer meets first: every corpus a preset needs, when it is not built yet, is one line
naming README's command that builds it; a wrong `ta train` override is one line; `ta doctor`
checks the training corpus and the extras and says what to run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from tiny_audio.cli import cli
from tiny_audio.data.corpora import RECIPES
from tiny_audio.data.sources import load_source
from tiny_audio.errors import UserError
from tiny_audio.evaluate.runner import SUMMARIES_FOLDER, write_summary
from tiny_audio.ops import dev
from tiny_audio.train.main import EXPERIMENTS_DIR

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty TINY_AUDIO_HOME, and an empty folder to run in."""
    monkeypatch.setenv("TINY_AUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


def readme_commands() -> str:
    """README with its continued lines joined and $TINY_AUDIO_HOME as written there."""
    return (REPO / "README.md").read_text().replace("\\\n  ", "")


def error_line(*arguments: str) -> str:
    result = CliRunner().invoke(cli, list(arguments))
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0].removeprefix("error: ")


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_corpus_recipe_is_a_readme_command(name: str) -> None:
    recipe = RECIPES[name].format(folder=f"$TINY_AUDIO_HOME/data/{name}", home="")
    if recipe.startswith("ta "):
        assert recipe in readme_commands()


@pytest.mark.parametrize(
    ("source", "split", "missing", "fix"),
    [
        ("synth", "train", "synth-1h/train.jsonl", "run `ta data synth --out {data}/synth-1h --hours 1`"),
        ("synth:synth-words", "dev", "synth-words/dev.jsonl", "run `ta data synth --out {data}/synth-words --hours 0.5 --texts words`"),
        ("synth:synth-kokoro-en", "train", "synth-kokoro-en/train.jsonl", "run `ta data synth --out {data}/synth-kokoro-en --hours 1.5 --voices kokoro-en --mixes 8 --held-out kokoro-am_michael,kokoro-bf_emma`"),
        ("synth:games-joined", "train", "games-joined/train.jsonl", "run `ta data games && ta data join games --out {data}/games-joined/train.jsonl --count 1500`"),
        ("games", "train", "games/*/train.jsonl", "run `ta data games`"),
        ("games:queen", "dev", "games/queen/dev.jsonl", "run `ta data games`"),
        ("{data}/synth-1h/dev.jsonl", "dev", "synth-1h/dev.jsonl", "run `ta data synth --out {data}/synth-1h --hours 1`"),
        ("{data}/LibriSpeech/dev-clean", "dev", "LibriSpeech/dev-clean", "download its parts from https://www.openslr.org/12 and extract them in {data}"),
    ],
)  # fmt: skip
def test_a_missing_corpus_names_what_builds_it(
    home: Path, source: str, split: str, missing: str, fix: str
) -> None:
    data = home / "data"
    with pytest.raises(UserError) as raised:
        next(iter(load_source(source.format(data=data), split)))
    assert str(raised.value) == f"{data / missing} is missing: {fix.format(data=data)}"


@pytest.mark.parametrize(
    ("arguments", "missing"),
    [
        (["train", "+experiments=mlp"], "synth-1h/train.jsonl"),
        (["train", "+experiments=lact_tiny"], "synth-1h/train.jsonl"),
        (["train", "+experiments=recorded"], "games/*/train.jsonl"),
        (["train", "+experiments=lact_improved"], "LibriSpeech/train-clean-360"),
        (["debug", "check-model", "default"], "synth-1h/dev.jsonl"),
    ],
)
def test_a_command_on_a_fresh_home_names_the_missing_corpus_first(
    home: Path, arguments: list[str], missing: str
) -> None:
    line = error_line(*arguments)
    assert line.startswith(f"{home / 'data' / missing} is missing: ")
    assert not (Path("outputs") / "lact_improved").exists()  # stopped before any work


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["+experiments=mlp", "--max_steps", "3"], "--max_steps: ta train takes Hydra overrides, not options: write training.max_steps=3"),
        (["--model.lora_rank=4"], "--model.lora_rank=4: ta train takes Hydra overrides, not options: write model.lora_rank=4"),
        (["mlp"], "mlp: an override is KEY=VALUE (did you mean +experiments=mlp?)"),
        (["training.max_stepz=3"], "training.max_stepz is not a setting (did you mean training.max_steps?)"),
        (["+training.max_stepz=3"], "training.max_stepz is not a setting (did you mean training.max_steps?)"),
        (["+model.lora_rnk=3"], "model.lora_rnk is not a setting (did you mean model.lora_rank?)"),
        (["+experiments=lact_tiny", "+model.hiden_size=8"], "model.hiden_size is not a setting (did you mean model.hidden_size?)"),
        (["+data.augment.sped=0.3"], "data.augment.sped is not a setting (did you mean data.augment.speed?)"),
        (["+data.dev.splt=dev"], "data.dev.splt is not a setting (did you mean data.dev.split?)"),
        (["+seeed=3"], "seeed is not a setting (did you mean seed?)"),
    ],
)  # fmt: skip
def test_a_wrong_override_is_one_line_before_anything_loads(
    home: Path, overrides: list[str], message: str
) -> None:
    assert error_line("train", *overrides) == message
    assert not Path("outputs").exists()


def test_an_added_setting_that_exists_is_accepted() -> None:
    from tiny_audio.train.main import check_added, check_keys, compose

    for overrides, family in (
        (["+experiments=mlp", "+model.projector_num_experts=8"], "tiny_audio"),
        (["+data.dev.split=test", "++training.max_steps=3"], "tiny_audio"),
        (["+experiments=lact_tiny", "+model.lm_weight=0.5"], "lact"),
        (["+experiments=lact_tiny", "model.lact_base_lr=0.02"], "lact"),  # not in the preset
    ):
        cfg = compose(overrides)
        check_added(cfg, overrides)
        check_keys(cfg, family)


def test_train_help_lists_the_experiments() -> None:
    result = CliRunner().invoke(cli, ["train", "--help"])
    assert result.exit_code == 0, result.output
    listed = result.output.split("Experiments (+experiments=NAME):")[1]
    names = sorted(path.stem for path in EXPERIMENTS_DIR.glob("*.yaml"))
    assert re.findall(r"^  (\w+)", listed, flags=re.MULTILINE) == names
    assert "Stage 1: train the MLP projector only" in listed


def test_doctor_names_the_missing_corpus_and_the_command(home: Path) -> None:
    findings = {finding.check: finding for finding in dev.check_training_data()}
    corpus = home / "data" / "synth-1h"
    assert findings["train data synth-1h"].status == "warn"
    assert findings["train data synth-1h"].fix == f"ta data synth --out {corpus} --hours 1"
    assert findings["dev data synth-1h"].detail.startswith(f"{corpus / 'dev.jsonl'} is missing")


def test_doctor_says_how_to_install_a_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    requirements = ["numpy", 'wandb-no-such; extra == "wandb"', 'hydra-core; extra == "train"']
    monkeypatch.setattr(dev.importlib.metadata, "requires", lambda name: requirements)
    monkeypatch.setenv("WANDB_API_KEY", "a-key")
    findings = {finding.check: finding for finding in dev.check_packages()}
    assert findings["extra [wandb]"].status == "warn"
    assert findings["extra [wandb]"].fix == "pip install 'tiny-audio[wandb]'"
    assert findings["extra [train]"].status == "ok"
    monkeypatch.delenv("WANDB_API_KEY")
    assert {f.check: f for f in dev.check_packages()}["extra [wandb]"].status == "optional"
    monkeypatch.setattr(dev, "CHECKS", [dev.check_packages])
    result = CliRunner().invoke(dev.doctor, [])
    assert "to fix extra [wandb]: pip install 'tiny-audio[wandb]'" not in result.output  # optional
    monkeypatch.setenv("WANDB_API_KEY", "a-key")
    result = CliRunner().invoke(dev.doctor, [])
    assert "to fix extra [wandb]: pip install 'tiny-audio[wandb]'" in result.output.splitlines()


def test_doctor_s_table_shows_an_extra_and_its_command_as_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    requirements = ["numpy", 'wandb-no-such; extra == "wandb"']
    monkeypatch.setattr(dev.importlib.metadata, "requires", lambda name: requirements)
    monkeypatch.setattr(dev, "CHECKS", [dev.check_packages])
    monkeypatch.setenv("WANDB_API_KEY", "a-key")
    monkeypatch.setenv("COLUMNS", "200")  # one line a row
    result = CliRunner().invoke(dev.doctor, [])
    [row] = [line for line in result.output.splitlines() if "wandb-no-such" in line]
    assert [cell.strip() for cell in row.split("│")[1:-1]] == [
        "extra [wandb]",
        "warn",
        "wandb-no-such (not installed)",
        "pip install 'tiny-audio[wandb]'",
    ]


def test_each_eval_keeps_its_own_summary(tmp_path: Path) -> None:
    first = write_summary(tmp_path, [{"model": "a"}])
    second = write_summary(tmp_path, [{"model": "b"}])
    assert first != second and first.parent == second.parent == tmp_path / SUMMARIES_FOLDER
    assert json.loads(first.read_text()) == [{"model": "a"}]
    assert json.loads(second.read_text()) == [{"model": "b"}]
    assert not (tmp_path / "summary.json").exists()
