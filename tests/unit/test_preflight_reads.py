"""Preflight's balancer reads: each balancer and the group once, side by side; errors come in the balancers' order."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from rollout.core.errors import PreflightError
from rollout.orchestration.preflight import read_balancers


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


def env_with(balancers, group):
    return SimpleNamespace(group=group, balancers=balancers)


def test_each_balancer_and_the_group_is_read_once():
    elb = FakeBalancer("elb", "web", {"i-1": "InService", "i-2": "OutOfService"})
    tg = FakeBalancer("alb", "tg", {"i-1": "healthy"})
    haproxy = FakeBalancer("haproxy", "app", {"i-1": "UP"})
    group = FakeGroup()
    env = env_with([elb, tg, haproxy], group)
    facts, members, healthy, suspended = read_balancers(env, [elb, tg, haproxy])
    assert (elb.reads, tg.reads, haproxy.reads, group.reads) == (1, 1, 1, 1)
    assert facts == (("elb", "web"), ("alb", "tg"), ("haproxy", "app"))
    assert members == {"elb web": {"i-1", "i-2"}, "alb tg": {"i-1"}, "haproxy app": {"i-1"}}
    assert healthy == {"elb web": frozenset({"i-1"}), "alb tg": frozenset({"i-1"}), "haproxy app": frozenset({"i-1"})}
    assert suspended == frozenset({"Launch"})


def test_without_a_group_nothing_is_suspended():
    elb = FakeBalancer("elb", "web", {"i-1": "InService"})
    assert read_balancers(env_with([elb], None), [elb])[3] == frozenset()


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
