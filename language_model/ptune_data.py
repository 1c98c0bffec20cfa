"""Alpaca records for P-Tuning: `{"instruction", "input", "output"}`, as a JSON list or JSON lines."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from birdsdao.errors import InvalidInputError
from birdsdao.inputs import existing_file


@dataclass(frozen=True)
class Example:
    question: str  # instruction, plus the input on its own line when there is one
    answer: str
    where: str  # "file: record N" (JSON list) or "file:LINE" (JSON lines)


def read_examples(path: Path) -> tuple[list[Example], int]:
    """All usable examples and how many records had an empty output (skipped)."""
    path = existing_file(path, "Alpaca records (JSON or JSONL)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{path}: cannot read ({exc})") from None
    records = _json_list(path, text) if text.lstrip().startswith("[") else _json_lines(path, text)
    examples, empty = [], 0
    for where, record in records:
        if not isinstance(record, dict):
            raise InvalidInputError(f"{where}: expected an object with instruction, input and output")
        for key in ("instruction", "output"):
            if not isinstance(record.get(key), str):
                raise InvalidInputError(f"{where}: '{key}' must be a string")
        extra = record.get("input", "")
        if not isinstance(extra, str):
            raise InvalidInputError(f"{where}: 'input' must be a string")
        if not record["output"].strip():
            empty += 1
            continue
        question = record["instruction"].strip() + (f"\n{extra.strip()}" if extra.strip() else "")
        if not question:
            raise InvalidInputError(f"{where}: the instruction is empty")
        examples.append(Example(question, record["output"].strip(), where))
    if not examples:
        raise InvalidInputError(f"{path}: no record with a non-empty output")
    return examples, empty


def _json_list(path: Path, text: str) -> list[tuple[str, object]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, list):
        raise InvalidInputError(f"{path}: expected a JSON list of records")
    return [(f"{path}: record {number}", record) for number, record in enumerate(data, start=1)]


def _json_lines(path: Path, text: str) -> list[tuple[str, object]]:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((f"{path}:{number}", json.loads(line)))
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
    return records


def split_examples(examples: list[Example], val_share: float, seed: int) -> tuple[list[Example], list[Example]]:
    """A seeded shuffle, then the last `val_share` for validation (at least one when asked for any)."""
    if not 0.0 <= val_share < 1.0:
        raise InvalidInputError(f"--val-split must be in [0, 1), not {val_share}")
    shuffled = examples[:]
    random.Random(seed).shuffle(shuffled)
    count = 0 if val_share == 0 or len(shuffled) < 2 else max(1, round(len(shuffled) * val_share))
    return shuffled[: len(shuffled) - count], shuffled[len(shuffled) - count:]
