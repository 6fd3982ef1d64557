"""Local TCP ports for the tests that start real servers (sshd, the demo, a Space's app)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_listening(
    port: int, server: subprocess.Popen[bytes], log: Path, timeout_s: float
) -> None:
    """Return once the server accepts connections; fail with its log if it exits or is late."""
    deadline = time.monotonic() + timeout_s
    while True:
        assert server.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"nothing listened on port {port}:\n{log.read_text()}"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
