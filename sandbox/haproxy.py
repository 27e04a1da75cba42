"""HAProxy in the bastion namespace: config, start/reload, and its runtime API for tests.

Deliberately without `retry-on`, `option redispatch` or connect retries: they would hide
connections dropped during a roll, and the zero-downtime tests must be able to fail.
"""

from __future__ import annotations

import csv
import io
import socket

from rollout.adapters.waiting import WaitTimeout, poll
from sandbox import netns
from sandbox import topology as topo

CONFIG = topo.HAPROXY_DIR / "haproxy.cfg"
PID_FILE = topo.HAPROXY_DIR / "haproxy.pid"
BACKEND = "app"
CONTAINER_BACKEND = "app-container"

_HEAD = """\
# Written by sandbox.haproxy. Runs in namespace {ns}.
global
    maxconn 4000
    stats socket ipv4@{api_host}:{api_port} level admin
    stats socket {admin_sock} mode 600 level admin
    stats timeout 30s

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
"""
_PROXY = """
frontend {frontend_name}
    bind {frontend}:{frontend_port}
    default_backend {backend}

backend {backend}
    option http-server-close
    retries 0
    option httpchk GET /health
    http-check expect status 200
"""
_SERVER = "    server {name} {address}:{port} check inter 250ms fall 2 rise 2\n"


def render(hosts: list[topo.Host], container: bool = False) -> str:
    """haproxy.cfg for these hosts (with the container app's front end and backend if `container`)."""
    text = _HEAD.format(
        ns=topo.BASTION_NS,
        api_host=topo.HAPROXY_RUNTIME_API[0],
        api_port=topo.HAPROXY_RUNTIME_API[1],
        admin_sock=topo.HAPROXY_ADMIN_SOCK,
    ) + _PROXY.format(frontend_name="web", frontend=topo.BASTION_ADDR, frontend_port=topo.HAPROXY_FRONTEND_PORT, backend=BACKEND)
    text += "".join(_SERVER.format(name=h.name, address=h.address, port=topo.APP_PORT) for h in hosts)
    if container:
        text += _PROXY.format(frontend_name="web-container", frontend=topo.BASTION_ADDR,
                              frontend_port=topo.HAPROXY_CONTAINER_PORT, backend=CONTAINER_BACKEND)
        text += "".join(_SERVER.format(name=h.name, address=h.address, port=topo.CONTAINER_PORT) for h in hosts)
    return text


def pid() -> int | None:
    """pid of the running HAProxy in the bastion, if any."""
    p = netns.read_pid(PID_FILE)
    return p if p and netns.pid_in_ns(p, topo.BASTION_NS) else None


def ensure(hosts: list[topo.Host], container: bool = False) -> str:
    """Run HAProxy with the config for `hosts`: "unchanged", "started" or "reloaded"."""
    topo.HAPROXY_DIR.mkdir(parents=True, exist_ok=True)
    text = render(hosts, container)
    old = pid()
    if old and CONFIG.exists() and CONFIG.read_text() == text:
        return "unchanged"
    CONFIG.write_text(text)
    netns.run(["haproxy", "-c", "-q", "-f", str(CONFIG)])
    argv = netns.nsenter_net(topo.BASTION_NS) + ["haproxy", "-D", "-f", str(CONFIG), "-p", str(PID_FILE)]
    if old:
        argv += ["-sf", str(old)]  # soft reload: the old process finishes its connections
    else:
        PID_FILE.unlink(missing_ok=True)
    netns.run(argv)
    try:
        poll(pid, lambda p: bool(p) and p != old, timeout=10, interval=0.02, max_interval=0.2, what="HAProxy's pid file")
    except WaitTimeout:
        raise RuntimeError(f"HAProxy did not start within 10s; check it with: haproxy -c -f {CONFIG}") from None
    return "reloaded" if old else "started"


def admin(command: str, timeout: float = 5.0) -> str:
    """Send one runtime API command over the admin unix socket; returns the answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(topo.HAPROXY_ADMIN_SOCK))
        s.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def servers(backend: str = BACKEND) -> dict[str, dict[str, str]]:
    """`show stat` rows of a backend's servers, by server name (status, check_status, scur...)."""
    text = admin("show stat").lstrip("# ")
    rows = csv.DictReader(io.StringIO(text))
    return {r["svname"]: r for r in rows if r["pxname"] == backend and r["svname"] not in ("FRONTEND", "BACKEND")}


def wait_up(names: list[str], timeout: float = 30.0, backend: str = BACKEND) -> None:
    """Wait until HAProxy has seen a passing health check on each named server."""
    def pending() -> list[str]:
        state = servers(backend)
        # A server someone put in maintenance or drain is theirs to bring back, not the sandbox's.
        return [n for n in names if not (state.get(n, {}).get("status", "").startswith(("MAINT", "DRAIN"))
                                         or state.get(n, {}).get("status") == "UP" and state[n].get("check_status") == "L7OK")]

    try:
        poll(pending, lambda left: not left, timeout=timeout, interval=0.1, max_interval=0.5, what="HAProxy servers UP")
        return
    except WaitTimeout as exc:
        left = exc.last
    raise RuntimeError(
        f"HAProxy servers not UP after {timeout}s: {', '.join(left)}; "
        f"inspect with: echo 'show stat' | socat - UNIX-CONNECT:{topo.HAPROXY_ADMIN_SOCK}"
    )
