import re

import pytest

from rollout.core import plan
from rollout.core import sizes
from rollout.core.errors import UsageError
from rollout.core.plan import BalancerFacts, Host

SHA = "a" * 40


def hosts(n):
    return [Host(f"i-{i:03d}", f"198.18.1.{10 + i}", f"h{i:03d}") for i in range(1, n + 1)]


@pytest.mark.parametrize(
    "spec,total,size",
    [("1", 4, 1), ("2", 4, 2), ("10", 4, 4), ("25%", 4, 1), ("50%", 4, 2), ("10%", 100, 10), ("1%", 4, 1), ("100%", 3, 3), (3, 10, 3)],
)
def test_batch_size_from_count_or_percentage(spec, total, size):
    assert sizes.batch_hosts(sizes.batch_flag(spec), total) == size


@pytest.mark.parametrize("spec", ["0", "-1", "abc", "150%", "1.5", "", "2 ; rm -rf /"])
def test_malformed_batch_is_a_usage_error(spec):
    with pytest.raises(UsageError, match="--batch"):
        sizes.batch_flag(spec)


def test_batches_cover_every_host_once_in_order_with_capacity():
    p = plan.build(env="e", ref="main", sha=SHA, hosts=hosts(5), batch=sizes.Size(2), balancers=(), group=None, suspended_before=frozenset())
    assert [[h.name for h in b.hosts] for b in p.batches] == [["h001", "h002"], ["h003", "h004"], ["h005"]]
    assert [b.in_service for b in p.batches] == [3, 3, 4]


def test_processes_suspended_by_someone_else_are_not_ours_to_suspend_or_resume():
    p = plan.build(env="e", ref="main", sha=SHA, hosts=hosts(2), batch=sizes.Size(1), balancers=(), group="asg",
                   suspended_before=frozenset({"AZRebalance", "Terminate"}))
    assert "AZRebalance" not in p.to_suspend and "Terminate" not in p.to_suspend
    assert set(p.to_suspend) == set(plan.ASG_PROCESSES) - {"AZRebalance", "Terminate"}


def test_no_group_means_nothing_to_suspend():
    p = plan.build(env="e", ref="main", sha=SHA, hosts=hosts(2), batch=sizes.Size(1), balancers=(), group=None, suspended_before=frozenset())
    assert p.to_suspend == ()


def test_plan_refuses_anything_but_a_full_sha():
    with pytest.raises(ValueError):
        plan.build(env="e", ref="main", sha="main", hosts=hosts(1), batch=sizes.Size(1), balancers=(), group=None, suspended_before=frozenset())


def test_estimate_uses_slowest_drain_and_health_per_batch():
    lbs = (BalancerFacts("elb", "a", 5, 10), BalancerFacts("alb", "b", 30, 4))
    p = plan.build(env="e", ref="main", sha=SHA, hosts=hosts(4), batch=sizes.Size(2), balancers=lbs, group=None, suspended_before=frozenset())
    assert p.estimate_seconds == 2 * (30 + 2.0 + 10)


# --hosts: spec -> names selected, or the words of the UsageError. Hosts: h001..h004 (i-001.., 198.18.1.11..).
HOST_SELECTION = [
    (None, ["h001", "h002", "h003", "h004"]),
    ("h001", ["h001"]),
    ("i-002,198.18.1.13", ["h002", "h003"]),
    ("h00*", ["h001", "h002", "h003", "h004"]),
    ("h00[12]", ["h001", "h002"]),
    ("198.18.1.1?", ["h001", "h002", "h003", "h004"]),
    ("!h003", ["h001", "h002", "h004"]),
    ("h*,!h003,!i-004", ["h001", "h002"]),
    ("h001,h001", ["h001"]),
    (" h002 , h001 ", ["h001", "h002"]),
    ("", "names no host"),
    (",", "names no host"),
    (" , ", "names no host"),
    ("h001,,h002", "empty entry"),
    ("h009", "matches h009"),
    ("web-*", "matches web-*"),
    ("h001,web-*", "matches web-*"),
    ("!h009", "matches !h009"),
    ("h00*,!h00*", "leave no host"),
    ("h001,$(reboot)", "not an instance id"),
    ("h001;rm", "not an instance id"),
    ("!!h001", "not an instance id"),
]


@pytest.mark.parametrize("spec,expected", HOST_SELECTION, ids=[repr(c[0]) for c in HOST_SELECTION])
def test_host_selection_by_ids_names_addresses_patterns_and_exclusions(spec, expected):
    if isinstance(expected, list):
        assert [h.name for h in plan.select_hosts(hosts(4), plan.parse_host_filter(spec))] == expected
    else:
        with pytest.raises(UsageError, match=re.escape(expected)):
            plan.select_hosts(hosts(4), plan.parse_host_filter(spec))


def test_membership_differences_name_both_directions():
    lines = plan.membership_differences({"i-1", "i-2"}, {"elb x": {"i-2", "i-9"}})
    assert lines == ["elb x: not registered: i-1", "elb x: registered but not selected by the tag filter: i-9"]
