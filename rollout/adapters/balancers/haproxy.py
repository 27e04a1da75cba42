"""HAProxy through its runtime API: drain, then maint once sessions reach 0; ready; wait for UP.

Servers are matched to instances by address, so HAProxy's server names are free.
The runtime API is reached through the bastion (an SSH channel to the address given)
or, with `via: local`, directly (a unix socket path or host:port).
"""

from __future__ import annotations

import logging
import re
import socket

from rollout.adapters.retry import ssh_retrying
from rollout.adapters.waiting import Cancelled, WaitTimeout, poll
from rollout.core.errors import PreflightError
from rollout.core.plan import BalancerFacts, Host

log = logging.getLogger("rollout.haproxy")

# srv_admin_state bits (HAProxy's SRV_ADMF_*): any maintenance or drain flag.
_ADMIN_OUT = 0x01 | 0x02 | 0x04 | 0x08 | 0x10 | 0x20 | 0x40
_OP_RUNNING = 2


# HAProxy's own rule for proxy and server names: a name is one word of the runtime API, never a `;` or a space.
_NAME = re.compile(r"[A-Za-z0-9_.:-]+")
STATES = ("ready", "drain", "maint")


def _name(value: str, what: str) -> str:
    if not _NAME.fullmatch(value):
        raise PreflightError(f"HAProxy {what} {value!r} is not a HAProxy name (letters, digits, '-', '_', '.', ':')")
    return value


def show_servers_state(backend: str) -> str:
    """The runtime API line that lists `backend`'s servers."""
    return f"show servers state {_name(backend, 'backend')}"


def set_servers_state(backend: str, servers, state: str) -> str:
    """One runtime API line setting every server of `servers` in `backend` to `state` (ready, drain or maint)."""
    if state not in STATES:
        raise ValueError(f"state {state!r}: expected one of {', '.join(STATES)}")
    b = _name(backend, "backend")
    return "; ".join(f"set server {b}/{_name(s, 'server')} state {state}" for s in servers)


def answers_complete(data: bytes) -> int:
    """How many complete runtime API answers `data` holds (each ends with an empty line)."""
    lines = data.split(b"\n")[:-1]
    return sum(1 for ln in lines if ln == b"")


def parse_servers_state(text: str) -> list[dict]:
    """Rows of `show servers state` as dicts keyed by its header's field names."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    header = next((ln for ln in lines if ln.startswith("#")), None)
    if header is None:
        return []
    names = header.lstrip("# ").split()
    rows = []
    for ln in lines:
        if ln.startswith("#") or not ln[0].isdigit() or len(ln.split()) < len(names) - 4:
            continue
        rows.append(dict(zip(names, ln.split())))
    return rows


def parse_stat_sessions(text: str, backend: str) -> dict[str, int]:
    """Current sessions per server of `backend`, from `show stat` CSV."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# "):
        return {}
    cols = lines[0][2:].split(",")
    i_px, i_sv, i_scur = cols.index("pxname"), cols.index("svname"), cols.index("scur")
    out = {}
    for ln in lines[1:]:
        f = ln.split(",")
        if len(f) > i_scur and f[i_px] == backend and f[i_sv] not in ("FRONTEND", "BACKEND"):
            out[f[i_sv]] = int(f[i_scur] or 0)
    return out


def server_in_service(row: dict) -> bool:
    return int(row["srv_op_state"]) == _OP_RUNNING and int(row["srv_admin_state"]) & _ADMIN_OUT == 0


def describe_state(row: dict) -> str:
    admin = int(row["srv_admin_state"])
    if admin & (0x01 | 0x02 | 0x04 | 0x20 | 0x40):
        return "MAINT"
    if admin & (0x08 | 0x10):
        return "DRAIN"
    return {0: "DOWN", 1: "STARTING", 2: "UP", 3: "STOPPING"}.get(int(row["srv_op_state"]), "?")


class HaproxyBackend:
    kind = "haproxy"

    def __init__(self, spec, fleet, hosts: list[Host], poll_interval: float = 0.1):
        self.spec = spec
        self.name = spec.backend
        self.fleet = fleet
        self.poll_interval = poll_interval
        self._ids = {h.address: h.instance_id for h in hosts}
        self._by_addr: dict[str, str] | None = None

    # -- runtime API -------------------------------------------------------
    def command(self, cmd: str) -> str:
        """Send one runtime API command line (';'-separated commands allowed); return the answer.

        A connection lost mid-exchange is retried: every command rollout sends is idempotent.
        """
        for attempt in ssh_retrying(lambda s: log.warning("HAProxy %s: %r lost the connection; retrying",
                                                          self.name, s.outcome.exception())):
            with attempt:
                return self._exchange(cmd)
        raise AssertionError("unreachable")

    def _exchange(self, cmd: str) -> str:
        sock = self._open()
        expected = cmd.count(";") + 1
        try:
            sock.sendall(cmd.encode() + b"\n")
            data = b""
            # Each command's answer ends with an empty line; stop there rather than wait
            # for the connection to close, which costs a round trip through the bastion.
            while answers_complete(data) < expected:
                chunk = sock.recv(65536)
                if not chunk:
                    # Closed before the answer ended: the connection was lost (retried by command()).
                    raise EOFError(f"the runtime API connection closed before HAProxy answered {cmd!r}")
                data += chunk
        finally:
            sock.close()
        return data.decode(errors="replace")

    def _open(self):
        api = self.spec.runtime_api
        if self.spec.via == "bastion":
            host, _, port = api.rpartition(":")
            return self.fleet.bastion_channel(host, int(port))
        if api.startswith("/"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(10)
            sock.connect(api)
            return sock
        host, _, port = api.rpartition(":")
        return socket.create_connection((host, int(port)), timeout=10)

    def _rows(self) -> list[dict]:
        rows = parse_servers_state(self.command(show_servers_state(self.name)))
        if not rows:
            raise PreflightError(f"HAProxy backend {self.name!r} has no servers or does not exist; fix load_balancers in the inventory")
        return rows

    def _servers(self, hosts: list[Host]) -> dict[str, str]:
        """Instance id -> HAProxy server name; the backend's servers are read once."""
        if self._by_addr is None:
            self._by_addr = {r["srv_addr"]: r["srv_name"] for r in self._rows()}
        by_addr = self._by_addr
        missing = [h.label for h in hosts if h.address not in by_addr]
        if missing:
            raise PreflightError(f"HAProxy backend {self.name}: no server with the address of {', '.join(missing)}")
        return {h.instance_id: by_addr[h.address] for h in hosts}

    def _set_state(self, hosts: list[Host], state: str) -> None:
        servers = self._servers(hosts).values()
        answer = self.command(set_servers_state(self.name, servers, state))
        if answer.strip():
            raise RuntimeError(f"HAProxy refused 'set server ... state {state}': {answer.strip()}")

    # -- Balancer ----------------------------------------------------------
    def facts(self) -> BalancerFacts:
        self._rows()
        return BalancerFacts(kind=self.kind, name=self.name, drain_seconds=self.spec.drain_timeout, healthy_seconds=1.0)

    def members(self) -> dict[str, str]:
        """Instance id (or 'address:A' for a server matching no instance) -> state."""
        return {self._id(r): describe_state(r) for r in self._rows()}

    def registered(self) -> set[str]:
        return set(self.members())


    def _id(self, row: dict) -> str:
        return self._ids.get(row["srv_addr"], f"address:{row['srv_addr']}")

    def deregister(self, hosts: list[Host]) -> None:
        self._set_state(hosts, "drain")

    def wait_drained(self, hosts: list[Host], cancelled=lambda: False, before_change=lambda: None) -> None:
        servers = set(self._servers(hosts).values())
        try:
            poll(
                lambda: parse_stat_sessions(self.command("show stat"), self.name),
                lambda cur: all(cur.get(s, 0) == 0 for s in servers),
                timeout=self.spec.drain_timeout,
                interval=self.poll_interval,
                max_interval=1.0,
                cancelled=cancelled,
                what=f"HAProxy {self.name}: draining",
            )
        except Cancelled:
            raise
        except WaitTimeout as exc:
            # Past the deadline the remaining sessions are cut: that is what drain_timeout means.
            log.warning("HAProxy %s: %s; putting the servers in maintenance anyway", self.name, exc)
        before_change()
        self._set_state(hosts, "maint")

    def register(self, hosts: list[Host]) -> None:
        self._set_state(hosts, "ready")

    def wait_healthy(self, hosts: list[Host], timeout: float) -> None:
        addrs = {h.address for h in hosts}
        poll(
            lambda: {r["srv_addr"]: r for r in self._rows() if r["srv_addr"] in addrs},
            lambda rows: len(rows) == len(addrs) and all(server_in_service(r) for r in rows.values()),
            timeout=min(timeout, self.spec.healthy_timeout),
            interval=self.poll_interval,
            max_interval=0.5,
            what=f"HAProxy {self.name}: waiting for UP",
        )
