"""LaCT training on a few real flite utterances: loss falls, checkpoints resume exactly, training
batches are augmented and dev batches are not, the NaN guard names the layer, and `ta debug nan`
finds it in a checkpoint."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from omegaconf import DictConfig
from safetensors.torch import load_file, save_file

from tiny_audio.errors import UserError
from tiny_audio.lact.config import LaCTConfig
from tiny_audio.lact.model import LaCTForCTC
from tiny_audio.lact.tokenizer import CharTokenizer
from tiny_audio.ops.debug import nan_command
from tiny_audio.train import run_folder
from tiny_audio.train.components import augmenters
from tiny_audio.train.lact import CTCCollator, DataArgs, SpeechDataset, ctc_loss, train
from tiny_audio.train.main import compose
from tiny_audio.train.nonfinite import first_nonfinite_module

SENTENCES = ["the cat sat on the mat", "a dog ran home", "we see the sea", "go to bed now"]


@pytest.fixture(autouse=True)
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lact_corpus")
    rows = []
    for index, text in enumerate(SENTENCES):
        audio = root / f"{index}.wav"
        subprocess.run(["flite", "-voice", "kal16", "-t", text, "-o", str(audio)], check=True)
        rows.append(
            {
                "id": str(index),
                "audio": audio.name,
                "text": text.upper(),
                "duration": 2.0,
                "speaker": "kal16",
            }
        )
    (root / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root


def compose_tiny(corpus: Path, output_dir: Path, *overrides: str) -> DictConfig:
    """The config `ta train +experiments=lact_tiny ...` would hand to the LaCT trainer."""
    manifest = corpus / "train.jsonl"
    return compose(
        [
            "+experiments=lact_tiny",
            "model.hidden_size=32",
            "model.num_hidden_layers=1",
            "model.num_attn_heads=2",
            "model.num_lact_heads=2",
            "model.intermediate_size=64",
            "model.lact_chunk_size=8",
            f"data.train=[{{source:'{manifest}'}}]",
            f"data.dev={{source:'{manifest}'}}",
            f"training.output_dir='{output_dir}'",
            "training.per_device_train_batch_size=2",
            "training.learning_rate=3e-3",
            "training.warmup_steps=3",
            "training.logging_steps=1",
            "training.sample_steps=10",
            "training.eval_steps=10",
            "training.save_steps=10",
            *overrides,
        ]
    )


def read_metrics(output_dir: Path) -> list[dict]:
    return [
        json.loads(line) for line in (output_dir / run_folder.METRICS_LOG).read_text().splitlines()
    ]


@pytest.fixture(scope="module")
def straight_run(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    threads = torch.get_num_threads()
    output_dir = tmp_path_factory.mktemp("lact_run")
    train(compose_tiny(corpus, output_dir, "training.max_steps=30"))
    torch.set_num_threads(threads)
    return output_dir


def test_tiny_training_reduces_loss_and_writes_checkpoints(
    corpus: Path, straight_run: Path
) -> None:
    losses = [row["loss"] for row in read_metrics(straight_run) if "loss" in row]
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
    checkpoint = straight_run / "checkpoint-10"
    assert {p.name for p in checkpoint.iterdir()} == {
        "config.json",
        "model.safetensors",
        "vocab.json",
        "char_lm.json",
        "training_state.pt",
        "metrics.json",
    }
    # best links the checkpoint of the lowest dev CER, which records its figures; the run's
    # config is saved as `ta train` saves every run's (`ta push` puts it in the card).
    best = straight_run / "best"
    dev = min((row for row in read_metrics(straight_run) if "cer" in row), key=lambda r: r["cer"])
    assert best.is_symlink() and best.resolve() == straight_run / f"checkpoint-{dev['step']}"
    figures = json.loads((best / "metrics.json").read_text())
    assert figures == {
        "step": dev["step"],
        "dev_cer": dev["cer"],
        "dev_wer": dev["wer"],
        "dev_loss": dev["val_loss"],
    }
    assert (straight_run / "config.yaml").is_file()
    assert json.loads((best / "config.json").read_text())["model_type"] == "lact_asr"
    model = LaCTForCTC.from_pretrained(best)
    assert isinstance(model.transcribe([str(corpus / "0.wav")])[0], str)
    # The character LM was fitted on the training transcripts (normalised: lower case).
    assert model.lm is not None
    assert model.lm.probability("the ca", "t") > 0.5 > model.lm.probability("the ca", "q")
    model.config.lm_weight = 0.5
    assert isinstance(model.transcribe([str(corpus / "0.wav")], num_beams=4)[0], str)


def test_resuming_replays_the_remaining_steps_exactly(
    corpus: Path, straight_run: Path, tmp_path: Path
) -> None:
    checkpoint = straight_run / "checkpoint-10"
    train(
        compose_tiny(
            corpus,
            tmp_path,
            "training.max_steps=30",
            f"training.resume_from_checkpoint={checkpoint}",
        )
    )
    assert read_metrics(tmp_path)[0]["step"] == 11
    expected = load_file(str(straight_run / "checkpoint-30" / "model.safetensors"))
    actual = load_file(str(tmp_path / "checkpoint-30" / "model.safetensors"))
    for name, tensor in expected.items():
        torch.testing.assert_close(actual[name], tensor, rtol=1e-5, atol=1e-6, msg=name)


def test_dataset_labels_clips_with_what_they_say(corpus: Path, tmp_path: Path) -> None:
    """Where a manifest gives the spoken form, the CTC target spells it: the character
    vocabulary has no digits, so the written "9:45" would leave the heard words unlabelled."""
    row = json.loads((corpus / "train.jsonl").read_text().splitlines()[0])
    row |= {"audio": str(corpus / row["audio"]), "text": "Meet at 9:45."}
    spoken = dict(row, spoken="Meet at nine forty-five.")
    (tmp_path / "train.jsonl").write_text(json.dumps(row) + "\n" + json.dumps(spoken) + "\n")
    tokenizer = CharTokenizer()
    dataset = SpeechDataset(
        [{"source": str(tmp_path / "train.jsonl")}], "train", tokenizer, DataArgs()
    )
    assert [text for _, text in dataset.items] == [
        tokenizer.normalize("Meet at 9:45."),
        tokenizer.normalize("Meet at nine forty-five."),
    ]
    assert "nine forty" in dataset.items[1][1] and "nine" not in dataset.items[0][1]


def test_collator_augments_only_when_given_augmenters_and_keeps_silent_clips(
    corpus: Path,
) -> None:
    tokenizer = CharTokenizer()
    sources = [{"source": str(corpus / "train.jsonl")}]
    dataset = SpeechDataset(sources, "train", tokenizer, DataArgs(), silence=0.5)
    assert len(dataset) == 6 and [text for _, text in dataset.items][4:] == ["", ""]
    items = [dataset[index] for index in range(len(dataset))]

    plain, again = CTCCollator(tokenizer, 80)(items), CTCCollator(tokenizer, 80)(items)
    torch.testing.assert_close(plain["input_features"], again["input_features"])
    assert plain["label_lengths"].tolist()[4:] == [0, 0]  # silence: an all-blank target

    masked = CTCCollator(tokenizer, 80, *augmenters({"specaugment": 1.0}))(items)
    assert torch.equal(masked["feature_lengths"], plain["feature_lengths"])
    assert not torch.equal(masked["input_features"], plain["input_features"])

    faster_or_slower = CTCCollator(tokenizer, 80, *augmenters({"speed": 1.0}))(items)
    assert not torch.equal(faster_or_slower["feature_lengths"], plain["feature_lengths"])

    model = LaCTForCTC(
        LaCTConfig(
            hidden_size=32,
            num_hidden_layers=1,
            num_attn_heads=2,
            num_lact_heads=2,
            intermediate_size=64,
            vocab_size=len(tokenizer),
        ),
        tokenizer,
    )
    logits, lengths = model(masked["input_features"], masked["feature_lengths"])
    assert torch.isfinite(ctc_loss(logits, lengths, masked, tokenizer.blank_id))


def test_training_reads_the_augment_block(corpus: Path, straight_run: Path, tmp_path: Path) -> None:
    augment = ["data.augment.speed=1.0", "data.augment.specaugment=1.0"]
    train(compose_tiny(corpus, tmp_path / "augmented", "training.max_steps=2", *augment))
    first_loss = read_metrics(straight_run)[0]["loss"]  # same seed, same first batch
    assert read_metrics(tmp_path / "augmented")[0]["loss"] != pytest.approx(first_loss)
    with pytest.raises(UserError, match="unknown augmentation echo"):
        train(compose_tiny(corpus, tmp_path / "unknown", "+data.augment.echo=0.5"))


def test_a_wandb_key_is_said_to_go_unused(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "a-key")
    output_dir = tmp_path / "run"
    train(compose_tiny(corpus, output_dir, "training.max_steps=1"))
    assert (
        f"warning: WANDB_API_KEY is set, but a LaCT run logs only to "
        f"{output_dir / run_folder.METRICS_LOG}, not to W&B"
    ) in capsys.readouterr().out.splitlines()


def test_nan_guard_skips_steps_and_names_the_layer(
    corpus: Path, straight_run: Path, tmp_path: Path
) -> None:
    poisoned = tmp_path / "poisoned"
    shutil.copytree(straight_run / "checkpoint-10", poisoned)
    weights = load_file(str(poisoned / "model.safetensors"))
    weights["blocks.0.mixer.w1"][0] = float("nan")
    save_file(weights, str(poisoned / "model.safetensors"))
    output_dir = tmp_path / "run"
    overrides = ["training.max_steps=30", "training.max_nonfinite_steps=3"]
    with pytest.raises(UserError, match="3 non-finite steps in a row"):
        train(
            compose_tiny(
                corpus, output_dir, *overrides, f"training.resume_from_checkpoint={poisoned}"
            )
        )
    skipped = [row for row in read_metrics(output_dir) if row.get("skipped")]
    assert [row["step"] for row in skipped] == [10, 10, 10]  # no update was applied
    assert "first non-finite output: blocks.0.mixer" in skipped[0]["where"]


def test_first_nonfinite_module_and_debug_nan_command(tmp_path: Path) -> None:
    config = LaCTConfig(
        hidden_size=32,
        num_hidden_layers=3,
        num_attn_heads=2,
        num_lact_heads=2,
        intermediate_size=64,
    )
    model = LaCTForCTC(config).eval()
    features, lengths = torch.randn(1, 120, 80), torch.tensor([120])
    assert first_nonfinite_module(model, features, lengths) is None
    with torch.no_grad():
        model.blocks[1].ffn.up.weight[3, 5] = float("inf")
    assert first_nonfinite_module(model, features, lengths) == "blocks.1.ffn.up"

    model.save_pretrained(tmp_path)
    report = tmp_path / "report.json"
    result = CliRunner().invoke(nan_command, [str(tmp_path), "--json", str(report)])
    assert result.exit_code == 0, result.output
    assert "non-finite parameters: blocks.1.ffn.up.weight" in result.output
    assert json.loads(report.read_text())["first_nonfinite_output"] == "blocks.1.ffn.up"
