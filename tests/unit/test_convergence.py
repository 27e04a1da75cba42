"""Convergence and the desired version, as tables."""

import pytest

from rollout.core.convergence import converged, differs, in_service_everywhere
from rollout.core.desired import Desired, after_run, decode, encode

A, B = "a" * 40, "b" * 40
DIGEST = "sha256:" + "c" * 64


@pytest.mark.parametrize("healthy, expected", [
    ([frozenset({"i-1"}), frozenset({"i-1", "i-2"}), frozenset({"i-1"})], True),
    ([frozenset({"i-1"}), frozenset({"i-1"}), frozenset()], False),  # left drained in one balancer
    ([frozenset({"i-2"})], False),  # not registered, or not healthy there
    ([], True),  # no balancer: nothing to be out of
])
def test_in_service_everywhere(healthy, expected):
    assert in_service_everywhere("i-1", healthy) is expected


@pytest.mark.parametrize("checked_out, served, in_service, expected", [
    (A, A, True, True),
    (A, A, False, False),  # on the target but out of a balancer: redo (it goes back in)
    (A, B, True, False),   # checked out but never reloaded: still serves the old version
    (B, A, True, False),
    (None, A, True, False),
    (A, None, True, False),  # unreadable version: never assumed done
])
def test_converged_needs_checkout_served_version_and_every_balancer(checked_out, served, in_service, expected):
    assert converged(checked_out, served, A, in_service) is expected


@pytest.mark.parametrize("served, desired, flagged", [(A, A, False), (B, A, True), (None, A, True), (B, None, False)])
def test_status_flags_hosts_off_the_desired_version(served, desired, flagged):
    assert differs(served, desired) is flagged


@pytest.mark.parametrize("result, versions, published", [
    ("succeeded", {A}, A),
    ("succeeded", {DIGEST}, DIGEST),
    ("recovered", {B}, B),
    ("recovered", {A, B}, None),  # restored to several versions: the fleet has no single desired one
    ("rolled_back", {A}, None),
    ("interrupted", {A}, None),
    ("paused", {A}, None),
    ("failed", {A}, None),
    ("succeeded", {"main"}, None),
])
def test_what_a_run_publishes(result, versions, published):
    assert after_run(result, versions) == published


def test_the_record_round_trips_and_junk_is_no_record():
    d = Desired(version=A, run_id="20261130T060000Z-abcd", ref="v2", env="prod")
    assert decode(encode(d)) == d
    for junk in (None, "", "v2", "[]", '{"version": "main"}', '{"version": "%s; rm -rf /"}' % A):
        assert decode(junk) is None
