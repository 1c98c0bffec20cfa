"""Everything the CLI shows: data on stdout, people-facing messages and progress on stderr."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

# stderr for anything a person reads, so `--json` stdout stays parseable.
console = Console(stderr=True)
stdout = Console(highlight=False)


def print_json(data: object) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def error(message: str, hint: str | None = None) -> None:
    # messages quote user input and commands ("birdsdao[ui]"): never read them as rich markup
    console.print(f"[bold red]Error:[/] {escape(message)}", highlight=False, markup=True, soft_wrap=True)
    if hint:
        console.print(f"[yellow]Hint:[/] {escape(hint)}", highlight=False, soft_wrap=True)


@contextmanager
def progress_bar(description: str) -> Iterator:
    """Yield a `(done, total)` callback that drives a rich progress bar on stderr.

    The bar appears at the first update, so an error found while checking the input is not
    preceded by an empty bar.
    """
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    bar = Progress(*columns, console=console, transient=False)
    task = None

    def update(done: int, total: int) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task(description, total=total)
        bar.update(task, completed=done, total=total)

    try:
        yield update
    finally:
        bar.stop()
