"""`birds ui`: the web app (recognition, Q&A, knowledge bases), served by Streamlit on this machine."""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from birdsdao_cli import output
from birdsdao_cli.options import (
    BaseModelOpt,
    ChromaHostOpt,
    ChromaPortOpt,
    NoPrefixOpt,
    PrefixOpt,
)


def ui(
    ctx: typer.Context,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to serve on.")] = 8501,
    host: Annotated[str, typer.Option("--host", help="Address to listen on; 0.0.0.0 lets other machines in.")]
    = "127.0.0.1",
    weights: Annotated[Path | None, typer.Option("--weights", help="Detector weights (.pt or .onnx).",
                                                 show_default="the bundled one")] = None,
    base_model: BaseModelOpt = None,
    prefix: PrefixOpt = None,
    no_prefix: NoPrefixOpt = False,
    no_llm: Annotated[bool, typer.Option("--no-llm", help="No language model: descriptions and answers are the "
                                         "retrieved text (starts and answers in seconds).")] = False,
    chroma_host: ChromaHostOpt = None,
    chroma_port: ChromaPortOpt = 8000,
) -> None:
    """Open the web app: identify birds in uploaded photos, ask questions, manage knowledge bases.

    Pages: 鸟类识别 / Identify, 鸟类问答 / Ask, 知识库管理 / Knowledge bases, in Chinese or English.
    It serves until Ctrl+C. Needs the \\[ui] extra: pip install "birdsdao\\[ui]".

    Examples:

      birds ui

      birds ui --port 8600 --no-llm
    """
    from birdsdao.errors import MissingDependencyError

    if importlib.util.find_spec("streamlit") is None:
        raise MissingDependencyError("birds ui needs Streamlit, which is not installed",
                                     hint='pip install "birdsdao[ui]"')
    from birdsdao.inputs import weights_file
    from birdsdao.language_model.runtime import check_model_paths, resolve_prefix  # light: no torch

    resolve_prefix(base_model, prefix, no_prefix)  # contradictory options fail here, not in the server
    check_model_paths(base_model, prefix)
    if weights is not None:
        weights_file(weights)  # missing, a folder, a photo, foreign bytes: before the server starts
    _check_port_free(host, port)
    from birdsdao.ui.config import UiConfig

    config = UiConfig(settings=ctx.obj["settings"], weights=str(weights.resolve()) if weights else None,
                      base_model=base_model, prefix=str(prefix.resolve()) if prefix else None, no_prefix=no_prefix,
                      no_llm=no_llm,
                      chroma_host=chroma_host, chroma_port=chroma_port if chroma_host else None)
    app = Path(importlib.util.find_spec("birdsdao.ui").origin).parent / "app.py"
    command = [sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(port),
               "--server.address", host, "--server.headless", "true", "--browser.gatherUsageStats", "false",
               "--server.fileWatcherType", "none", "--client.showErrorDetails", "none",
               "--client.toolbarMode", "minimal"]
    output.console.print(f"birds ui: http://{host}:{port} (Ctrl+C stops it)", highlight=False)
    sys.stdout.flush()
    sys.stderr.flush()
    # The server takes this process's place: a service manager's SIGTERM, a test's kill or Ctrl+C reach Streamlit
    # itself. A child process outlived `birds ui` when only its parent was told to stop, and kept the port.
    os.execve(sys.executable, command, {**os.environ, **config.to_env()})


def _check_port_free(host: str, port: int) -> None:
    from birdsdao.errors import InvalidInputError

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        # as the server itself binds: a port whose last server just stopped (TIME_WAIT) is free, one in use is not
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise InvalidInputError(f"cannot serve on {host}:{port} ({exc.strerror})",
                                    hint="choose another with --port") from None
