"""Shared foundations of birdsdao: errors and settings used by every library package and the CLI."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("birdsdao")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
