"""What `ta demo` says once it serves: where, how to stop it, and ta's own --share option (not
Gradio's `launch(share=True)`, which a ta user cannot set)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import tiny_config, wait_until
from ports import free_port

from tiny_audio.lact.model import LaCTForCTC


def test_the_demo_says_where_it_serves_in_ta_s_own_words(tmp_path: Path) -> None:
    model_dir = LaCTForCTC(tiny_config()).save_pretrained(tmp_path / "lact")  # loads in a moment
    port = free_port()
    log = tmp_path / "demo.log"
    env = {
        **os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
        "PYTHONUNBUFFERED": "1", "TINY_AUDIO_HOME": str(tmp_path / "home"),
    }  # fmt: skip
    command = [sys.executable, "-m", "tiny_audio", "demo", "-m", str(model_dir), "-p", str(port)]
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)

    def started() -> bool:  # ta's line, or Gradio's own
        return any(hint in log.read_text() for hint in ("Ctrl-C", "share=True"))

    try:
        wait_until(started, 300, log.read_text, process, interval_s=1)
    finally:
        process.terminate()
        process.wait(timeout=30)
    output = log.read_text()
    assert (
        f"{model_dir} on http://127.0.0.1:{port}/ "
        "(Ctrl-C stops it; --share adds a public gradio.live link)"
    ) in output.splitlines(), output
    assert "share=True" not in output
