"""Options shared by several commands, declared once so names and help text agree everywhere."""

from __future__ import annotations

from typing import Annotated

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout (messages go to stderr).")]
DeviceOpt = Annotated[
    str | None, typer.Option("--device", help="Torch device: cpu, 0, 0,1 … (default: a GPU when there is one).")
]
WorkersOpt = Annotated[int, typer.Option("--workers", min=1, help="Processes that decode images in parallel.")]
