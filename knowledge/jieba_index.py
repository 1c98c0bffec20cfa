"""jieba's dictionary read word by word from an index on disk, instead of whole into every process.

jieba loads its prefix dictionary (about 580,000 words and word prefixes with their frequencies, from a
marshal cache) the first time it cuts text: 0.7–1.7 s here, holding Python's interpreter lock throughout.
For a Chinese question that was most of retrieval, and it delayed the first token (docs/llm.md). Cutting a
question only ever looks up the question's own substrings, so jieba gets a mapping that reads those from an
SQLite index of the very same dictionary: the same words and frequencies, hence the same cuts. The index is
built once from jieba's own load and kept beside jieba's cache (the system's temporary folder), named by
jieba's release and its dictionary file; where it cannot be built or read, jieba loads its dictionary as usual.
"""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
import threading
from pathlib import Path

from birdsdao.files import written_atomically

_MISSING = object()


class DiskFrequencies:
    """The part of dict's interface jieba uses on its `FREQ` (`in`, `[]`, `get`, assignment), read from the
    index and remembered; words jieba adds (`add_word`) live in memory over it."""

    def __init__(self, path: Path):
        # read-only, and shared by threads (the web UI answers in several): one lock around the connection
        self._connection = sqlite3.connect(f"{Path(path).as_uri()}?mode=ro", uri=True, check_same_thread=False)
        self._lock = threading.Lock()
        self._known: dict[str, int | None] = {}
        try:
            self.total = int(self._query("SELECT value FROM meta WHERE key = 'total'"))
        except BaseException:
            self._connection.close()
            raise

    def _query(self, sql: str, *arguments):
        with self._lock:
            row = self._connection.execute(sql, arguments).fetchone()
        return row[0] if row else None

    def _lookup(self, word: str) -> int | None:
        found = self._known.get(word, _MISSING)
        if found is _MISSING:
            found = self._known[word] = self._query("SELECT freq FROM words WHERE word = ?", word)
        return found

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and self._lookup(word) is not None

    def __getitem__(self, word: str) -> int:
        found = self._lookup(word)
        if found is None:
            raise KeyError(word)
        return found

    def get(self, word: str, default=None):
        found = self._lookup(word)
        return default if found is None else found

    def __setitem__(self, word: str, freq: int) -> None:
        self._known[word] = int(freq)


def index_path(tokenizer) -> Path:
    """Where the index of `tokenizer`'s dictionary is kept: named by jieba's release and the dictionary file."""
    import jieba

    with tokenizer.get_dict_file() as file:  # jieba opens it to tell where it is
        dictionary = Path(file.name)
    stat = dictionary.stat()
    key = f"{jieba.__version__}|{dictionary.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return Path(tempfile.gettempdir()) / f"birdsdao-jieba-{hashlib.sha256(key.encode()).hexdigest()[:16]}.sqlite"


def attach_index(tokenizer) -> bool:
    """Give an uninitialized jieba tokenizer its dictionary from the index; True if the index serves it. Else
    (no index yet, or an unreadable one) jieba loads its dictionary as usual and the index is written from it
    for the next process; False."""
    if tokenizer.initialized:
        return False  # loaded whole already, maybe with words added: kept as it is
    path = None
    try:
        path = index_path(tokenizer)
        if path.is_file():
            frequencies = DiskFrequencies(path)
            tokenizer.FREQ, tokenizer.total, tokenizer.initialized = frequencies, frequencies.total, True
            return True
    except (OSError, sqlite3.Error, TypeError, ValueError):
        pass  # damaged or unreadable: written again below
    tokenizer.initialize()
    if path is not None:
        try:
            _write_index(path, tokenizer.FREQ, tokenizer.total)
        except (OSError, sqlite3.Error):
            pass  # a folder we may not write to: the next process loads jieba's dictionary again
    return False


def _write_index(path: Path, frequencies: dict[str, int], total: int) -> None:
    with written_atomically(path, mode=0o644) as partial:
        connection = sqlite3.connect(partial)
        try:
            connection.execute("CREATE TABLE words (word TEXT PRIMARY KEY, freq INTEGER NOT NULL) WITHOUT ROWID")
            connection.executemany("INSERT INTO words VALUES (?, ?)", frequencies.items())
            connection.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
            connection.execute("INSERT INTO meta VALUES ('total', ?)", (total,))
            connection.commit()
        finally:
            connection.close()
