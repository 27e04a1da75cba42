"""The sandbox's shape: isolation, strict SSH through the bastion, discovery by tag, HAProxy, idempotence."""

import socket
import subprocess
import urllib.request

import boto3
import pytest

from tests import fleetctl as f
from sandbox import awsprofile, fleet as sandbox_fleet, haproxy, netns
from sandbox import topology as topo

pytestmark = pytest.mark.fleet

HOST = topo.Host(1)


def _ssh_config(tmp_path, known_hosts):
    # -o settings do not reach a -J jump host; a -F config file does
    cfg = tmp_path / "ssh_config"
    cfg.write_text(
        "Host *\n"
        f"    UserKnownHostsFile {known_hosts}\n    GlobalKnownHostsFile /dev/null\n"
        f"    IdentityFile {topo.DEPLOY_KEY}\n    IdentitiesOnly yes\n"
        "    StrictHostKeyChecking yes\n    BatchMode yes\n    ConnectTimeout 5\n"
    )
    return cfg


def _ssh_via_bastion(cfg, known_hosts):
    argv = [
        "ssh", "-F", str(cfg),
        "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}",
        "-i", str(topo.DEPLOY_KEY), "-o", "BatchMode=yes",
        "-J", f"deploy@{topo.BASTION_ADDR}", f"deploy@{HOST.address}", "true",
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def test_host_sshd_not_reachable_from_root_namespace(fleet):
    assert netns.exists(HOST.ns)
    with pytest.raises(OSError):
        socket.create_connection((HOST.address, 22), timeout=2).close()


def test_ssh_through_bastion_with_strict_host_keys(fleet, tmp_path):
    r = _ssh_via_bastion(_ssh_config(tmp_path, topo.KNOWN_HOSTS), topo.KNOWN_HOSTS)
    assert r.returncode == 0, r.stderr


def test_ssh_with_empty_known_hosts_fails_host_key_verification(fleet, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    r = _ssh_via_bastion(_ssh_config(tmp_path, empty), empty)
    assert r.returncode == 255
    assert "Host key verification failed" in r.stderr


def test_rollouts_ssh_answers_a_hosts_post_login_notice_and_idles_quietly(fleet):
    # OpenSSH's sshd sends its host keys after login; unanswered, its reply to our first channel waits
    # 40 ms on the bastion's delayed ACK (rollout.adapters.ssh._HostTransport).
    from rollout.adapters.ssh import Fleet

    ssh = Fleet(bastion=topo.BASTION_ADDR, bastion_user=topo.DEPLOY_USER, user=topo.DEPLOY_USER, key=topo.DEPLOY_KEY,
                known_hosts=topo.KNOWN_HOSTS)
    try:
        assert ssh.run(HOST.address, "echo ok").stdout == "ok\n"
        transport = ssh.host(HOST.address).transport
        assert transport.acked_notice
        assert transport.sock.gettimeout() == transport.IDLE_CHECK  # its reader wakes once a second while idle
    finally:
        ssh.close()


def _ec2():
    session = boto3.Session(profile_name=awsprofile.PROFILE)
    return session.client("ec2", endpoint_url=topo.MOTO_ENDPOINT)


def _addresses(**tags):
    filters = [{"Name": f"tag:{k}", "Values": [v]} for k, v in tags.items()]
    filters.append({"Name": "instance-state-name", "Values": ["running"]})
    pages = _ec2().get_paginator("describe_instances").paginate(Filters=filters)
    return sorted(i["PrivateIpAddress"] for p in pages for r in p["Reservations"] for i in r["Instances"])


def test_hosts_discovered_by_tag(fleet):
    assert _addresses(Stack="app", Deployment="sandbox") == sorted(fleet["addresses"].values())


def test_bastion_discovered_by_tag(fleet):
    assert _addresses(Role="bastion", Deployment="sandbox") == [topo.BASTION_ADDR]


def test_haproxy_front_end_serves_the_app(fleet):
    assert all(s["status"] == "UP" for s in haproxy.servers().values())
    url = f"http://{topo.BASTION_ADDR}:{topo.HAPROXY_FRONTEND_PORT}/health"
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.status == 200
        # The version a host has checked out: v1 on a fresh sandbox, later whatever was deployed.
        checked_out = {f.checked_out(h.name) for h in topo.hosts(4)}
        assert resp.headers["X-Version"] in checked_out


def test_up_again_is_quick_and_changes_nothing(fleet):
    again = sandbox_fleet.up(hosts=4, quiet=True)
    assert again["changes"] == []
    assert again["instance_ids"] == fleet["instance_ids"]
    assert again["bastion_instance_id"] == fleet["bastion_instance_id"]
    assert again["seconds"] < 10
