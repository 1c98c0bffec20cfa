"""The error family that library code raises for problems a user can fix.

The CLI turns any `BirdsError` into exit code 2 and one line (what, where, what to do);
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class BirdsError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class InvalidInputError(BirdsError):
    """A file or value the user gave cannot be used (names the path, and the line when it has one)."""


class DatasetNotFoundError(BirdsError):
    """A folder that should hold a dataset does not, or is not the expected kind."""


class OutputExistsError(BirdsError):
    """An output path exists and the user did not ask to overwrite it."""


class SettingsError(BirdsError):
    """The settings file or an environment variable holds something unusable."""


class MissingDependencyError(BirdsError):
    """An optional package that this feature needs is not installed."""


class WeightsNotFoundError(BirdsError):
    """A model weights file or folder is missing."""


class UnsupportedUltralyticsVersion(BirdsError):
    """The installed ultralytics is not a release whose trainer internals birdsdao was checked against."""
