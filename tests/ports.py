"""Local TCP ports for the tests that start real servers (sshd, the demo, a Space's app)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from helpers import wait_until


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_listening(
    port: int, server: subprocess.Popen[bytes], log: Path, timeout_s: float
) -> None:
    """Return once the server accepts connections; fail with its log if it exits or is late."""

    def listening() -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    wait_until(listening, timeout_s, lambda: f"port {port}:\n{log.read_text()}", server)
