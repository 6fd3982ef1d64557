"""`ta transcribe -m DIR` on a tiny random LaCT model: long audio in windows, and one clear line
for an option LaCT does not have."""

from __future__ import annotations

import numpy as np
import torch
from helpers import tiny_config

from tiny_audio.lact.model import LaCTForCTC


def test_transcribe_command_windows_lact_audio_and_names_options_it_lacks(tmp_path) -> None:
    import soundfile as sf
    from click.testing import CliRunner

    from tiny_audio.cli import cli

    torch.manual_seed(0)
    model = LaCTForCTC(tiny_config())
    model.save_pretrained(tmp_path / "model")
    wave = (0.1 * np.random.default_rng(2).standard_normal(5 * 16_000)).astype(np.float32)
    sf.write(tmp_path / "noise.wav", wave, 16_000)
    command = ["transcribe", str(tmp_path / "noise.wav"), "-m", str(tmp_path / "model")]

    windowed = CliRunner().invoke(cli, [*command, "--chunk-length-s", "2"])
    assert windowed.exit_code == 0, windowed.output
    expected = model.eval().transcribe([wave], chunk_length_s=2.0)[0]
    assert expected != model.transcribe([wave])[0]  # the random model's windows read differently
    assert windowed.stdout.strip() == expected.strip()

    rejected = CliRunner().invoke(cli, [*command, "--prompt", "names"])
    assert rejected.exit_code == 1
    assert "not prompt" in rejected.output and "Traceback" not in rejected.output

    negative = CliRunner().invoke(cli, [*command, "--chunk-length-s", "-5"])
    assert negative.exit_code == 2 and "not in the range" in negative.output
