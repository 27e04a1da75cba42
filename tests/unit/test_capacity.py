"""Capacity decisions: the ramp's batches, zones, the live floor, the rollback order (tables of cases)."""

import pytest

from rollout.core import capacity, policy, sizes
from rollout.core.errors import UsageError
from rollout.core.plan import Host
from rollout.core.sizes import Size


def hosts(n: int, zones: str = "") -> list[Host]:
    """h1..hN; with `zones` ('abab'), host i is in eu-west-1 + zones[i]."""
    return [Host(f"i-{i}", f"10.0.0.{i}", f"h{i}", zone=f"eu-west-1{zones[i - 1]}" if zones else "") for i in range(1, n + 1)]


def names(batches) -> list[list[str]]:
    return [[h.name for h in b] for b in batches]


@pytest.mark.parametrize("ramp,total,counts", [
    ("1", 4, [1, 1, 1, 1]),
    ("2", 5, [2, 2, 1]),
    ("25%", 8, [2, 2, 2, 2]),
    ("10%", 4, [1, 1, 1, 1]),                     # rounded down, at least one host
    ("1,10%,50%", 20, [1, 2, 10, 7]),             # the last size repeats; the last batch is what is left
    ("1,10%,50%", 4, [1, 1, 2]),
    ("1,2,3", 3, [1, 2]),                          # fewer hosts than the ramp: it ends early
    ("1,2,3", 12, [1, 2, 3, 3, 3]),
    ("100%", 7, [7]),
    ("5", 0, []),
])
def test_a_ramp_takes_its_sizes_in_order_and_repeats_the_last(ramp, total, counts):
    assert policy.batch_sizes(sizes.ramp_flag(ramp), total, total) == counts


@pytest.mark.parametrize("value,ramp", [
    (2, (Size(2),)), ("25%", (Size(25, True),)), ([1, "10%", "50%"], (Size(1), Size(10, True), Size(50, True))),
    (("3",), (Size(3),)),
])
def test_a_ramp_is_one_size_or_a_list_of_them(value, ramp):
    assert sizes.ramp(value) == ramp


@pytest.mark.parametrize("value,where", [
    ([], "the list is empty"), ([1, 0], "entry 2: 0"), ([1, "lots"], "entry 2: 'lots'"), (["101%"], "entry 1"),
    ([1, True], "entry 2: True"), (list(range(1, 102)), ""), ({"a": 1}, ""), (None, ""), ([[1]], "entry 1"),
])
def test_a_ramp_is_never_anything_else(value, where):
    with pytest.raises(ValueError, match=r"ramp of them in order like \[1, 10%, 50%\]") as err:
        sizes.ramp(value)
    assert where in str(err.value)


@pytest.mark.parametrize("flag,message", [
    ("1,,2", "entry 2: ''"), ("1,0", "entry 2: '0'"), ("lots", "or a ramp of them"), ("1;2", "or a ramp of them"),
])
def test_the_batch_flag_takes_a_ramp_and_is_blamed_on_the_flag(flag, message):
    with pytest.raises(UsageError, match=r"^--batch=") as err:
        sizes.ramp_flag(flag)
    assert message in str(err.value)
    assert sizes.ramp_flag(None) is None
    assert sizes.ramp_text(sizes.ramp_flag("1, 10%,50%")) == "1,10%,50%"


@pytest.mark.parametrize("value,size", [(0, Size(0)), ("3", Size(3)), ("75%", Size(75, True)), ("100%", Size(100, True))])
def test_a_floor_is_a_count_or_a_percentage(value, size):
    assert sizes.floor(value) == size


@pytest.mark.parametrize("value", ["-1", "101%", True, 1.5, "most", None])
def test_a_floor_is_never_anything_else(value):
    with pytest.raises(ValueError, match="count of healthy hosts like 3"):
        sizes.floor(value)


@pytest.mark.parametrize("zones,ramp,batch_by_zone,expected", [
    ("", "1,50%", False, [["h1"], ["h2", "h3"], ["h4"]]),
    ("abab", "2", True, [["h1", "h3"], ["h2", "h4"]]),                 # zone a, then zone b
    ("abab", "1,50%", True, [["h1"], ["h3"], ["h2", "h4"]]),           # the ramp goes on in the next zone
    ("aaab", "50%", True, [["h1", "h2"], ["h3"], ["h4"]]),             # a zone's last batch is cut short
    ("bbaa", "1", True, [["h3"], ["h4"], ["h1"], ["h2"]]),             # zones in name order
    ("abcab", "100%", True, [["h1", "h4"], ["h2", "h5"], ["h3"]]),
    ("abab", "2", False, [["h1", "h2"], ["h3", "h4"]]),                # without batch_by, zones do not matter
])
def test_batches_follow_the_ramp_and_never_span_two_zones(zones, ramp, batch_by_zone, expected):
    given = hosts(len(zones) if zones else 4, zones)
    batches = capacity.cut(given, sizes.ramp_flag(ramp), zones=batch_by_zone)
    assert names(batches) == expected
    if batch_by_zone:
        assert all(len({h.zone for h in b}) == 1 for b in batches)
    assert sorted(h.name for b in batches for h in b) == sorted(h.name for h in given)


def test_hosts_without_a_zone_are_named():
    mixed = hosts(2, "ab") + [Host("i-9", "10.0.0.9", "h9")]
    assert [h.name for h in capacity.without_zone(mixed)] == ["h9"]


@pytest.mark.parametrize("floor,total,hosts_", [(Size(3), 10, 3), (Size(75, True), 4, 3), (Size(50, True), 5, 3),
                                                 (Size(0, True), 5, 0), (Size(100, True), 3, 3), (Size(1, True), 4, 1)])
def test_a_percentage_floor_rounds_up(floor, total, hosts_):
    assert capacity.floor_hosts(floor, total) == hosts_


@pytest.mark.parametrize("floor,total,counts,refused", [
    (3, 4, [1, 1, 1, 1], False), (3, 4, [1, 2, 1], True), (4, 4, [1], True), (0, 1, [1], False), (2, 4, [], False),
])
def test_a_floor_no_batch_can_ever_keep_is_refused_before_anything_changes(floor, total, counts, refused):
    why = capacity.never_fits(floor, total, counts)
    assert (why is not None) == refused
    if refused:
        assert f"min_healthy keeps {floor} of {total} hosts healthy" in why


ALL4 = {"i-1", "i-2", "i-3", "i-4"}


@pytest.mark.parametrize("batch,healthy,floor,reason", [
    # Everything healthy: a batch of 1 leaves 3, which meets a floor of 3.
    ({"i-1"}, {"haproxy app": ALL4, "elb web": ALL4}, 3, None),
    # A host made unhealthy from outside (i-4) counts: taking i-1 out would leave 2.
    ({"i-1"}, {"haproxy app": ALL4 - {"i-4"}, "elb web": ALL4}, 3,
     "haproxy app reports 3 healthy hosts; taking out 1 would leave 2, below min_healthy 3"),
    # A batch whose host is already unhealthy takes nothing away.
    ({"i-4"}, {"haproxy app": ALL4 - {"i-4"}}, 3, None),
    # Two in the batch, one of them unhealthy: only the healthy one counts.
    ({"i-1", "i-4"}, {"haproxy app": ALL4 - {"i-4"}}, 2, None),
    ({"i-1", "i-2"}, {"haproxy app": ALL4 - {"i-4"}}, 2, "haproxy app reports 3 healthy hosts; taking out 2 would leave 1"),
    # The first balancer by name that would break the floor is named.
    ({"i-1"}, {"z": {"i-1"}, "a": {"i-1", "i-2"}}, 2, "a reports 2 healthy hosts"),
    # Members that are not hosts of the environment still serve, and count.
    ({"i-1"}, {"haproxy app": {"i-1", "address:10.9.9.9"}}, 1, None),
    # No balancer: nothing to keep.
    ({"i-1"}, {}, 5, None),
    ({"i-1"}, {"alb tg": set()}, 1, None),
])
def test_the_floor_counts_what_each_balancer_reports_healthy_now(batch, healthy, floor, reason):
    got = capacity.refusal(batch, healthy, floor)
    if reason is None:
        assert got is None
    else:
        assert got is not None and got.startswith(reason)


def test_two_zones_are_never_out_at_once():
    h = hosts(4, "abab")
    assert capacity.zone_clash([h[1]], [h[3]]) is None            # both in zone b
    assert capacity.zone_clash([h[0]], []) is None
    why = capacity.zone_clash([h[0]], [h[3]])
    assert why == ("batch_by zone: h4 still out of service in eu-west-1b; the next batch is in eu-west-1a,"
                   " and two zones are never out at once")


@pytest.mark.parametrize("deployed,updated,expected", [
    ([["h1"], ["h2", "h3"], ["h4", "h5", "h6"]], {"i-1", "i-2", "i-3", "i-4", "i-5", "i-6"},
     [["h6", "h5", "h4"], ["h3", "h2"], ["h1"]]),
    # A failed batch: its hosts that were not updated are not rolled back.
    ([["h1"], ["h2", "h3"], ["h4", "h5", "h6"]], {"i-1", "i-2", "i-3", "i-4"}, [["h4"], ["h3", "h2"], ["h1"]]),
    ([["h1"], ["h2", "h3"]], {"i-1"}, [["h1"]]),
    ([["h1"], ["h2"]], set(), []),
])
def test_rollback_goes_in_reverse_order_of_deployment_with_the_same_batches(deployed, updated, expected):
    by_name = {h.name: h for h in hosts(6)}
    batches = [[by_name[n] for n in b] for b in deployed]
    assert names(capacity.rollback_batches(batches, updated)) == expected


def test_discovery_reads_each_instance_zone_from_its_placement():
    from rollout.adapters import discovery

    reservations = [{"Instances": [
        {"InstanceId": "i-2", "PrivateIpAddress": "10.0.0.2", "Placement": {"AvailabilityZone": "eu-west-1b"},
         "Tags": [{"Key": "Name", "Value": "h2"}]},
        {"InstanceId": "i-1", "PrivateIpAddress": "10.0.0.1", "Placement": {"AvailabilityZone": "eu-west-1a"},
         "Tags": [{"Key": "Name", "Value": "h1"}]},
        {"InstanceId": "i-3", "PrivateIpAddress": "10.0.0.3", "Tags": [{"Key": "Name", "Value": "h3"}]},
    ]}]
    found = discovery.as_hosts(discovery.parse_instances(reservations, "PrivateIpAddress"))
    assert [(h.name, h.zone) for h in found] == [("h1", "eu-west-1a"), ("h2", "eu-west-1b"), ("h3", "")]


@pytest.mark.parametrize("zones,take,expected", [("aabb", 4, 2), ("aabb", 1, 1), ("abab", 3, 1), ("aaaa", 3, 3), ("a", 5, 1)])
def test_a_batch_stops_at_the_end_of_its_zone(zones, take, expected):
    assert capacity.within_zone(hosts(len(zones), zones), take) == expected


class Balancer:
    """A balancer whose members' states change with each read (the boundary, faked to test the waiting)."""

    def __init__(self, kind, name, readings):
        self.kind, self.name, self.readings, self.reads = kind, name, list(readings), 0

    def members(self):
        self.reads += 1
        return self.readings[min(self.reads, len(self.readings)) - 1]


UP4 = {f"i-{i}": "UP" for i in range(1, 5)}
H4_DOWN = {**UP4, "i-4": "DOWN"}


@pytest.mark.parametrize("readings,wait,held,reads,waited", [
    ([UP4], 10, False, 1, False),                        # room now: one read, no wait
    ([H4_DOWN, H4_DOWN, UP4], 10, False, 3, True),       # the outside host recovers while the batch waits
    ([H4_DOWN], 3, True, None, True),                    # it does not: held, with the reason
    ([H4_DOWN], 0, True, 2, False),                      # no wait at all: held after a second read
])
def test_the_floor_waits_for_capacity_then_holds_the_batch(readings, wait, held, reads, waited):
    from rollout.orchestration import floor

    lb, elb = Balancer("haproxy", "app", readings), Balancer("elb", "web", [{i: "InService" for i in UP4}])
    said, slept = [], []
    got = floor.hold([lb, elb], hosts(1), capacity.Floor(Size(3), 3, wait), say=said.append, sleep=slept.append)
    if held:
        assert got == "haproxy app reports 3 healthy hosts; taking out 1 would leave 2, below min_healthy 3"
        assert said and said[0].startswith(f"waiting up to {wait:g}s for capacity before taking out h1: haproxy app")
    else:
        assert got is None
    if reads is not None:
        assert lb.reads == reads and elb.reads == reads, "one read per balancer per look, never per host"
    assert lb.reads == elb.reads and bool(slept) == waited


def test_a_held_batch_says_which_and_why():
    why = capacity.held(3, hosts(2), "haproxy app reports 3 healthy hosts; taking out 2 would leave 1, below min_healthy 2",
                        capacity.Floor(Size(50, True), 2, 60))
    assert why.startswith("batch 3 (h1, h2) was not taken out of service: haproxy app reports 3 healthy hosts;")
    assert "still after waiting 60s (min_healthy_wait); hosts already updated keep the new version" in why


def test_the_plan_view_shows_the_ramp_the_zones_and_the_floor():
    from rollout.core import plan as planning
    from rollout.core.planview import capacity_lines

    sha = "b" * 40
    floor = capacity.Floor(Size(50, True), 2, 120, (("elb web", 4), ("haproxy app", 2)))
    p = planning.build(env="e", ref="main", sha=sha, hosts=hosts(4, "abab"), batch=sizes.ramp([1, "50%"]), balancers=(),
                       group=None, suspended_before=frozenset(), by_zone=True, floor=floor)
    assert capacity_lines(p) == [
        "Ramp: 1, 50% (the last size repeats): batches of 1, 1, 2",
        "Batches by zone, one zone after the other: eu-west-1a (h1, h3); eu-west-1b (h2, h4)",
        "Capacity floor: min_healthy 50% = 2 healthy hosts in every load balancer, checked before each batch;"
        " waits up to 120s for them, then stops (exit 14). elb web 4 healthy now, haproxy app 2 healthy now",
        "  the first batch would wait now: taking out 1 could leave haproxy app below 2",
    ]
    plain = planning.build(env="e", ref="main", sha=sha, hosts=hosts(3), batch=Size(2), balancers=(), group=None,
                           suspended_before=frozenset())
    assert capacity_lines(plain) == ["Ramp: 2: batches of 2, 1", "Capacity floor: none (min_healthy not set)"]


def test_a_plan_by_zone_needs_every_zone_and_a_floor_that_fits():
    from rollout.core import plan as planning
    from rollout.core.errors import PreflightError

    build = dict(env="e", ref="main", sha="b" * 40, balancers=(), group=None, suspended_before=frozenset())
    with pytest.raises(PreflightError, match=r"batch_by: zone, but EC2 reports no availability zone for h9 \(10.0.0.9\)"):
        planning.build(hosts=hosts(2, "ab") + [Host("i-9", "10.0.0.9", "h9")], batch=Size(1), by_zone=True, **build)
    with pytest.raises(PreflightError, match="min_healthy keeps 4 of 4 hosts healthy, which leaves no room for a batch of 1"):
        planning.build(hosts=hosts(4), batch=Size(1), floor=capacity.Floor(Size(4), 4, 0), **build)
