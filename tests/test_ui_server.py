"""`birds ui` stops with itself: SIGTERM to the command leaves no server on the port and no process behind."""

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from birdsdao.ui.serving import free_port, wait_until_serving


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc")
def test_sigterm_to_birds_ui_frees_the_port_and_leaves_no_process(tmp_path):
    pytest.importorskip("streamlit", reason="birds ui needs the [ui] extra")
    port = free_port()
    env = {**os.environ, "BIRDS_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"}
    birds = shutil.which("birds", path=str(Path(sys.executable).parent)) or "birds"
    log = tmp_path / "server.log"
    process = subprocess.Popen([birds, "ui", "--port", str(port), "--no-llm"], env=env, stdout=log.open("w"),
                               stderr=subprocess.STDOUT)
    try:
        wait_until_serving(port, process)
        assert processes_mentioning(f"--server.port {port}") == [process.pid]  # the server is birds ui itself
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) is not None
    finally:
        if process.poll() is None:
            process.kill()
    assert processes_mentioning(f"--server.port {port}") == []
    with socket.socket() as probe:  # free again for the next server (which binds with SO_REUSEADDR, as here)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
        probe.listen()
