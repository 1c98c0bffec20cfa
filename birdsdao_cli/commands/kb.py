"""`birds kb`: knowledge bases of a user's own documents, for grounded answers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from birdsdao_cli import output
from birdsdao_cli.options import ChromaHostOpt, ChromaPortOpt, EmbeddingModelOpt, JsonOpt

app = typer.Typer(
    help="""Knowledge bases: your documents, split, embedded and searchable (ChromaDB).

A KB lives in BIRDS_HOME/kb, or on a Chroma server with --chroma-host/--chroma-port
(or BIRDS_CHROMA_HOST/BIRDS_CHROMA_PORT). Names may be Chinese. The built-in KB `birds`
(鸟类百科) holds the species cards; it is built on first use.

Example: birds kb create 鸟类百科 && birds kb add 鸟类百科 notes/ && birds kb search 鸟类百科 "红嘴蓝鹊吃什么"
""",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(help="The knowledge base's name (any language).")]


def _prepare(address, name: str) -> None:
    """The built-in KB is built from the species cards on first use (about a minute), with a bar."""
    from birdsdao.knowledge import service

    with output.progress_bar("Embedding the species cards") as bar:
        service.prepare(address, name, progress=bar, say=lambda message: output.console.print(message))


def _address(ctx: typer.Context, host: str | None, port: int):
    from birdsdao.knowledge.service import StoreAddress

    return StoreAddress(ctx.obj["settings"].kb_dir, host, port if host else None)


@app.command()
def create(
    ctx: typer.Context,
    name: NameArg,
    embedding_model: EmbeddingModelOpt = None,
    description: Annotated[str, typer.Option("--description", "-d", help="What the KB holds.")] = "",
    chunk_size: Annotated[int, typer.Option("--chunk-size", min=20, help="Most characters in a chunk.")] = 250,
    chunk_overlap: Annotated[int, typer.Option("--chunk-overlap", min=0, help="Characters a chunk repeats from "
                                               "the one before.")] = 50,
    chroma_host: ChromaHostOpt = None,
    chroma_port: ChromaPortOpt = 8000,
    json_out: JsonOpt = False,
) -> None:
    """Make an empty knowledge base; its embedding model is fixed from now on.

    The packaged default, multilingual-e5-small, reads Chinese and English; all-MiniLM-L6-v2 (the default
    before) reads English only. A local m3e-base or bge folder works too. Figures: docs/retrieval.md.

    Example: birds kb create 鸟类百科 --description "我的观鸟笔记" --embedding-model ~/models/m3e-base
    """
    from birdsdao.knowledge import service

    info = service.create(_address(ctx, chroma_host, chroma_port), name, embedding_model, description,
                          chunk_size, chunk_overlap)
    if json_out:
        output.print_json(info.to_dict())
        return
    output.console.print(f"Created knowledge base [bold]{info.name}[/] (collection {info.slug}) with "
                         f"{info.embedding_model}, {info.embedding_dimension} dimensions, chunks of "
                         f"{info.chunk_size} characters.")
    output.console.print(f"Next: birds kb add {_quoted(info.name)} FILE_OR_FOLDER...", highlight=False)


@app.command("list")
def list_(
    ctx: typer.Context,
    chroma_host: ChromaHostOpt = None,
    chroma_port: ChromaPortOpt = 8000,
    json_out: JsonOpt = False,
) -> None:
    """List the knowledge bases with their sizes."""
    from birdsdao.knowledge import service
    from birdsdao.knowledge.builtin import BUILTIN_DESCRIPTION, BUILTIN_DISPLAY_NAME, BUILTIN_NAME
    from birdsdao.knowledge.embeddings import DEFAULT_EMBEDDING_MODEL

    infos = service.list_kbs(_address(ctx, chroma_host, chroma_port))
    builtin_built = any(info.slug == BUILTIN_NAME for info in infos)
    if json_out:
        output.print_json({"knowledge_bases": [info.to_dict() for info in infos], "builtin_built": builtin_built})
        return
    table = Table("name", "documents", "chunks", "embedding model", "description")
    for info in infos:
        name_cell = f"{info.name} ({info.slug})" if info.slug == BUILTIN_NAME else info.name
        table.add_row(name_cell, str(info.documents), str(info.chunks), info.embedding_model, info.description)
    if not builtin_built:
        table.add_row(f"{BUILTIN_DISPLAY_NAME} ({BUILTIN_NAME})", "-", "-", DEFAULT_EMBEDDING_MODEL,
                      BUILTIN_DESCRIPTION + "; built on first use")
    output.stdout.print(table)


@app.command()
def show(
    ctx: typer.Context,
    name: NameArg,
    chroma_host: ChromaHostOpt = None,
    chroma_port: ChromaPortOpt = 8000,
    json_out: JsonOpt = False,
) -> None:
    """Show a knowledge base: its settings, size and documents."""
    from birdsdao.knowledge import service

    address = _address(ctx, chroma_host, chroma_port)
    _prepare(address, name)
    info, documents = service.show(address, name)
    size = service.store_size(address)
    if json_out:
        output.print_json({**info.to_dict(), "store_bytes": size, "documents": [vars(d) for d in documents]})
        return
    summary = Table.grid(padding=(0, 2))
    summary.add_row("name", f"{info.name} (collection {info.slug})")
    summary.add_row("description", info.description or "-")
    summary.add_row("embedding model", f"{info.embedding_model} ({info.embedding_dimension} dimensions, "
                    f"fingerprint {info.embedding_fingerprint})")
    summary.add_row("chunking", f"{info.chunk_size} characters, {info.chunk_overlap} overlap")
    summary.add_row("contents", f"{info.documents} documents, {info.chunks} chunks, "
                    f"{sum(d.characters for d in documents):,} characters")
    if size is not None:
        summary.add_row("store on disk", f"{size / 1e6:.1f} MB in {address.kb_dir} (all local KBs together)")
    summary.add_row("created", info.created)
    output.stdout.print(summary)
    if documents:
        table = Table("pages", "chunks", "characters", "added")
        table.columns.insert(0, Table("document").columns[0])
        table.columns[0].overflow = "fold"
        for doc in documents:
            table.add_row(doc.source, str(doc.pages), str(doc.chunks), f"{doc.characters:,}", doc.added)
        output.stdout.print(table)


@app.command()
def add(
    ctx: typer.Context,
    name: NameArg,
    paths: Annotated[list[Path], typer.Argument(help="Files, or folders to read recursively.", exists=True)],
    embedding_model: EmbeddingModelOpt = None,
    chroma_host: ChromaHostOpt = None,
    chroma_port: ChromaPortOpt = 8000,
    json_out: JsonOpt = False,
) -> None:
    """Add documents (txt, md, pdf, docx, html, csv, json); re-adding an edited file replaces its chunks.

    Unchanged files are left alone; unreadable files are listed and skipped (none readable: an error).
    A document is known by its full path, so two notes.md in different folders are two documents.

    Example: birds kb add 鸟类百科 ~/birding/notes ~/birding/checklist.pdf
    """
    from birdsdao.knowledge import service

    address = _address(ctx, chroma_host, chroma_port)
    with output.progress_bar("Embedding chunks") as bar:
        result = service.add(address, name, paths, embedding_model, progress=bar)
    if json_out:
        output.print_json(result.to_dict())
        return
    output.console.print(
        f"{name}: {len(result.added)} added, {len(result.replaced)} replaced, {len(result.unchanged)} unchanged, "
        f"{len(result.skipped) + len(result.empty)} skipped; {result.chunks_added} chunks written, "
        f"{result.chunks_removed} old chunks removed.", highlight=False)
    _print_skipped(result)


def _print_skipped(result) -> None:
    for skipped in result.skipped:
        output.console.print(f"  [yellow]skipped[/] {skipped['path']}: {skipped['reason']}", highlight=False)
    for path in result.empty:
        output.console.print(f"  [yellow]skipped[/] {path}: no text in it", highlight=False)


@app.command()
def rebuild(
    ctx: typer.Context,
    name: NameArg,
    embedding_model: EmbeddingModelOpt = None,
    chroma_host: ChromaHostOpt = None,
    chroma_port: ChromaPortOpt = 8000,
    json_out: JsonOpt = False,
) -> None:
    """Embed a knowledge base again from its files; `birds` (鸟类百科) is rebuilt from the species cards.

    Example: birds kb rebuild birds
    """
    from birdsdao.knowledge import service

    address = _address(ctx, chroma_host, chroma_port)
    with output.progress_bar("Embedding chunks") as bar:
        result = service.rebuild(address, name, embedding_model, progress=bar,
                                 say=lambda message: output.console.print(message))
    if json_out:
        output.print_json(result.to_dict())
        return
    output.console.print(f"{name}: {result.chunks_added} chunks embedded from "
                         f"{len(result.added) + len(result.replaced)} documents.", highlight=False)
    _print_skipped(result)


@app.command()
def remove(
    ctx: typer.Context,
    name: NameArg,
    document: Annotated[str, typer.Argument(help="The document: its path, or its file name when unique.")],
    chroma_host: ChromaHostOpt = None,
    chroma_port: ChromaPortOpt = 8000,
    json_out: JsonOpt = False,
) -> None:
    """Remove one document and all its chunks from a knowledge base."""
    from birdsdao.knowledge import service

    doc = service.remove(_address(ctx, chroma_host, chroma_port), name, document)
    if json_out:
        output.print_json(vars(doc))
        return
    output.console.print(f"Removed {doc.source} ({doc.chunks} chunks) from {name}.", highlight=False)


@app.command()
def delete(
    ctx: typer.Context,
    name: NameArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    chroma_host: ChromaHostOpt = None,
    chroma_port: ChromaPortOpt = 8000,
    json_out: JsonOpt = False,
) -> None:
    """Delete a knowledge base and everything in it (your files are not touched)."""
    from birdsdao.knowledge import service

    address = _address(ctx, chroma_host, chroma_port)
    if not yes:
        info = service.get_info(address, name)  # a missing KB is an error before the question
        if not typer.confirm(f"Delete knowledge base {info.name!r} and all its chunks?", err=True):
            raise typer.Exit(code=1)
    info = service.delete(address, name)
    if json_out:
        output.print_json(info.to_dict())
        return
    output.console.print(f"Deleted knowledge base {info.name} ({info.chunks} chunks).", highlight=False)


@app.command()
def search(
    ctx: typer.Context,
    name: NameArg,
    query: Annotated[str, typer.Argument(help="What to look for, in Chinese or English.")],
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, help="How many chunks.")] = 3,
    method: Annotated[str, typer.Option("--method", help="hybrid, dense or bm25.")] = "hybrid",
    embedding_model: EmbeddingModelOpt = None,
    chroma_host: ChromaHostOpt = None,
    chroma_port: ChromaPortOpt = 8000,
    json_out: JsonOpt = False,
) -> None:
    """Search a knowledge base: the best chunks, their scores and sources.

    The score is reciprocal rank fusion of BM25 (jieba words) and embedding search, scaled to 0..1:
    higher is better, 1.0 = first for both. "relevant" says whether the chunk shares enough of the
    question's rare words or is close enough in meaning to be worth answering from.
    """
    from birdsdao.errors import InvalidInputError
    from birdsdao.knowledge import service
    from birdsdao.knowledge.retrieval import METHODS

    if method not in METHODS:
        raise InvalidInputError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    address = _address(ctx, chroma_host, chroma_port)
    _prepare(address, name)
    hits = service.query(address, name, query, k=k, method=method, embedding_model=embedding_model)
    if json_out:
        output.print_json([hit.to_dict() for hit in hits])
        return
    if not hits:
        output.console.print(f"{name} is empty: nothing to search.")
        return
    table = Table("#", "score", "relevant")
    table.add_column("source", overflow="fold")
    table.add_column("text")
    for rank, hit in enumerate(hits, start=1):
        table.add_row(str(rank), f"{hit.score:.3f}", "yes" if hit.relevant else "no", hit.citation,
                      _snippet(hit.text))
    output.stdout.print(table)


def _snippet(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _quoted(name: str) -> str:
    return f'"{name}"' if any(char.isspace() for char in name) else name
