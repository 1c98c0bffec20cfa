"""Options shared by several commands, declared once so names and help text agree everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout (messages go to stderr).")]
DeviceOpt = Annotated[
    str | None, typer.Option("--device", help="Torch device: cpu, 0, 0,1 … (default: a GPU when there is one).")
]
WorkersOpt = Annotated[int, typer.Option("--workers", min=1, help="Processes that decode images in parallel.")]
ChromaHostOpt = Annotated[
    str | None,
    typer.Option("--chroma-host", envvar="BIRDS_CHROMA_HOST",
                 help="Use the Chroma server on this host (`chroma run`) instead of the local store.",
                 show_default="the local store in BIRDS_HOME/kb"),
]
ChromaPortOpt = Annotated[
    int, typer.Option("--chroma-port", envvar="BIRDS_CHROMA_PORT", min=1, max=65535, help="The Chroma server's port.")
]
EmbeddingModelOpt = Annotated[
    str | None,
    typer.Option("--embedding-model", help="multilingual-e5-small or all-MiniLM-L6-v2 (both packaged), or a local "
                 "sentence-transformers folder (m3e-base, bge-small-zh-v1.5 …).",
                 show_default="multilingual-e5-small; a KB's own model when it has one"),
]
BaseModelOpt = Annotated[
    str | None,
    typer.Option("--base-model", help="A local Hugging Face causal-LM folder (Qwen, GLM-4, Llama …) or a "
                 "ChatGLM2-6B folder.", show_default="gemma-3-270m, converted once"),
]
QuantizationOpt = Annotated[
    int | None,
    typer.Option("--quantization-bit", help="4 or 8: load the base model quantized through bitsandbytes, as the "
                 "original ran ChatGLM2-6B in INT4 (a CUDA GPU only; a clear error elsewhere).", show_default="none"),
]
PrefixOpt = Annotated[
    Path | None,
    typer.Option("--prefix", help="A prefix tuned with `birds ptune` (or an original ChatGLM2 checkpoint-N).",
                 show_default="the bundled weights/prefix with the default model; none with --base-model"),
]
NoPrefixOpt = Annotated[
    bool, typer.Option("--no-prefix", help="Answer with the base model alone, without the bundled prefix."),
]
