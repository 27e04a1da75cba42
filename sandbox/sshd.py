"""The `deploy` user, SSH keys, and one OpenSSH sshd per namespace.

Each sshd runs in its namespace's network namespace and in a private mount
namespace of its own, where bind mounts give it a resolv.conf without
nameservers, a static /etc/hosts and, for hosts, the host's data dir on
/srv/rollout-sandbox. Every process started through that sshd (or through
netns.run_in_host) sees the same.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
from pathlib import Path

from rollout.adapters.waiting import WaitTimeout, poll
from sandbox import netns
from sandbox import topology as topo

SSHD = "/usr/sbin/sshd"  # absolute: sshd re-executes itself per connection
PRIVSEP_DIR = Path("/run/sshd")

# Fixed script: pairs of (source, target) to bind-mount, then `--`, then the command to exec.
# `/` is made shared again (inside this namespace only) for rootless podman's mounts.
_BIND_AND_EXEC = ('while [ "$1" != -- ]; do mount --bind "$1" "$2" || exit 1; shift 2; done; shift; '
                  'mount --make-rshared / || exit 1; exec "$@"')

SSHD_CONFIG = """\
# Written by sandbox.sshd for namespace {ns}.
ListenAddress 0.0.0.0
Port 22
HostKey {dir}/ssh_host_ed25519_key
PidFile {dir}/sshd.pid
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PermitRootLogin no
AllowUsers {user}
UseDNS no
MaxStartups 200:30:400
MaxSessions 100
AllowTcpForwarding yes
X11Forwarding no
PrintMotd no
Subsystem sftp internal-sftp
{extra}"""

RESOLV_CONF = "# rollout sandbox: no nameservers, so lookups fail at once instead of stalling\noptions timeout:1 attempts:1\n"


def ensure_deploy_key() -> None:
    """Create ssh/id_ed25519(.pub), the deploy user's key, if missing."""
    topo.SSH_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not topo.DEPLOY_KEY.exists():
        netns.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rollout-sandbox", "-f", str(topo.DEPLOY_KEY)])


def _public_key() -> str:
    return topo.DEPLOY_KEY.with_suffix(".pub").read_text().strip()


def ensure_deploy_user() -> bool:
    """Make `deploy` a key-only login with the sandbox key; True if this call created the user."""
    user = topo.DEPLOY_USER
    created = False
    try:
        pwd.getpwnam(user)
    except KeyError:
        netns.run(["useradd", "-m", "-s", "/bin/bash", user])
        netns.run(["usermod", "-p", "*", user])  # UsePAM no refuses a locked ("!") password
        created = True
    pw = pwd.getpwnam(user)
    home = Path(pw.pw_dir)
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    keys = ssh_dir / "authorized_keys"
    key = _public_key()
    lines = keys.read_text().splitlines() if keys.exists() else []
    if key not in lines:
        keys.write_text("\n".join(lines + [key]) + "\n")
    gitconfig = home / ".gitconfig"
    if "directory = *" not in (gitconfig.read_text() if gitconfig.exists() else ""):
        # the origin repo is owned by root: without this git refuses it ("dubious ownership")
        with gitconfig.open("a") as f:
            f.write("[safe]\n\tdirectory = *\n")
    for path in (ssh_dir, keys, gitconfig):
        os.chown(path, pw.pw_uid, pw.pw_gid)
    keys.chmod(0o600)
    return created


def remove_deploy_key_from_user() -> None:
    """Remove the sandbox key from an existing deploy user's authorized_keys (user not created by us)."""
    try:
        keys = Path(pwd.getpwnam(topo.DEPLOY_USER).pw_dir) / ".ssh" / "authorized_keys"
        key = _public_key()
    except (KeyError, FileNotFoundError):
        return
    if keys.exists():
        keys.write_text("".join(line + "\n" for line in keys.read_text().splitlines() if line != key))


def remove_deploy_user() -> None:
    """Delete the deploy user and its home (call only if the sandbox created it, after its processes are gone)."""
    try:
        pwd.getpwnam(topo.DEPLOY_USER)
    except KeyError:
        return
    netns.run(["userdel", "-r", topo.DEPLOY_USER], check=False)


def write_etc(host_addresses: list[tuple[str, str]]) -> None:
    """Write the resolv.conf and hosts files bind-mounted into every namespace.

    Written in place (not replaced) so bind mounts of the old inode see new content.
    """
    topo.ETC_DIR.mkdir(parents=True, exist_ok=True)
    hosts = [
        "127.0.0.1\tlocalhost",
        f"127.0.1.1\t{socket.gethostname()}",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        f"{topo.CONTROLLER_ADDR}\tcontroller",
        f"{topo.BASTION_ADDR}\tbastion",
    ] + [f"{addr}\t{name}" for name, addr in host_addresses]
    for name, text in (("resolv.conf", RESOLV_CONF), ("hosts", "\n".join(hosts) + "\n")):
        path = topo.ETC_DIR / name
        if not path.exists() or path.read_text() != text:
            with path.open("w") as f:
                f.write(text)


def _dir(ns: str) -> Path:
    return topo.SSHD_DIR / ns


def host_key_line(ns: str, address: str) -> str:
    """known_hosts line for the sshd of ns, under the address clients connect to."""
    keytype, key = (_dir(ns) / "ssh_host_ed25519_key.pub").read_text().split()[:2]
    return f"{address} {keytype} {key}"


def write_known_hosts(entries: list[tuple[str, str]]) -> None:
    """Write ssh/known_hosts from (namespace, address) pairs."""
    text = "".join(host_key_line(ns, addr) + "\n" for ns, addr in entries)
    if not topo.KNOWN_HOSTS.exists() or topo.KNOWN_HOSTS.read_text() != text:
        topo.KNOWN_HOSTS.write_text(text)


SSH_CONFIG = topo.SSH_DIR / "ssh_config"


def write_ssh_config() -> None:
    """Write ssh/ssh_config: `ssh -F ssh/ssh_config 198.18.1.11` reaches a host through the bastion.

    Settings given with -o apply only to the destination, not to a -J jump host;
    a config file given with -F applies to both.
    """
    text = (
        f"Host 198.18.1.*\n    ProxyJump {topo.DEPLOY_USER}@{topo.BASTION_ADDR}\n\n"
        f"Host *\n    User {topo.DEPLOY_USER}\n    IdentityFile {topo.DEPLOY_KEY}\n    IdentitiesOnly yes\n"
        f"    UserKnownHostsFile {topo.KNOWN_HOSTS}\n    GlobalKnownHostsFile /dev/null\n"
        "    StrictHostKeyChecking yes\n    BatchMode yes\n    ConnectTimeout 5\n"
    )
    if not SSH_CONFIG.exists() or SSH_CONFIG.read_text() != text:
        SSH_CONFIG.write_text(text)


def pid(ns: str) -> int | None:
    """pid of the sshd of ns if it is running there."""
    p = netns.read_pid(_dir(ns) / "sshd.pid")
    return p if p and netns.pid_in_ns(p, ns) else None


def _prepare(ns: str) -> Path:
    d = _dir(ns)
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = d / "ssh_host_ed25519_key"
    if not key.exists():
        netns.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", ns, "-f", str(key)])
    config = d / "sshd_config"
    # Hosts get a runtime directory of their own (systemd-logind's /run/user/UID on a real host):
    # rootless podman keeps its pause process and locks there, which must not be shared between hosts.
    extra = "" if ns == topo.BASTION_NS else f"SetEnv XDG_RUNTIME_DIR={topo.XDG_RUNTIME_DIR}\n"
    text = SSHD_CONFIG.format(ns=ns, dir=d, user=topo.DEPLOY_USER, extra=extra)
    if not config.exists() or config.read_text() != text:
        config.write_text(text)
    return config


def ensure(ns: str, data_dir: Path | None = None, timeout: float = 10.0) -> int | None:
    """Start the sshd of ns unless it runs; returns the new pid, or None if it was already running.

    data_dir, if given, is bind-mounted on /srv/rollout-sandbox in the sshd's mount namespace.
    """
    if pid(ns):
        return None
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    config = _prepare(ns)
    pid_file = _dir(ns) / "sshd.pid"
    pid_file.unlink(missing_ok=True)
    binds = [str(topo.ETC_DIR / "resolv.conf"), "/etc/resolv.conf", str(topo.ETC_DIR / "hosts"), "/etc/hosts"]
    if data_dir is not None:
        binds += [str(data_dir), str(topo.SRV_MOUNTPOINT)]
    argv = (
        netns.nsenter_net(ns)
        + ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", _BIND_AND_EXEC, "sh"]
        + binds
        + ["--", SSHD, "-f", str(config), "-E", str(_dir(ns) / "sshd.log")]
    )
    # sshd forks into the background and writes its pid file once it listens
    netns.run(argv, stdin=subprocess.DEVNULL)
    try:
        return poll(lambda: pid(ns), bool, timeout=timeout, interval=0.02, max_interval=0.2, what=f"sshd in {ns}")
    except WaitTimeout:
        pass
    log = _dir(ns) / "sshd.log"
    tail = log.read_text()[-2000:] if log.exists() else "(no log)"
    raise RuntimeError(f"sshd in {ns} did not start within {timeout}s; its log {log}:\n{tail}")


def remove_privsep_dir() -> None:
    shutil.rmtree(PRIVSEP_DIR, ignore_errors=True)
