"""Names, addresses and paths of the sandbox fleet: pure data, no side effects.

Address plan (198.18.0.0/15, RFC 2544 benchmarking range, used only inside
the sandbox's network namespaces):

- 198.18.0.8/29: veth link root <-> bastion; controller 198.18.0.9, bastion 198.18.0.10.
- 198.18.1.0/24: bridge br0 in the bastion (198.18.1.1); host i is 198.18.1.(10+i).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

STATE_DIR = Path("/var/tmp/rollout-sandbox")
SSH_DIR = STATE_DIR / "ssh"
DEPLOY_KEY = SSH_DIR / "id_ed25519"
KNOWN_HOSTS = SSH_DIR / "known_hosts"
SSHD_DIR = STATE_DIR / "sshd"
HOSTS_DIR = STATE_DIR / "hosts"
HAPROXY_DIR = STATE_DIR / "haproxy"
HAPROXY_ADMIN_SOCK = HAPROXY_DIR / "admin.sock"
ETC_DIR = STATE_DIR / "etc"
ORIGIN = STATE_DIR / "origin.git"
STATE_FILE = STATE_DIR / "state.json"
MOTO_LOG = STATE_DIR / "moto.log"
MOTO_PID = STATE_DIR / "moto.pid"
# Every request moto serves, one JSON object a line (moto's own recorder; tests/test_aws_operations.py reads it).
MOTO_RECORDING = STATE_DIR / "aws-requests.jsonl"
CONSOLE_DIR = STATE_DIR / "console"  # each instance's EC2 console output, by instance id (sandbox/awsgate.py)

SRV_MOUNTPOINT = Path("/srv/rollout-sandbox")
APP_DIR = SRV_MOUNTPOINT / "app"
APP_PID_FILE = SRV_MOUNTPOINT / "run" / "app.pid"
APP_LOG_FILE = SRV_MOUNTPOINT / "log" / "app.log"
XDG_RUNTIME_DIR = SRV_MOUNTPOINT / "run" / "user"

# The app as a container (fab sandbox.up --app=container), beside the git app on every host.
REGISTRY_DIR = STATE_DIR / "registry"
REGISTRY_PORT = 5000
IMAGE = f"198.18.0.10:{REGISTRY_PORT}/rollout-app"
CONTAINER_NAME = "app"
CONTAINER_PORT = 14100
HAPROXY_CONTAINER_PORT = 8081

DEPLOY_USER = "deploy"
APP_PORT = 14000
APP_WORKERS = 2

SANDBOX_RANGE = ipaddress.ip_network("198.18.0.0/15")
LINK_NET = ipaddress.ip_network("198.18.0.8/29")
CONTROLLER_ADDR = "198.18.0.9"
BASTION_ADDR = "198.18.0.10"
BRIDGE_NET = ipaddress.ip_network("198.18.1.0/24")
BRIDGE_ADDR = "198.18.1.1"
HAPROXY_FRONTEND_PORT = 8080
HAPROXY_RUNTIME_API = ("127.0.0.1", 9999)
MOTO_HOST = "127.0.0.1"
MOTO_PORT = 5055
MOTO_ENDPOINT = f"http://{MOTO_HOST}:{MOTO_PORT}"

NS_PREFIX = "rollout-"
BASTION_NS = "rollout-bastion"
ROOT_VETH = "rollout-bst"  # root side of the root <-> bastion link
MAX_HOSTS = 100  # host addresses .11-.110 stay inside moto's reserved /25 (see awsresources.py)


@dataclass(frozen=True)
class Host:
    """One fleet host: namespace, address and data directory."""

    index: int  # 1-based

    @property
    def name(self) -> str:
        return f"h{self.index:03d}"

    @property
    def ns(self) -> str:
        return f"{NS_PREFIX}{self.name}"

    @property
    def address(self) -> str:
        return str(BRIDGE_NET.network_address + 10 + self.index)

    @property
    def bridge_port(self) -> str:
        """Name of the host's veth end in the bastion, attached to br0."""
        return f"v{self.name}"

    @property
    def data_dir(self) -> Path:
        """Host-side path of what the host sees as /srv/rollout-sandbox."""
        return HOSTS_DIR / self.name / "srv"

    @property
    def app_dir(self) -> Path:
        return self.data_dir / "app"

    @property
    def runtime_dir(self) -> Path:
        """Host-side path of the host's XDG_RUNTIME_DIR."""
        return self.data_dir / "run" / "user"

    @property
    def app_pid_file(self) -> Path:
        return self.data_dir / "run" / "app.pid"


def hosts(count: int) -> list[Host]:
    """The hosts of a fleet of `count`, in order."""
    if not 1 <= count <= MAX_HOSTS:
        raise ValueError(f"hosts must be between 1 and {MAX_HOSTS}, got {count}")
    return [Host(i) for i in range(1, count + 1)]


def personal_hosts(count: int, users: list[str]) -> dict[str, Host]:
    """One host per developer, numbered after the `count` shared hosts."""
    if count + len(users) > MAX_HOSTS:
        raise ValueError(f"{count} hosts plus {len(users)} personal ones exceed {MAX_HOSTS}")
    return {user: Host(count + i + 1) for i, user in enumerate(users)}


def host_by_name(name: str) -> Host:
    """The Host named `name` ("h007") or with namespace `name` ("rollout-h007")."""
    short = name.removeprefix(NS_PREFIX)
    if len(short) != 4 or short[0] != "h" or not short[1:].isdigit():
        raise ValueError(f"not a sandbox host name: {name!r} (expected hNNN)")
    return Host(int(short[1:]))


def namespaces(count: int) -> list[str]:
    """All namespace names of a fleet of `count`, bastion first."""
    return [BASTION_NS] + [h.ns for h in hosts(count)]
