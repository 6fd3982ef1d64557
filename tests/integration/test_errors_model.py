"""A damaged checkpoint (weights truncated, header-corrupt or missing; config.json of random bytes,
invalid JSON or shapes the weights do not have) is one line naming the file, from the loaders
and from `ta transcribe -m DIR`, never a traceback."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner, Result

from tiny_audio.cli import cli
from tiny_audio.errors import UserError
from tiny_audio.lact.config import LaCTConfig
from tiny_audio.lact.model import LaCTForCTC
from tiny_audio.recognizer import load_recognizer


def truncate_weights(folder: Path) -> str:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    return "model.safetensors"


def corrupt_weights_header(folder: Path) -> str:
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[8:40] = b"x" * 32  # the JSON header starts after its 8-byte length
    weights.write_bytes(bytes(data))
    return "model.safetensors"


def remove_weights(folder: Path) -> str:
    (folder / "model.safetensors").unlink()
    return "model.safetensors"


def random_config(folder: Path) -> str:
    (folder / "config.json").write_bytes(np.random.default_rng(0).bytes(2000))
    return "config.json"


def invalid_json_config(folder: Path) -> str:
    (folder / "config.json").write_text('{"model_type": "tiny_audio",\n')
    return "config.json"


def edit_config(key: str, value: object) -> Callable[[Path], str]:
    def edit(folder: Path) -> str:
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, key: value}))
        return "config.json"

    return edit


DAMAGES: dict[str, Callable[[Path], str]] = {
    "truncated weights": truncate_weights,
    "corrupt weights header": corrupt_weights_header,
    "missing weights": remove_weights,
    "random bytes config": random_config,
    "invalid JSON config": invalid_json_config,
}


@pytest.fixture(scope="module")
def saved_asr(tmp_path_factory: pytest.TempPathFactory, tiny_parts: dict[str, str]) -> Path:
    from tiny_audio.model import ASRConfig, ASRModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("asr")
    config = ASRConfig(
        audio_encoder=tiny_parts["whisper"],
        text_decoder=tiny_parts["llama"],
        projector_hidden_dim=32,
    )
    ASRModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def saved_lact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    config = LaCTConfig(
        hidden_size=32, num_hidden_layers=2, num_attn_heads=2, num_lact_heads=2,
        intermediate_size=64, attention_window=3, lact_chunk_size=4,
    )  # fmt: skip
    return LaCTForCTC(config).save_pretrained(tmp_path_factory.mktemp("lact"))


def damaged_copy(saved: Path, damage: Callable[[Path], str], tmp_path: Path) -> tuple[Path, str]:
    folder = shutil.copytree(saved, tmp_path / "model")
    return folder, str(folder / damage(folder))


def assert_one_line_naming(result: Result, file: str) -> None:
    """Exit status 1 through the command line's UserError handler (an uncaught exception would
    be `result.exception` itself), and one error line that names the file."""
    assert isinstance(result.exception, SystemExit) and result.exit_code == 1, result.exception
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and file in errors[0], result.output


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "clip.wav"
    sf.write(path, np.zeros(8000, dtype=np.float32), 16000)
    return path


@pytest.mark.parametrize(
    "damage",
    [*DAMAGES.values(), edit_config("projector_hidden_dim", 16), edit_config("lora_rank", 4)],
    ids=[*DAMAGES, "config shapes the projector otherwise", "config adds LoRA"],
)
def test_damaged_tiny_audio_checkpoint_is_one_line(
    damage: Callable[[Path], str], saved_asr: Path, tmp_path: Path, clip: Path
) -> None:
    from tiny_audio.model import ASRModel

    folder, file = damaged_copy(saved_asr, damage, tmp_path)
    with pytest.raises(UserError, match=re.escape(file)):
        ASRModel.from_pretrained(folder)
    result = CliRunner().invoke(cli, ["transcribe", "-m", str(folder), str(clip)])
    assert_one_line_naming(result, file)


@pytest.mark.parametrize(
    "damage",
    [*DAMAGES.values(), edit_config("intermediate_size", 48), edit_config("num_hidden_layers", 3)],
    ids=[*DAMAGES, "config shapes the layers otherwise", "config adds a layer"],
)
def test_damaged_lact_checkpoint_is_one_line(
    damage: Callable[[Path], str], saved_lact: Path, tmp_path: Path, clip: Path
) -> None:
    folder, file = damaged_copy(saved_lact, damage, tmp_path)
    with pytest.raises(UserError, match=re.escape(file)):
        LaCTForCTC.from_pretrained(folder)
    with pytest.raises(UserError, match=re.escape(file)):
        load_recognizer(str(folder))
    result = CliRunner().invoke(cli, ["transcribe", "-m", str(folder), str(clip)])
    assert_one_line_naming(result, file)
