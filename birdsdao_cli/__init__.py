"""The `birds` command line: thin Typer commands over the library packages."""
