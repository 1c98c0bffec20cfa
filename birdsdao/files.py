"""Files written whole or not at all."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def written_atomically(path: Path, mode: int | None = None) -> Iterator[Path]:
    """A temporary path beside `path` to write to; when the block ends it is renamed onto `path` (given `mode`),
    and when the block fails it is removed. A reader sees the old file or the whole new one, never half of one.
    The temporary name keeps `path`'s suffix (numpy adds .npz to a name without it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    os.close(handle)
    try:
        yield Path(temporary)
        if mode is not None:
            os.chmod(temporary, mode)  # mkstemp makes the file private
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
