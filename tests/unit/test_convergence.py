"""Convergence and the desired version, as tables."""

import pytest

from rollout.core.convergence import converged, differs, in_service_everywhere
from rollout.core.desired import Desired, after_run, decode, encode
from tests.unit.test_runner_faults import Out

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


def _converged_env():
    from types import SimpleNamespace

    inv = SimpleNamespace(name="prod", desired_version=SimpleNamespace(parameter="/rollout/prod/version"),
                          state=SimpleNamespace(lock_ttl=30))
    return SimpleNamespace(inventory=inv, aws=None, requester="ana")


@pytest.mark.parametrize("history, lock_error, published, warned", [
    ([{"sha": A, "ref": "main", "run_id": "r1"}], None, [A], ""),
    ([{"sha": B, "ref": "main", "run_id": "r1"}], None, [],
     f"every host serves {A[:12]}, but none of the last 50 runs in the history deployed it; /rollout/prod/version is left as it is"),
    ([{"sha": A, "ref": "main", "run_id": "r1"}], "held by run r2 of bo", [], "/rollout/prod/version not written back: held by run r2 of bo"),
])
def test_a_deploy_with_nothing_to_do_writes_the_desired_version_back_or_says_why_not(monkeypatch, history, lock_error,
                                                                                       published, warned):
    """A rerun that finds every host on the target puts back a version a stopped run never published;
    a run in progress (it publishes its own) or a version no recent run deployed is a warning, never a failure."""
    from rollout.core.errors import LockHeld
    from rollout.orchestration import deploy

    writes = []

    class Lock:
        def __init__(self, *args, **kwargs):
            pass

        def acquire(self, exclusive=False):
            assert exclusive  # never waits on, nor shares, a run in progress
            if lock_error:
                raise LockHeld(lock_error)

        def fence(self):
            pass

        def release(self):
            pass

    monkeypatch.setattr(deploy.locks, "Lock", Lock)
    monkeypatch.setattr(deploy.desired_ssm, "read", lambda aws, name: Desired(B, "r0", "main", "prod"))
    monkeypatch.setattr(deploy.desired_ssm, "publish", lambda aws, name, record: writes.append(record.version))
    monkeypatch.setattr(deploy.journals, "history", lambda store, limit: history)
    out = Out()
    deploy.publish_converged(_converged_env(), store=None, version=A, output=out)
    assert writes == published
    assert out.warnings == ([warned] if warned else [])
