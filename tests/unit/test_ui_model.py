"""The page's pure views: ETA, timelines, desired version, builds and where they stand."""

import pytest

from rollout.ui import model


def start(n_hosts: int, size: int, at: float = 0.0, sha: str = "b" * 40) -> dict:
    hosts = [{"instance_id": f"i-{k}", "name": f"h{k}", "version": "a" * 40, "target": sha} for k in range(1, n_hosts + 1)]
    return {"type": "start", "at": at, "data": {"sha": sha, "batch_size": size, "hosts": hosts}}


def dereg(at: float, *ids: str, phase: str = "deploy") -> dict:
    return {"type": "deregistered", "at": at, "data": {"hosts": list(ids), "phase": phase}}


@pytest.mark.parametrize("records, now, expected", [
    ([], 5, {"done": 0, "total": 0, "seconds": None}),
    ([start(4, 1)], 1, {"done": 0, "total": 4, "seconds": None}),
    ([start(4, 1), dereg(1, "i-1")], 3, {"done": 0, "total": 4, "seconds": None}),
    # two batches started 10 s apart: 10 s a batch, 3 to go, 4 s into the current one
    ([start(4, 1), dereg(1, "i-1"), dereg(11, "i-2")], 15, {"done": 1, "total": 4, "seconds": 26.0}),
    ([start(5, 2), dereg(0, "i-1", "i-2"), dereg(6, "i-3", "i-4")], 8, {"done": 1, "total": 3, "seconds": 10.0}),
    # late: never negative
    ([start(2, 1), dereg(0, "i-1"), dereg(5, "i-2")], 60, {"done": 1, "total": 2, "seconds": 0.0}),
    # a fleet rollback's batches are not the deploy's progress
    ([start(2, 1), dereg(0, "i-1"), dereg(5, "i-1", phase="rollback")], 6, {"done": 0, "total": 2, "seconds": None}),
])
def test_eta_from_the_journal(records, now, expected):
    assert model.eta(records, now) == expected


def test_a_finished_runs_timeline_uses_each_hosts_measured_time_out_of_service():
    records = [start(2, 1, at=100), dereg(101, "i-1"), dereg(106, "i-2"), {"type": "end", "at": 110, "data": {}}]
    details = [{"instance_id": "i-1", "out_of_service_seconds": 4.0}, {"instance_id": "i-2", "out_of_service_seconds": 3.0}]
    t = model.timeline(records, details, width=100)
    assert t["seconds"] == 10
    assert [(r["label"], [(w["x"], w["w"], w["seconds"]) for w in r["windows"]]) for r in t["rows"]] == [
        ("h1", [(10.0, 40.0, 4.0)]), ("h2", [(60.0, 30.0, 3.0)])]
    assert [k["label"] for k in t["ticks"]] == [f"{s}s" for s in range(0, 11, 2)]


def test_a_running_batch_is_out_of_service_until_now_and_earlier_ones_until_the_next_record():
    records = [start(3, 1, at=0), dereg(1, "i-1"), dereg(5, "i-2")]
    t = model.timeline(records, now=9, width=90)
    assert [[(w["start"], w["seconds"]) for w in r["windows"]] for r in t["rows"]] == [[(1, 4)], [(5, 4)], []]


def test_a_host_rolled_back_after_a_failure_has_two_windows():
    records = [start(1, 1), dereg(1, "i-1"), dereg(4, "i-1", phase="rollback"), {"type": "end", "at": 6, "data": {}}]
    t = model.timeline(records, [{"instance_id": "i-1", "out_of_service_seconds": 1.5}], width=60)
    assert [(w["phase"], w["start"], w["seconds"]) for w in t["rows"][0]["windows"]] == [("deploy", 1, 3), ("rollback", 4, 2)]


@pytest.mark.parametrize("history, active, expected", [
    ([], None, None),
    ([{"sha": "x", "result": "failed"}, {"sha": "y", "result": "succeeded"}], None, "y"),
    ([{"sha": "y", "result": "succeeded"}], {"data": {"sha": "z"}}, "z"),
])
def test_the_desired_version(history, active, expected):
    assert model.desired(history, active) == expected


def test_builds_are_branch_heads_then_tags_newest_first():
    refs = {"HEAD": "1", "refs/heads/main": "2", "refs/heads/broken": "3", "refs/tags/v1": "4", "refs/tags/v2": "5"}
    assert [b["name"] for b in model.builds(refs)] == ["broken", "main", "v2", "v1"]
    assert model.builds(refs, limit=1) == [{"name": "broken", "sha": "3"}]


def test_where_a_build_stands_is_its_newest_run_in_each_environment():
    builds = [{"name": "main", "sha": "s1"}, {"name": "v1", "sha": "s0"}]
    histories = {"integration": [{"sha": "s1", "result": "succeeded"}, {"sha": "s1", "result": "failed"}],
                 "production": [{"sha": "s0", "result": "rolled_back"}]}
    assert [b["envs"] for b in model.standing(builds, histories)] == [
        {"integration": "succeeded", "production": ""}, {"integration": "", "production": "rolled_back"}]


@pytest.mark.parametrize("started, ended, expected", [
    ("2026-01-01T00:00:00.000+00:00", "2026-01-01T00:00:12.340+00:00", "12.3s"),
    ("2026-01-01T00:00:00.000+00:00", "2026-01-01T00:04:05.000+00:00", "4min 05s"),
    ("2026-01-01T00:00:00.000+00:00", None, "-"),
])
def test_duration(started, ended, expected):
    assert model.duration(started, ended) == expected


def test_without_a_repository_the_builds_are_what_the_history_deployed():
    history = [{"sha": "sha256:b", "ref": "v2"}, {"sha": "sha256:a", "ref": "recover 1"}, {"sha": "sha256:b", "ref": "latest"},
               {"sha": "sha256:a", "ref": "v1"}]
    assert model.deployed_builds(history) == [{"name": "v2", "sha": "sha256:b"}, {"name": "v1", "sha": "sha256:a"}]
