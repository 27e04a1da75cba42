"""Network namespaces, links and processes of the sandbox, and running commands inside them.

Namespaces are entered with `nsenter --net=/run/netns/NAME`, never `ip netns exec`
(which remounts /sys and hides the cgroup mount). `ip -n NAME ...` is fine: only
the `ip` process itself is affected.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
from pathlib import Path

from rollout.adapters.waiting import WaitTimeout, poll
from sandbox import topology as topo

NETNS_DIR = Path("/run/netns")


def run(argv: list[str], check: bool = True, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    """Run argv, capturing text output; on failure raise RuntimeError naming the command and its stderr."""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"command failed ({proc.returncode}): {' '.join(argv)}\n{proc.stderr.strip() or proc.stdout.strip()}"
        )
    return proc


def exists(ns: str) -> bool:
    return (NETNS_DIR / ns).exists()


def _is_ours(name: str) -> bool:
    try:
        return name == topo.BASTION_NS or topo.host_by_name(name).ns == name
    except ValueError:
        return False


def ours() -> list[str]:
    """Sandbox namespaces present now: rollout-bastion and rollout-hNNN."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if _is_ours(p.name))


def pid_alive(pid: int | None) -> bool:
    """True if pid runs and is not a zombie."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def read_pid(path: Path) -> int | None:
    """The pid in a pid file if that process is alive, else None."""
    try:
        pid = int(path.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid) else None


def _ns_inode(ns: str) -> int | None:
    try:
        return os.stat(NETNS_DIR / ns).st_ino
    except FileNotFoundError:
        return None


def pid_in_ns(pid: int, ns: str) -> bool:
    """True if process pid lives in network namespace ns."""
    inode = _ns_inode(ns)
    try:
        return inode is not None and os.stat(f"/proc/{pid}/ns/net").st_ino == inode
    except (FileNotFoundError, PermissionError):
        return False


def pids_in(names: list[str]) -> dict[str, list[int]]:
    """Processes per namespace, found through /proc/PID/ns/net (like `ip netns pids`)."""
    by_inode = {ino: ns for ns in names if (ino := _ns_inode(ns)) is not None}
    found: dict[str, list[int]] = {ns: [] for ns in by_inode.values()}
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            ino = os.stat(f"/proc/{entry.name}/ns/net").st_ino
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
        if ino in by_inode:
            found[by_inode[ino]].append(int(entry.name))
    return found


def kill_pids(pids: list[int], timeout: float = 5.0) -> None:
    """SIGTERM pids, then SIGKILL those still alive after `timeout` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        try:
            poll(lambda: [p for p in pids if pid_alive(p)], lambda alive: not alive, timeout=timeout,
                 interval=0.05, max_interval=0.5, what="processes to exit")
            return
        except WaitTimeout as exc:
            pids = exc.last


def kill_in(names: list[str], timeout: float = 5.0) -> int:
    """Kill every process in the given namespaces; returns how many there were."""
    pids = [p for ps in pids_in(names).values() for p in ps]
    kill_pids(pids, timeout)
    return len(pids)


def delete(ns: str) -> None:
    """Kill the namespace's processes and delete it (its veth pairs go with it)."""
    if exists(ns):
        kill_in([ns])
        run(["ip", "netns", "delete", ns])


def _links(ns: str | None = None) -> dict[str, dict]:
    argv = ["ip"] + (["-n", ns] if ns else []) + ["-j", "addr", "show"]
    return {link["ifname"]: link for link in json.loads(run(argv).stdout or "[]")}


def _has_addr(link: dict | None, addr: str) -> bool:
    return bool(link) and any(a.get("local") == addr for a in link.get("addr_info", []))


def _ip(ns: str | None, *args: str, check: bool = True) -> None:
    run(["ip"] + (["-n", ns] if ns else []) + list(args), check=check)


def ensure_bastion() -> bool:
    """Create the bastion namespace, its link to the root namespace and bridge br0; True if it changed anything."""
    b = topo.BASTION_NS
    link_prefix = f"/{topo.LINK_NET.prefixlen}"
    bridge_prefix = f"/{topo.BRIDGE_NET.prefixlen}"
    if exists(b):
        links = _links(b)
        root = _links().get(topo.ROOT_VETH)
        if (
            _has_addr(root, topo.CONTROLLER_ADDR)
            and _has_addr(links.get("eth0"), topo.BASTION_ADDR)
            and _has_addr(links.get("br0"), topo.BRIDGE_ADDR)
        ):
            return False
        delete(b)  # half-built: rebuild from scratch
    _ip(None, "link", "del", topo.ROOT_VETH, check=False)
    run(["ip", "netns", "add", b])
    _ip(b, "link", "set", "lo", "up")
    _ip(None, "link", "add", topo.ROOT_VETH, "type", "veth", "peer", "name", "eth0", "netns", b)
    _ip(None, "addr", "add", topo.CONTROLLER_ADDR + link_prefix, "dev", topo.ROOT_VETH)
    _ip(None, "link", "set", topo.ROOT_VETH, "up")
    _ip(b, "addr", "add", topo.BASTION_ADDR + link_prefix, "dev", "eth0")
    _ip(b, "link", "set", "eth0", "up")
    _ip(b, "link", "add", "br0", "type", "bridge")
    _ip(b, "addr", "add", topo.BRIDGE_ADDR + bridge_prefix, "dev", "br0")
    _ip(b, "link", "set", "br0", "up")
    run(nsenter_net(b) + ["sysctl", "-q", "-w", "net.ipv4.ip_forward=0"])
    return True


def bridge_ports() -> set[str]:
    """Names of the links attached to br0 in the bastion."""
    return {name for name, link in _links(topo.BASTION_NS).items() if link.get("master") == "br0"}


def ensure_host(host: topo.Host, ports: set[str]) -> bool:
    """Create the host's namespace and its veth into the bastion's bridge; True if it changed anything."""
    if exists(host.ns) and host.bridge_port in ports:
        return False
    if not exists(host.ns):
        run(["ip", "netns", "add", host.ns])
    else:
        _ip(host.ns, "link", "del", "eth0", check=False)  # stale end of a pair whose bridge side is gone
    b = topo.BASTION_NS
    _ip(b, "link", "del", host.bridge_port, check=False)
    _ip(b, "link", "add", host.bridge_port, "type", "veth", "peer", "name", "eth0", "netns", host.ns)
    _ip(b, "link", "set", host.bridge_port, "master", "br0", "up")
    _ip(host.ns, "link", "set", "lo", "up")
    _ip(host.ns, "addr", "add", f"{host.address}/{topo.BRIDGE_NET.prefixlen}", "dev", "eth0")
    _ip(host.ns, "link", "set", "eth0", "up")
    # A host removed and made again keeps its address but gets a new MAC: the bastion's cached
    # neighbour entry would send its packets nowhere until it expires (seen: 3 s of no answer).
    _ip(b, "neigh", "flush", "to", host.address, check=False)
    return True


def guard_route_present() -> bool:
    out = run(["ip", "route", "show", "type", "unreachable", str(topo.SANDBOX_RANGE)]).stdout
    return bool(out.strip())


def add_guard_route() -> bool:
    """Add `unreachable 198.18.0.0/15` in the root namespace; True if this call added it."""
    if guard_route_present():
        return False
    _ip(None, "route", "add", "unreachable", str(topo.SANDBOX_RANGE))
    return True


def remove_guard_route() -> None:
    _ip(None, "route", "del", "unreachable", str(topo.SANDBOX_RANGE), check=False)


def nsenter_net(ns: str) -> list[str]:
    """argv prefix that runs a command in network namespace ns (root mount namespace)."""
    return ["nsenter", f"--net={NETNS_DIR / ns}", "--"]


def _sshd_pid(ns: str) -> int:
    pid = read_pid(topo.SSHD_DIR / ns / "sshd.pid")
    if pid is None or not pid_in_ns(pid, ns):
        raise RuntimeError(f"sshd of {ns} is not running: run sandbox.fleet.up() to repair the sandbox")
    return pid


def _ns_name(name: str) -> str:
    if name in ("bastion", topo.BASTION_NS):
        return topo.BASTION_NS
    return topo.host_by_name(name).ns


def in_host_argv(name: str, argv: list[str], user: str | None = None) -> list[str]:
    """argv that runs `argv` in the net+mount namespaces of a host ("h001") or "bastion", optionally as `user`."""
    pid = _sshd_pid(_ns_name(name))
    cmd = ["nsenter", f"--target={pid}", "--net", "--mount", "--"]
    if user:
        cmd += ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"]
    return cmd + list(argv)


def run_in_host(
    name: str, argv: list[str], user: str | None = None, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run argv inside a host's ("h001") or the bastion's net+mount namespaces, as root or `user`.

    The namespaces are those of the host's sshd, so the command sees what an SSH
    session sees: /srv/rollout-sandbox is the host's data dir, no DNS.
    """
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    if user:
        home = pwd.getpwnam(user).pw_dir
        env.update(HOME=home, USER=user, LOGNAME=user)
    else:
        env["HOME"] = "/root"
    return run(in_host_argv(name, argv, user), check=check, timeout=timeout, env=env, cwd="/")
