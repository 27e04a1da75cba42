"""A drill's decisions as tables: the version it redeploys, the host that fails, whether the safety net held."""

from __future__ import annotations

import pytest

from rollout.core.drills import Observed, failing_host, one_version, problems

A, B = "a" * 40, "b" * 40


@pytest.mark.parametrize("versions, expected", [
    ({"h1": A, "h2": A}, (A, "")),
    ({"h1": A, "h2": B, "h3": A}, (None, f"hosts run different versions: {A[:12]} on h1, h3; {B[:12]} on h2")),
    ({"h1": A, "h2": None}, (None, "the version of h2 cannot be read")),
])
def test_one_version(versions, expected):
    assert one_version(versions) == expected


@pytest.mark.parametrize("batches, wanted, expected", [
    ([["i1"], ["i2"], ["i3"]], None, "i2"),        # the first of the second batch: batch 1 is rolled back too
    ([["i1", "i2"], ["i3", "i4"]], None, "i3"),
    ([["i1", "i2"]], None, "i1"),                  # one batch: its first host
    ([["i1"], ["i2"]], "i1", "i1"),
    ([["i1"], ["i2"]], "i9", None),                # not planned
    ([], None, None),
])
def test_failing_host(batches, wanted, expected):
    assert failing_host(batches, wanted) == expected


def _observed(**change) -> Observed:
    base = dict(expected={"i1": A, "i2": A}, seen={"i1": A, "i2": A}, out_of_service=[], exit_code=9, serving_before=4,
                most_out=1, floor=3)
    return Observed(**{**base, **change})


@pytest.mark.parametrize("change, expected", [
    ({}, []),
    ({"exit_code": 0}, ["the run ended with exit 0, not 9 (rolled back)"]),
    ({"exit_code": 1, "seen": {"i1": B, "i2": A}}, ["the run ended with exit 1, not 9 (rolled back)", "not back on their version: i1"]),
    ({"seen": {"i1": A}}, ["not back on their version: i2"]),
    ({"out_of_service": ["i2"]}, ["out of service after the drill: i2"]),
    ({"most_out": 2}, ["capacity fell to 2 hosts in service, below the floor of 3"]),
    ({"most_out": 2, "floor": 2}, []),
])
def test_problems(change, expected):
    assert problems(_observed(**change)) == expected
