"""Choose the species to keep: the N with the most images, or the ones a file names."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from birdsdao.data_prep.source import canonical_name
from birdsdao.errors import InvalidInputError


@dataclass
class Selection:
    kept: list[str]  # in class-id order (alphabetical, so ids do not move when counts change)
    dropped: list[str]
    # species with the same count as the last one kept, on either side of the cut: the tie-break mattered
    tied_at_cutoff: list[str]


def rank_species(counts: Mapping[str, int]) -> list[str]:
    """Most images first; equal counts in name order, so the ranking is reproducible."""
    return sorted(counts, key=lambda name: (-counts[name], name))


def select_top(counts: Mapping[str, int], n: int) -> Selection:
    if n < 1:
        raise InvalidInputError(f"--classes must be at least 1, not {n}")
    ranked = rank_species(counts)
    kept, dropped = ranked[:n], ranked[n:]
    tied: list[str] = []
    if kept and dropped and counts[kept[-1]] == counts[dropped[0]]:
        tied = [name for name in ranked if counts[name] == counts[kept[-1]]]
    return Selection(kept=sorted(kept), dropped=sorted(dropped), tied_at_cutoff=tied)


def read_species_file(path: Path, known: Mapping[str, int]) -> Selection:
    """Species named one a line (`#` starts a comment), matched ignoring case and extra spaces."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{path}: cannot read the species file ({exc})") from None
    by_key = {name.casefold(): name for name in known}
    chosen: dict[str, int] = {}  # species -> first line it appears on
    unknown: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        name = canonical_name(line.split("#", 1)[0])
        if not name:
            continue
        species = by_key.get(name.casefold())
        if species is None:
            close = difflib.get_close_matches(name, list(known), n=1)
            unknown.append(f"line {number}: {name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        else:
            chosen.setdefault(species, number)
    if unknown:
        shown = "; ".join(unknown[:10]) + (f"; and {len(unknown) - 10} more" if len(unknown) > 10 else "")
        raise InvalidInputError(f"{path}: {len(unknown)} species not in the source dataset: {shown}")
    if not chosen:
        raise InvalidInputError(f"{path}: names no species (one name a line, # for comments)")
    kept = sorted(chosen)
    return Selection(kept=kept, dropped=sorted(set(known) - set(chosen)), tied_at_cutoff=[])
