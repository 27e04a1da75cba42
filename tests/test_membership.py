"""Balancer membership as rollout reads it: before the rollout (the plan's warnings) and at the first deregistration."""

from __future__ import annotations

import pytest

from tests import fleetctl as f

pytestmark = pytest.mark.fleet


def test_a_host_left_out_of_the_elb_is_named_in_the_plan_and_the_rollout_puts_it_back(healthy_fleet, new_commit):
    out = sorted(f.instances())[0]
    f.aws("elb").deregister_instances_from_load_balancer(LoadBalancerName="sandbox-elb", Instances=[{"InstanceId": out}])
    assert out not in f.elb_members()

    planned = f.fab("deploy", "--env=sandbox", "--dry-run")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    warnings = [ln for ln in planned.stdout.splitlines() if "WARNING" in ln and "not registered" in ln]
    assert len(warnings) == 1 and f"elb sandbox-elb: not registered: {out}" in warnings[0], planned.stdout
    assert "sandbox-tg: not registered" not in planned.stdout

    done = f.fab("deploy", "--env=sandbox", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    f.assert_fleet_serves(new_commit)
    assert f.elb_members() == {i: "InService" for i in f.instances()}
