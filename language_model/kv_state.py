"""llama.cpp's saved state of one sequence's KV cache, read into numpy and written back.

`llama_state_seq_get_data` returns, for each KV cache of the context (Gemma 3: the full-attention cache, then
the sliding-window one), the cells of the sequence: per cell its position and sequence ids, then per layer of
that cache the key rows (one row a cell) and the value rows (or, when values are stored transposed, one column
a cell). The layout is llama.cpp's internal one, which is why pyproject pins llama-cpp-python; `read_state`
checks every size it meets and `write_state` gives back exactly as many bytes as it read, so a change of layout
fails loudly here instead of corrupting a cache.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

GGML_TYPE_F32, GGML_TYPE_F16 = 0, 1
STATE_MAGIC = 0xAF143CD8  # llama_context's io_magic, written before the sequence id
_DTYPES = {GGML_TYPE_F32: np.float32, GGML_TYPE_F16: np.float16}


class StateFormatError(ValueError):
    """The state is not laid out as this llama.cpp version writes it."""


@dataclass
class CacheLayers:
    """One KV cache's cells of the sequence: positions and, per layer of the cache, keys and values."""

    positions: np.ndarray  # (cells,) int32
    seq_ids: list[list[int]]
    value_transposed: bool
    keys: list[np.ndarray] = field(default_factory=list)  # per layer (cells, n_embd_k) of its ggml type
    values: list[np.ndarray] = field(default_factory=list)  # per layer (cells, n_embd_v)


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def take(self, size: int) -> bytes:
        if self.at + size > len(self.data):
            raise StateFormatError(f"the state ends at byte {len(self.data)}, {self.at + size} expected")
        chunk = self.data[self.at:self.at + size]
        self.at += size
        return chunk

    def unpack(self, fmt: str):
        values = struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))
        return values if len(values) > 1 else values[0]


def read_state(data: bytes, caches: int) -> list[CacheLayers]:
    """The `caches` KV caches (one stream each) of sequence 0's state, in the order llama.cpp wrote them."""
    reader = _Reader(bytes(data))
    magic, seq_id = reader.unpack("Ii")
    if (magic, seq_id) != (STATE_MAGIC, 0):
        raise StateFormatError(f"a state that starts with {magic:#x} for sequence {seq_id}, "
                               f"not {STATE_MAGIC:#x} for sequence 0")
    result = [_read_cache(reader) for _ in range(caches)]
    if reader.at != len(reader.data):
        raise StateFormatError(f"{len(reader.data) - reader.at} bytes left after {caches} caches")
    return result


def _read_cache(reader: _Reader) -> CacheLayers:
    streams = reader.unpack("I")
    if streams != 1:
        raise StateFormatError(f"{streams} streams in a cache (one expected: a single-sequence context)")
    cells = reader.unpack("I")
    if cells == 0:
        raise StateFormatError("the sequence has no cells in a cache")
    positions, seq_ids = np.empty(cells, np.int32), []
    for cell in range(cells):
        positions[cell], count = reader.unpack("iI")
        seq_ids.append(list(struct.unpack(f"<{count}i", reader.take(4 * count))))
    transposed, layers = reader.unpack("II")
    cache = CacheLayers(positions, seq_ids, bool(transposed))
    for _ in range(layers):
        ggml_type, row_bytes = reader.unpack("iQ")
        dtype = _dtype(ggml_type)
        cache.keys.append(np.frombuffer(reader.take(cells * row_bytes), dtype).reshape(cells, -1).copy())
    for _ in range(layers):
        if not transposed:
            ggml_type, row_bytes = reader.unpack("iQ")
            cache.values.append(np.frombuffer(reader.take(cells * row_bytes), _dtype(ggml_type))
                                .reshape(cells, -1).copy())
        else:
            ggml_type, element_bytes, width = reader.unpack("iII")
            dtype = _dtype(ggml_type)
            if np.dtype(dtype).itemsize != element_bytes:
                raise StateFormatError(f"value elements of {element_bytes} bytes for ggml type {ggml_type}")
            columns = np.frombuffer(reader.take(width * cells * element_bytes), dtype).reshape(width, cells)
            cache.values.append(columns.T.copy())
    return cache


def _dtype(ggml_type: int):
    if ggml_type not in _DTYPES:
        raise StateFormatError(f"KV cache of ggml type {ggml_type}: only f16 and f32 caches can be rewritten")
    return _DTYPES[ggml_type]


def write_state(caches: list[CacheLayers]) -> bytes:
    """The bytes `read_state` read, with the caches' current contents."""
    parts: list[bytes] = [struct.pack("<Ii", STATE_MAGIC, 0)]
    for cache in caches:
        cells = len(cache.positions)
        parts.append(struct.pack("<II", 1, cells))
        for position, ids in zip(cache.positions, cache.seq_ids, strict=True):
            parts.append(struct.pack(f"<iI{len(ids)}i", int(position), len(ids), *ids))
        parts.append(struct.pack("<II", int(cache.value_transposed), len(cache.keys)))
        for keys in cache.keys:
            parts.append(struct.pack("<iQ", _ggml_type(keys), keys.shape[1] * keys.itemsize))
            parts.append(np.ascontiguousarray(keys).tobytes())
        for values in cache.values:
            if cache.value_transposed:
                parts.append(struct.pack("<iII", _ggml_type(values), values.itemsize, values.shape[1]))
                parts.append(np.ascontiguousarray(values.T).tobytes())
            else:
                parts.append(struct.pack("<iQ", _ggml_type(values), values.shape[1] * values.itemsize))
                parts.append(np.ascontiguousarray(values).tobytes())
    return b"".join(parts)


def _ggml_type(array: np.ndarray) -> int:
    return {np.dtype(np.float32): GGML_TYPE_F32, np.dtype(np.float16): GGML_TYPE_F16}[array.dtype]


def prefix_rows(prompt_embeddings: np.ndarray, layers: int, heads: int) -> tuple[np.ndarray, np.ndarray]:
    """peft's PrefixTuning embedding (P, layers·2·heads·head_dim) as per-layer key and value rows.

    peft views it as (P, layers·2, heads, head_dim) and hands layer l the keys at 2l and the values at 2l+1,
    used as they are: no norm and no rotary embedding is applied to them, so they go into llama.cpp's cache
    (which holds keys after both) unchanged. A cell's row is its heads one after another, as llama.cpp lays
    out a row of n_embd_k_gqa. Returns keys and values, each (layers, P, heads·head_dim).
    """
    length, width = prompt_embeddings.shape
    if width % (layers * 2 * heads):
        raise StateFormatError(f"a prefix of width {width} does not split into {layers} layers × 2 × {heads} heads")
    split = prompt_embeddings.reshape(length, layers, 2, width // (layers * 2))
    return split[:, :, 0].transpose(1, 0, 2), split[:, :, 1].transpose(1, 0, 2)
