"""Helpers for driving a running `birds ui` from outside (the browser test, the README's screenshots)."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def wait_until_serving(port: int, process: subprocess.Popen | None = None, seconds: float = 120,
                       host: str = "127.0.0.1") -> None:
    """Return once Streamlit's health check answers; raise RuntimeError if `process` exits or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"birds ui exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/_stcore/health", timeout=2) as reply:
                if reply.read() == b"ok":
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"birds ui did not answer on {host}:{port} within {seconds:.0f} s")
