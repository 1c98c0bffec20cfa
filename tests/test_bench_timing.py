"""bench/timing.py: the cases take turns, warm-up rounds are not timed, and the spread is the quartiles."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.timing import interleaved, spread  # noqa: E402


def test_cases_take_turns_round_by_round():
    calls = []
    times = interleaved({"a": lambda n: calls.append(("a", n)), "b": lambda n: calls.append(("b", n))},
                        runs=3, warmup=2)
    assert calls == [("a", 0), ("b", 0), ("a", 1), ("b", 1),  # warm-up, untimed
                     ("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]
    assert {label: len(values) for label, values in times.items()} == {"a": 3, "b": 3}
    assert all(value >= 0 for values in times.values() for value in values)


def test_spread_is_median_and_quartiles():
    middle = spread([0.004, 0.001, 0.003, 0.002, 0.005], scale=1000)
    assert (middle.median, middle.q1, middle.q3, middle.iqr) == pytest.approx((3.0, 2.0, 4.0, 2.0))
    assert spread([0.5]).iqr == 0.0


def test_no_timed_rounds_is_an_error():
    with pytest.raises(ValueError, match="runs must be at least 1"):
        interleaved({"a": lambda n: None}, runs=0)
