"""Interleaved timing for the bench scripts: cases run A, B, C, A, B, C …, so drifting load falls on all alike.

A machine that other work shares gets faster and slower over minutes. Timing each case in its own block
puts whatever load came during that block on that case alone; taking turns spreads it over all of them,
and the ratio of medians then compares the cases under the same conditions.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Spread:
    """Median and quartiles of one case's times, in the unit they were given in."""

    median: float
    q1: float
    q3: float

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1


def interleaved(cases: Mapping[str, Callable[[int], object]], runs: int, warmup: int = 3) -> dict[str, list[float]]:
    """Seconds of each call: `warmup` untimed rounds, then `runs` timed rounds, each case once per round.

    A case is called with the round's number (0, 1, … in the warm-up, then again in the timed rounds), so
    that it can take the round's input, e.g. one photo per round.
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be at least 1 and warmup at least 0, not {runs} and {warmup}")
    for number in range(warmup):
        for call in cases.values():
            call(number)
    times: dict[str, list[float]] = {label: [] for label in cases}
    for number in range(runs):
        for label, call in cases.items():
            started = time.perf_counter()
            call(number)
            times[label].append(time.perf_counter() - started)
    return times


def spread(times: list[float], scale: float = 1.0) -> Spread:
    """Median and the 25th/75th percentiles (inclusive method: one sample gives itself three times)."""
    values = [value * scale for value in times]
    if len(values) == 1:
        return Spread(values[0], values[0], values[0])
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return Spread(statistics.median(values), q1, q3)
