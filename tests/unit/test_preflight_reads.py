"""Preflight's balancer reads: those started before discovery are used, not repeated; errors come in the balancers' order."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from rollout.core.errors import PreflightError
from rollout.orchestration.preflight import read_balancers, start_reads


class FakeBalancer:
    def __init__(self, kind: str, name: str, members: dict[str, str], error: Exception | None = None,
                 release: threading.Event | None = None):
        self.kind, self.name, self._members, self.error, self.release = kind, name, members, error, release
        self.reads = 0

    def facts(self):
        return (self.kind, self.name)

    def members(self) -> dict[str, str]:
        self.reads += 1
        if self.release is not None:
            self.release.wait(5)
        if self.error is not None:
            raise self.error
        return self._members


class FakeGroup:
    name = "asg"

    def __init__(self):
        self.reads = 0

    def suspended(self):
        self.reads += 1
        return frozenset({"Launch"})


def env_with(named, group, balancers=None):
    return SimpleNamespace(named=lambda: (named, group), group=group, balancers=balancers if balancers is not None else named)


def test_reads_started_before_discovery_are_used_and_not_repeated():
    elb = FakeBalancer("elb", "web", {"i-1": "InService", "i-2": "OutOfService"})
    tg = FakeBalancer("alb", "tg", {"i-1": "healthy"})
    group = FakeGroup()
    env = env_with([elb, tg], group)
    with ThreadPoolExecutor(max_workers=4) as pool:
        started = start_reads(env, pool)
        facts, members, healthy, suspended = read_balancers(env, [elb, tg], started)
    assert (elb.reads, tg.reads, group.reads) == (1, 1, 1)
    assert facts == (("elb", "web"), ("alb", "tg"))
    assert members == {"elb web": {"i-1", "i-2"}, "alb tg": {"i-1"}}
    assert healthy == {"elb web": frozenset({"i-1"}), "alb tg": frozenset({"i-1"})}
    assert suspended == frozenset({"Launch"})


def test_a_balancer_found_only_after_discovery_is_read_then():
    elb = FakeBalancer("elb", "web", {"i-1": "InService"})
    haproxy = FakeBalancer("haproxy", "app", {"i-1": "UP"})
    env = env_with([elb], None, balancers=[elb, haproxy])
    with ThreadPoolExecutor(max_workers=4) as pool:
        started = start_reads(env, pool)
        _, members, _, suspended = read_balancers(env, [elb, haproxy], started)
    assert (elb.reads, haproxy.reads) == (1, 1)
    assert members == {"elb web": {"i-1"}, "haproxy app": {"i-1"}}
    assert suspended == frozenset()


def test_errors_come_in_the_balancers_order_whichever_fails_first():
    slow = threading.Event()
    first = FakeBalancer("elb", "web", {}, error=PreflightError("first"), release=slow)
    second = FakeBalancer("alb", "tg", {}, error=PreflightError("second"))
    env = env_with([first, second], None)
    timer = threading.Timer(0.05, slow.set)  # the first balancer's error arrives after the second's
    timer.start()
    try:
        with pytest.raises(PreflightError, match="first"):
            read_balancers(env, [first, second])
    finally:
        timer.cancel()
        slow.set()
