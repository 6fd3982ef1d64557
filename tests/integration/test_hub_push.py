"""`ta push`: the Hub folder made from each kind of model the project makes (a `ta train`
checkpoint, the bundled `default`, a LaCT checkpoint), its model card, and that each folder loads
and transcribes in a fresh offline process as its card says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from click.testing import CliRunner
from helpers import goforward_clip, run_offline, tiny_config
from omegaconf import OmegaConf
from safetensors.torch import load_file
from transformers.dynamic_module_utils import get_imports, get_relative_imports

from tiny_audio.cli import cli
from tiny_audio.hub.card import Card, evaluation_rows
from tiny_audio.hub.families import LACT_REMOTE_CODE_FILES
from tiny_audio.lact.lm import CharLM
from tiny_audio.lact.model import LaCTForCTC
from tiny_audio.model import ASRConfig, ASRModel
from tiny_audio.model.modeling import REMOTE_CODE_FILES
from tiny_audio.recognizer import load_recognizer
from tiny_audio.train import run_folder
from tiny_audio.train.checkpoint import save_checkpoint
from tiny_audio.train.main import compose
from tiny_audio.zoo import resolve

# What a user of a pushed folder runs, in a fresh process: transformers alone (tiny-audio hidden,
# as on a machine with only requirements.txt installed); transformers beside tiny-audio, whose
# zoo stands in offline for the Hub base models the remote code would download; or tiny-audio.
LOAD_SCRIPT = """
import json, sys
folder, clip, mode, options = sys.argv[1:]
if mode == "transformers only":
    sys.modules["tiny_audio"] = None  # makes `import tiny_audio` fail
if mode == "tiny-audio":
    from tiny_audio.recognizer import load_recognizer
    text = load_recognizer(folder).transcribe([clip])[0]
else:
    from transformers import pipeline
    asr = pipeline("automatic-speech-recognition", model=folder, trust_remote_code=True)
    text = asr(clip, **json.loads(options))["text"]
print(json.dumps(text))
"""


def eval_metrics(model: str, dataset: str, wer: float, date: str) -> dict[str, object]:
    """metrics.json as `ta eval` writes it (tiny_audio.evaluate.runner)."""
    return {
        "model": model,
        "dataset": dataset,
        "split": "test",
        "date": date,
        "n": 5,
        "scored": 5,
        "failed": 0,
        "wer": wer,
        "cer": wer / 2,
        "rtfx": 41.5,
        "slices": {"librivox": {"n": 3, "wer": wer + 0.1, "cer": wer / 3, "rtfx": 40.0}},
    }


def test_a_slice_that_is_the_whole_dataset_is_not_repeated() -> None:
    sliced = eval_metrics("m", "real", 0.4, "2026-11-21")
    whole = {**eval_metrics("m", "synth", 0.3, "2026-11-21"), "slices": {"synth": {"n": 5}}}
    assert [label for label, _ in evaluation_rows([sliced, whole])] == [
        "real (test)",
        "real (test) / librivox",
        "synth (test)",
    ]


def test_a_local_dataset_is_named_without_the_evaluating_machine_s_path() -> None:
    manifest = eval_metrics("m", "/root/.cache/tiny_audio/data/synth-kokoro/test.jsonl", 0.3, "d")
    folder = eval_metrics("m", "/home/ana/speech/my-clips", 0.3, "d")
    assert [label for label, _ in evaluation_rows([manifest, folder])] == [
        "synth-kokoro/test.jsonl (test)",
        "synth-kokoro/test.jsonl (test) / librivox",
        "speech/my-clips (test)",
        "speech/my-clips (test) / librivox",
    ]


@pytest.fixture(scope="module")
def checkpoint(tiny_parts: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint as `ta train` writes it (model, training state, its dev WER, the composed
    config beside it), plus `ta eval` runs inside it and in outputs/eval."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("run")
    output_dir = root / "outputs" / "tiny"
    config = ASRConfig(
        audio_encoder=tiny_parts["whisper"],
        text_decoder=tiny_parts["llama"],
        projector_hidden_dim=64,
    )
    state = {"optimizer": {}, "scheduler": {}, "best_wer": 0.75}
    directory = save_checkpoint(
        output_dir, 3, ASRModel(config).save_pretrained, state, {"dev_wer": 0.75}
    )
    OmegaConf.save(compose(["+experiments=smoke"]), output_dir / run_folder.RUN_CONFIG)
    inside = directory / "eval" / "checkpoint-3" / "real"
    inside.mkdir(parents=True)
    old, new = (
        eval_metrics(str(directory), "real", wer, date)
        for wer, date in ((0.5, "2026-01-01"), (0.25, "2026-02-01"))
    )
    (inside / "metrics.json").write_text(json.dumps(old))
    outside = root / "outputs" / "eval"
    for name, metrics in {
        "newer-real": new,  # same dataset, newer: replaces the one inside
        "synthetic": eval_metrics(str(directory), "synthetic", 0.125, "2026-01-05"),
        "someone-else": eval_metrics(str(root / "other"), "ami", 0.9, "2026-03-01"),
    }.items():
        (outside / name).mkdir(parents=True)
        (outside / name / "metrics.json").write_text(json.dumps(metrics))
    return directory


@pytest.fixture(scope="module")
def lact_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LaCT run's best checkpoint as `ta train +experiments=lact_tiny` leaves it (RUN/best,
    a link to the checkpoint with its dev figures): a character LM inside, the composed config
    beside it, and a `ta eval` run of it in outputs/eval."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("lact_run")
    output_dir = root / "outputs" / "lact"
    model = LaCTForCTC(tiny_config())
    model.lm = CharLM.fit(["hello world", "go forward"], model.tokenizer.characters, 3)
    state = {"optimizer": {}, "scheduler": {}, "best_cer": 0.25}
    dev = {"dev_cer": 0.25, "dev_wer": 0.5, "dev_loss": 1.5}
    saved = save_checkpoint(output_dir, 20, model.save_pretrained, state, dev)
    run_folder.point_best(output_dir, saved)
    directory = output_dir / run_folder.BEST
    OmegaConf.save(compose(["+experiments=lact_tiny"]), output_dir / run_folder.RUN_CONFIG)
    (root / "outputs" / "eval" / "lact").mkdir(parents=True)
    (root / "outputs" / "eval" / "lact" / "metrics.json").write_text(
        json.dumps(eval_metrics(str(directory), "synth", 0.5, "2026-03-01"))
    )
    return directory


@pytest.fixture(scope="module")
def noise(tmp_path_factory: pytest.TempPathFactory) -> Path:
    clip = (0.1 * np.random.default_rng(1).standard_normal(24000)).astype(np.float32)
    path = tmp_path_factory.mktemp("clips") / "noise.wav"
    sf.write(path, clip, 16000, subtype="FLOAT")
    return path


def push(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["push", *args], catch_exceptions=False)
    return result.exit_code, result.output


def front_matter(text: str) -> dict[str, object]:
    _, header, _ = text.split("---\n", 2)
    return yaml.safe_load(header)


def test_dry_run_folder_holds_the_model_card_and_requirements(
    checkpoint: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "hub"
    eval_dir = checkpoint.parents[1] / "eval"
    code, output = push(
        "-m",
        str(checkpoint),
        "--repo-id",
        "someone/tiny-asr",
        "--eval-dir",
        str(eval_dir),
        "--dry-run",
        str(folder),
    )
    assert code == 0, output

    names = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    saved = {str(p.relative_to(checkpoint)) for p in checkpoint.glob("*") if p.is_file()}
    # Neither the training state (a pickle) nor the checkpoint's own dev figures.
    assert names == (saved - {"training_state.pt", "metrics.json"}) | {
        "README.md",
        "requirements.txt",
    }
    assert not any(name.startswith("eval") for name in names)
    assert (
        json.loads((folder / "config.json").read_text())["auto_map"]["AutoModel"]
        == "modeling.ASRModel"
    )
    assert (folder / "model.safetensors").read_bytes() == (
        checkpoint / "model.safetensors"
    ).read_bytes()

    card = (folder / "README.md").read_text()
    meta = front_matter(card)
    assert meta["pipeline_tag"] == "automatic-speech-recognition"
    assert meta["library_name"] == "transformers"
    assert meta["license"] == "mit"
    assert meta["datasets"] == ["real:librivox"]
    results = meta["model-index"][0]["results"]  # type: ignore[index]
    assert [(r["dataset"]["name"], r["metrics"][0]["value"]) for r in results] == [
        ("real (test)", 25.0),
        ("real (test) / librivox", 35.0),
        ("synthetic (test)", 12.5),
        ("synthetic (test) / librivox", 22.5),
    ]
    assert 'model="someone/tiny-asr"' in card
    assert "| real (test) | 5 | 25.00 | 12.50 | 41.5 |" in card
    assert "ami (test)" not in card  # another model's run
    smoke = compose(["+experiments=smoke"])
    assert "| experiment | smoke |" in card
    assert f"| planned steps | {smoke.training.max_steps} |" in card
    assert "| checkpoint step | 3 |" in card and "| dev WER at this step | 75.00% |" in card
    assert "training data | real:librivox |" in card
    assert "```yaml\nmodel:" in card  # the whole config, for reproducing the run
    trained = sum(t.numel() for t in load_file(str(checkpoint / "model.safetensors")).values())
    assert f"| trained parameters | {trained:,} |" in card

    requirements = (folder / "requirements.txt").read_text().split()
    assert {line.split(">=")[0] for line in requirements} >= {
        "torch",
        "transformers",
        "peft",
        "safetensors",
        "numpy",
        "soundfile",
        "soxr",
    }
    # tiny-audio and faster-whisper are imported only where the code runs without them.
    assert not any(line.startswith(("tiny", "gradio", "faster")) for line in requirements)


def test_the_default_publishes_with_its_code_and_its_own_card_s_recipe_and_results(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "hub"
    code, output = push("-m", "default", "--repo-id", "someone/tiny-asr", "--dry-run", str(folder))
    assert code == 0, output
    for name in [*REMOTE_CODE_FILES, "audio.py"]:
        assert (folder / name).is_file(), name
    requirements = {
        line.split(">=")[0] for line in (folder / "requirements.txt").read_text().split()
    }
    assert requirements >= {"torch", "transformers", "peft", "safetensors", "soundfile", "soxr"}

    shipped = Card.parse((resolve("default") / "README.md").read_text())
    pushed = Card.parse((folder / "README.md").read_text())
    assert pushed.title == "tiny-asr"
    assert pushed.metadata["license"] == "mit" and pushed.metadata["datasets"]
    assert pushed.metadata["base_model"] == shipped.metadata["base_model"]
    [index] = pushed.metadata["model-index"]
    assert index["name"] == "tiny-asr"
    assert index["results"] == shipped.metadata["model-index"][0]["results"]
    # Every machine-readable result is the figure of its own row in the Evaluation table.
    table = pushed.sections["Evaluation"]
    for result in index["results"]:
        row = f"| {result['dataset']['name']} | "
        assert f"{row}" in table, row
        line = next(line for line in table.splitlines() if line.startswith(row))
        assert line.split(" | ")[2] == f"{result['metrics'][0]['value']:.2f}", line
    # The author's sections stay; how to load it names the repo it goes to.
    for heading in set(shipped.sections) - {"Use it", "Model"}:
        assert pushed.sections[heading] == shipped.sections[heading], heading
    assert 'model="someone/tiny-asr"' in pushed.sections["Use it"]
    assert "tiny-audio/default" not in (folder / "README.md").read_text()


def test_a_lact_checkpoint_publishes_with_its_code_recipe_and_results(
    lact_checkpoint: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "hub"
    eval_dir = lact_checkpoint.parents[1] / "eval"
    code, output = push(
        "-m", str(lact_checkpoint), "--repo-id", "someone/lact", "--eval-dir", str(eval_dir),
        "--dry-run", str(folder),
    )  # fmt: skip
    assert code == 0, output
    code = {Path(name).name for name in LACT_REMOTE_CODE_FILES}
    assert {p.name for p in folder.iterdir()} == code | {
        "README.md",
        "requirements.txt",
        "config.json",
        "model.safetensors",
        "vocab.json",
        "char_lm.json",
    }
    # What transformers checks before it runs a Hub repo's code: every package each file imports
    # is installed (tiny-audio need not be), and every file it imports relatively is there.
    for name in code:
        assert "tiny_audio" not in get_imports(folder / name), name
        assert {f"{module}.py" for module in get_relative_imports(folder / name)} <= code, name
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "hf.LaCTForCTCHF"
    saved = json.loads((lact_checkpoint / "config.json").read_text())
    assert {key: config[key] for key in saved} == saved
    requirements = (folder / "requirements.txt").read_text().split()
    assert {line.split(">=")[0] for line in requirements} >= {"torch", "transformers", "soxr"}
    assert not any(line.startswith(("tiny", "faster")) for line in requirements)

    card = Card.parse((folder / "README.md").read_text())
    assert card.metadata["library_name"] == "transformers" and card.metadata["license"] == "mit"
    assert "ta transcribe speech.wav -m someone/lact" in card.sections["Use it"]
    recipe = card.sections["Training recipe"]
    assert "| experiment | lact_tiny |" in recipe and "| planned steps | 3000 |" in recipe
    assert "| checkpoint step | 20 |" in recipe and "| dev WER at this step | 50.00% |" in recipe
    assert "| character LM for beam search | order 3, weight 0.6 |" in card.sections["Model"]
    assert "| synth (test) | 5 | 50.00 | 25.00 | 41.5 |" in card.sections["Evaluation"]
    assert card.metadata["datasets"] == ["synth-1h/train.jsonl"]  # lact_tiny's corpus


@pytest.mark.parametrize(
    ("model", "mode"),
    [
        ("checkpoint", "transformers only"),
        pytest.param("default", "transformers", marks=pytest.mark.slow),
        ("lact", "transformers only"),
        ("lact", "tiny-audio"),
    ],
)
def test_pushed_folder_transcribes_in_a_fresh_offline_process(
    model: str,
    mode: str,
    checkpoint: Path,
    lact_checkpoint: Path,
    noise: Path,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    source = {"checkpoint": str(checkpoint), "default": "default", "lact": str(lact_checkpoint)}
    folder = tmp_path / "hub"
    assert push("-m", source[model], "--repo-id", "someone/asr", "--dry-run", str(folder))[0] == 0
    clip = goforward_clip(tmp_path_factory) if model == "default" else noise

    options = {} if model == "lact" else {"max_new_tokens": 16, "vad": False}
    text = run_offline(LOAD_SCRIPT, folder, clip, mode, json.dumps(options), cwd=tmp_path)
    waveform, _ = sf.read(clip, dtype="float32")
    assert text == load_recognizer(source[model]).transcribe([waveform], **options)[0]
    if model == "default":
        assert "forward" in text.lower()


def test_push_refuses_a_non_empty_dry_run_folder(checkpoint: Path, tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    code, output = push("-m", str(checkpoint), "--repo-id", "a/b", "--dry-run", str(tmp_path))
    assert code == 1
    assert output.strip() == f"error: {tmp_path} is not empty; give --dry-run a new or empty folder"
    assert (tmp_path / "keep.txt").read_text() == "mine"


def run_ta(args: list[str], environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tiny_audio", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )


def test_push_without_a_token_is_one_clear_line(checkpoint: Path, tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
    environment["HF_HOME"] = str(tmp_path)  # no token saved by `hf auth login` either
    result = run_ta(["push", "-m", str(checkpoint), "--repo-id", "someone/tiny-asr"], environment)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: no Hugging Face token: set HF_TOKEN to a write token "
        "(https://huggingface.co/settings/tokens) or run `hf auth login`"
    ]


def test_failed_upload_is_one_clear_line(checkpoint: Path, tmp_path: Path) -> None:
    environment = {
        **os.environ,
        "HF_TOKEN": "hf_not_a_real_token",
        "HF_HOME": str(tmp_path),
        "HF_HUB_OFFLINE": "1",
    }
    result = run_ta(["push", "-m", str(checkpoint), "--repo-id", "someone/tiny-asr"], environment)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: uploading to someone/tiny-asr failed: ")
    assert "Traceback" not in result.stderr


def test_push_of_a_folder_without_a_saved_model_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    code, output = push("-m", str(tmp_path), "--repo-id", "a/b", "--dry-run", str(tmp_path / "out"))
    assert code == 1
    assert output.strip().startswith(
        f"error: {tmp_path}: no config.json of a tiny-audio or LaCT model"
    )
