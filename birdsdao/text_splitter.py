"""Split text into chunks along sentence ends, Chinese (。！？；) as well as English.

Sentences are packed into chunks of at most `size` characters; each chunk starts with the last
sentences of the one before, up to `overlap` characters, so an answer that straddles a boundary is
still found whole somewhere. A sentence longer than `size` is cut by characters. Every chunk knows
where it sits in its page (character offsets), and its id derives from its document, position and
text: re-adding an unchanged file gives the same ids.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

# a KB's chunks unless made otherwise; the grounded tuning set cuts its passages the same way
DEFAULT_CHUNK_SIZE = 250
DEFAULT_CHUNK_OVERLAP = 50

# a sentence ends after Chinese 。！？；… or after English .!?; followed by space, or at a line break
_SENTENCE_END = re.compile(r"(?<=[。！？；…])|(?<=[.!?;])(?=\s)|\n+")


@dataclass(frozen=True)
class Chunk:
    text: str
    start: int  # character offsets in the page text
    end: int


def sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence, white space at the edges left out."""
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    trimmed = []
    for begin, end in spans:
        while begin < end and text[begin].isspace():
            begin += 1
        while end > begin and text[end - 1].isspace():
            end -= 1
        if begin < end:
            trimmed.append((begin, end))
    return trimmed


def split_text(text: str, size: int = DEFAULT_CHUNK_SIZE, overlap: int = DEFAULT_CHUNK_OVERLAP) -> list[Chunk]:
    if size < 1 or not 0 <= overlap < size:
        raise ValueError("chunk size must be positive and the overlap smaller than it")
    pieces: list[tuple[int, int]] = []
    for begin, end in sentences(text):
        while end - begin > size:  # a run-on sentence: cut it, keeping the overlap
            pieces.append((begin, begin + size))
            begin += size - overlap
        pieces.append((begin, end))
    chunks: list[Chunk] = []
    current: list[tuple[int, int]] = []
    for piece in pieces:
        if current and piece[1] - current[0][0] > size:
            chunks.append(_chunk(text, current))
            current = _tail(current, overlap, piece, size)
        current.append(piece)
    if current:
        chunks.append(_chunk(text, current))
    return chunks


def _chunk(text: str, pieces: list[tuple[int, int]]) -> Chunk:
    return Chunk(text[pieces[0][0]:pieces[-1][1]], pieces[0][0], pieces[-1][1])


def _tail(pieces: list[tuple[int, int]], overlap: int, following: tuple[int, int], size: int):
    """The last sentences of a chunk, within `overlap` characters, that still leave room for `following`."""
    tail: list[tuple[int, int]] = []
    for piece in reversed(pieces):
        if pieces[-1][1] - piece[0] > overlap or following[1] - piece[0] > size:
            break
        tail.insert(0, piece)
    return tail


def chunk_id(document_key: str, page: int | None, chunk: Chunk) -> str:
    digest = hashlib.sha256(f"{document_key}\x00{page}\x00{chunk.start}\x00{chunk.text}".encode())
    return digest.hexdigest()[:32]
