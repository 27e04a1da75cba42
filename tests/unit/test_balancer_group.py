"""The balancer group's fan-out: every balancer is called, and each call returns one result per balancer."""

from __future__ import annotations

from types import SimpleNamespace

from rollout.adapters.balancers.group import BalancerGroup


class Lb:
    def __init__(self, name: str, members=(), fail: str = ""):
        self.kind, self.name, self._members, self.fail, self.calls = "haproxy", name, set(members), fail, []

    def registered(self):
        self.calls.append(("registered",))
        return set(self._members)

    def deregister(self, hosts):
        self.calls.append(("deregister", [h.instance_id for h in hosts]))
        if self.fail == "deregister":
            raise RuntimeError(f"{self.name} refused")

    def register(self, hosts):
        self.calls.append(("register", [h.instance_id for h in hosts]))

    def wait_drained(self, hosts, cancelled, before_change):
        self.calls.append(("drain", [h.instance_id for h in hosts]))

    def wait_healthy(self, hosts, timeout):
        self.calls.append(("wait_healthy", timeout))
        if self.fail == "wait_healthy":
            raise TimeoutError("not healthy")


H = [SimpleNamespace(instance_id=i) for i in ("i-1", "i-2")]


def test_a_failing_balancer_does_not_stop_the_others_and_each_has_its_result():
    a, b, c = Lb("a", {"i-1", "i-2"}), Lb("b", {"i-1", "i-2"}, fail="deregister"), Lb("c", {"i-1", "i-2"})
    results = BalancerGroup([a, b, c]).deregister(H)
    assert [r.balancer.name for r in results] == ["a", "b", "c"]
    assert [type(r.error).__name__ if r.error else None for r in results] == [None, "RuntimeError", None]
    assert ("deregister", ["i-1", "i-2"]) in a.calls and ("deregister", ["i-1", "i-2"]) in c.calls


def test_hosts_a_balancer_does_not_have_are_not_deregistered_and_members_are_read_once():
    lb = Lb("a", {"i-2"})
    group = BalancerGroup([lb])
    assert group.deregister(H)[0].error is None
    assert lb.calls == [("registered",), ("deregister", ["i-2"])]
    group.register(H)
    group.deregister(H)  # both are members now, as the group registered them
    assert lb.calls[-1] == ("deregister", ["i-1", "i-2"]) and lb.calls.count(("registered",)) == 1


def test_a_host_no_balancer_has_makes_no_call():
    lb = Lb("a", set())
    assert BalancerGroup([lb]).deregister(H)[0].error is None
    assert lb.calls == [("registered",)]


def test_every_balancer_reports_its_wait():
    a, b = Lb("a", fail="wait_healthy"), Lb("b")
    results = BalancerGroup([a, b]).wait_healthy(H, 7.0)
    assert [isinstance(r.error, TimeoutError) for r in results] == [True, False]
    assert b.calls == [("wait_healthy", 7.0)]


def test_no_balancer_no_result():
    assert BalancerGroup([]).drain(H, cancelled=lambda: False, before_change=lambda: None) == []
