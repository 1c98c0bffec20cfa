"""`birds`: the app, its global options, and the one place errors become exit codes."""

from __future__ import annotations

from typing import Annotated

import typer
from typer.core import TyperGroup

from birdsdao import __version__
from birdsdao.errors import BirdsError
from birdsdao.settings import HOME_ENV, load_settings
from birdsdao_cli import output
from birdsdao_cli.commands import ask, identify, kb, prepare_data, prune, ptune, train, train_classifier, ui

HELP = """\
鸟之道 birdsdao: recognise birds in photos and talk about them.

Each command is one step of the lifecycle; `birds COMMAND --help` explains it with an example.
"""


class BirdsGroup(TyperGroup):
    """Turns a `BirdsError` from any command into one clear line and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BirdsError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            output.error(str(exc), exc.hint)
            raise typer.Exit(code=2) from None


app = typer.Typer(
    name="birds",
    cls=BirdsGroup,
    help=HELP,
    rich_markup_mode="rich",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"birdsdao {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    home: Annotated[
        str | None,
        typer.Option("--home", envvar=HOME_ENV, help="Where KBs, models and runs live.", show_default="~/.birdsdao"),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", envvar="BIRDS_DEBUG", help="Show full tracebacks for errors.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    ctx.obj = {"debug": debug}
    ctx.obj["settings"] = load_settings(home)


app.command("prepare-data")(prepare_data.prepare_data)
app.command("train")(train.train)
app.command("val")(train.val)
app.command("prune")(prune.prune)
app.command("finetune")(prune.finetune)
app.command("export")(prune.export)
app.command("train-classifier")(train_classifier.train_classifier)
app.command("ptune")(ptune.ptune)
app.add_typer(kb.app, name="kb")
app.command("identify")(identify.identify)
app.command("ask")(ask.ask)
app.command("ui")(ui.ui)
