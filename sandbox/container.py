"""The example app as a container image: built locally, served by a registry in the bastion, run by podman.

Nothing is fetched from the internet. The base image is a root filesystem holding this
machine's node binary and the libraries `ldd` lists; each app image adds the example
app's files at one ref of the sandbox origin (v1, v2, broken). Images are built by root
in a storage of the sandbox's own and pushed to Debian's `docker-registry`, which runs in
the bastion namespace at 198.18.0.10:5000. Hosts run rootless podman as the deploy user,
configured in its ~/.config/containers (runc, cgroupfs, limits root may set here).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from rollout.adapters import registry
from rollout.adapters.waiting import WaitTimeout, poll
from rollout.apps import container as containerapp
from rollout.core.errors import RefError
from sandbox import netns
from sandbox import topology as topo

BUILD_DIR = topo.STATE_DIR / "podman-build"
REGISTRY_CONFIG = topo.REGISTRY_DIR / "config.yml"
REGISTRY_PID = topo.REGISTRY_DIR / "registry.pid"
REGISTRY_LOG = topo.REGISTRY_DIR / "registry.log"
REGISTRY_URL = f"http://{topo.BASTION_ADDR}:{topo.REGISTRY_PORT}"
TAGS = ("v1", "v2", "broken")

CONTAINERS_CONF = """\
# Written by the rollout sandbox. runc (crun fails on this machine's cgroups), cgroupfs
# (no systemd), and limits an unprivileged root may set (podman's defaults fail here).
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""
# /srv/rollout-sandbox is each host's own directory: every host gets its own image store.
STORAGE_CONF = f"""\
# Written by the rollout sandbox.
[storage]
driver = "vfs"
graphroot = "{topo.SRV_MOUNTPOINT}/containers/storage"
runroot = "{topo.SRV_MOUNTPOINT}/containers/run"
"""
REGISTRIES_CONF = f"""\
# Written by the rollout sandbox: its registry speaks plain HTTP.
unqualified-search-registries = []
[[registry]]
location = "{topo.BASTION_ADDR}:{topo.REGISTRY_PORT}"
insecure = true
"""
REGISTRY_YML = f"""\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {topo.REGISTRY_DIR}/data
  delete:
    enabled: true
http:
  addr: 0.0.0.0:{topo.REGISTRY_PORT}
"""
CONTAINERFILE = """\
FROM localhost/rollout-base:latest
COPY app/ /app/
WORKDIR /app
CMD ["/usr/bin/node", "/app/server.js"]
"""


def _user_config_dir() -> Path:
    return Path(pwd.getpwnam(topo.DEPLOY_USER).pw_dir) / ".config" / "containers"


def configure_podman() -> bool:
    """Write the deploy user's podman configuration; True if a file changed."""
    d = _user_config_dir()
    pw = pwd.getpwnam(topo.DEPLOY_USER)
    changed = False
    for path in (d.parent, d):
        path.mkdir(exist_ok=True)
        os.chown(path, pw.pw_uid, pw.pw_gid)
    for name, text in (("containers.conf", CONTAINERS_CONF), ("storage.conf", STORAGE_CONF), ("registries.conf", REGISTRIES_CONF)):
        f = d / name
        if not f.exists() or f.read_text() != text:
            f.write_text(text)
            os.chown(f, pw.pw_uid, pw.pw_gid)
            changed = True
    return changed


def remove_podman_config() -> None:
    try:
        shutil.rmtree(_user_config_dir(), ignore_errors=True)
    except KeyError:
        pass


# -- the registry ----------------------------------------------------------------
def registry_pid() -> int | None:
    p = netns.read_pid(REGISTRY_PID)
    return p if p and netns.pid_in_ns(p, topo.BASTION_NS) else None


def _registry_answers() -> bool:
    try:
        with urllib.request.urlopen(f"{REGISTRY_URL}/v2/", timeout=1) as resp:
            return resp.status == 200
    except (OSError, urllib.error.URLError):
        return False


def ensure_registry() -> int | None:
    """Run docker-registry in the bastion unless it runs; the new pid, or None if it was running."""
    if registry_pid():
        return None
    topo.REGISTRY_DIR.mkdir(parents=True, exist_ok=True)
    REGISTRY_CONFIG.write_text(REGISTRY_YML)
    argv = netns.nsenter_net(topo.BASTION_NS) + ["setsid", "-f", "sh", "-c",
                                                 'echo $$ > "$1"; exec docker-registry serve "$2" >>"$3" 2>&1 </dev/null',
                                                 "sh", str(REGISTRY_PID), str(REGISTRY_CONFIG), str(REGISTRY_LOG)]
    netns.run(argv)
    try:
        poll(_registry_answers, bool, timeout=15, interval=0.05, max_interval=0.5, what="the sandbox registry")
    except WaitTimeout:
        tail = REGISTRY_LOG.read_text()[-1500:] if REGISTRY_LOG.exists() else "(no log)"
        raise RuntimeError(f"docker-registry did not answer on {REGISTRY_URL} within 15s; its log {REGISTRY_LOG}:\n{tail}") from None
    return registry_pid()


def stop_registry() -> None:
    """Stop the registry (tests use this to make it unreachable); ensure_registry() brings it back."""
    p = registry_pid()
    if p:
        netns.kill_pids([p])
    poll(lambda: registry_pid() is None and not _registry_answers(), bool, timeout=10, interval=0.05,
         what="the registry to stop")


def digest(tag: str) -> str | None:
    """The digest the sandbox registry serves for rollout-app:TAG, or None if it has no such tag."""
    try:
        return registry.resolve(topo.IMAGE, tag, insecure=True, timeout=5)
    except RefError:
        return None


# -- building images ---------------------------------------------------------------
def _podman(*args: str, timeout: float = 300) -> str:
    """Root podman on the sandbox's own build storage (never the machine's)."""
    env = {**os.environ, "CONTAINERS_CONF": str(BUILD_DIR / "containers.conf"),
           "CONTAINERS_REGISTRIES_CONF": str(BUILD_DIR / "registries.conf")}
    argv = ["podman", "--root", str(BUILD_DIR / "storage"), "--runroot", str(BUILD_DIR / "run"),
            "--storage-driver", "vfs", *args]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args[:2])} failed: {done.stderr.strip()[-1500:]}")
    return done.stdout.strip()


def _node_rootfs(tar_path: Path) -> None:
    """A tarball of / for the base image: node, the libraries it links, /tmp."""
    node = Path(shutil.which("node") or "/usr/bin/node").resolve()
    out = subprocess.run(["ldd", str(node)], capture_output=True, text=True, check=True).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        if "=>" in parts and len(parts) > parts.index("=>") + 1 and parts[parts.index("=>") + 1].startswith("/"):
            libs.append(Path(parts[parts.index("=>") + 1]))
        elif parts and parts[0].startswith("/"):
            libs.append(Path(parts[0]))
    with tarfile.open(tar_path, "w") as tar:
        def add_dir(name: str, mode: int = 0o755) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)

        for d in ("usr", "usr/bin", "lib", "lib64", "lib/x86_64-linux-gnu", "app"):
            add_dir(d)
        add_dir("tmp", 0o1777)
        tar.add(node, arcname="usr/bin/node", filter=_root_owned)
        for lib in libs:
            tar.add(lib.resolve(), arcname=str(lib).lstrip("/"), filter=_root_owned)


def _root_owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _existing_digests() -> dict[str, str] | None:
    found = {t: digest(t) for t in TAGS}
    return found if all(found.values()) else None


def ensure_images() -> tuple[dict[str, str], bool]:
    """Build and push rollout-app:v1, :v2 and :broken unless the registry has them; ({tag: digest}, built)."""
    if found := _existing_digests():
        return found, False
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    (BUILD_DIR / "containers.conf").write_text(CONTAINERS_CONF)
    (BUILD_DIR / "registries.conf").write_text(REGISTRIES_CONF)
    with tempfile.TemporaryDirectory(prefix="rollout-image-") as tmp:
        base = Path(tmp) / "base.tar"
        _node_rootfs(base)
        _podman("import", "--change", 'CMD=["/usr/bin/node","--version"]', str(base), "localhost/rollout-base:latest")
        for tag in TAGS:
            ctx = Path(tmp) / tag
            (ctx / "app").mkdir(parents=True)
            archive = subprocess.run(["git", "--git-dir", str(topo.ORIGIN), "archive", tag], capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(ctx / "app")], input=archive, check=True)
            (ctx / "Containerfile").write_text(CONTAINERFILE)
            _podman("build", "-q", "--label", f"org.opencontainers.image.version={tag}", "-t", f"localhost/rollout-app:{tag}", str(ctx))
            _podman("push", "-q", "--tls-verify=false", f"localhost/rollout-app:{tag}", f"{topo.IMAGE}:{tag}")
    found = _existing_digests()
    if not found:
        raise RuntimeError(f"pushed the sandbox images but {REGISTRY_URL} does not list them all")
    shutil.rmtree(BUILD_DIR, ignore_errors=True)  # the registry holds them now
    return found, True


# -- on each host ------------------------------------------------------------------
def spec(digest_env: str = "APP_VERSION") -> containerapp.Spec:
    """How the sandbox runs the app container: the settings of inventories/sandbox-container.yml."""
    return containerapp.Spec(
        cli="podman", image=topo.IMAGE, registry=f"{topo.BASTION_ADDR}:{topo.REGISTRY_PORT}", name=topo.CONTAINER_NAME,
        env={"PORT": str(topo.CONTAINER_PORT), "WORKERS": str(topo.APP_WORKERS)},
        volumes=(f"{topo.SRV_MOUNTPOINT}/log:/var/log/app",), options=("--network=host",), stop_timeout=10,
        digest_env=digest_env,
    )


def host_runtime_dir(host: topo.Host) -> None:
    pw = pwd.getpwnam(topo.DEPLOY_USER)
    host.runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chown(host.runtime_dir, pw.pw_uid, pw.pw_gid)


def route_to_registry(host: topo.Host) -> None:
    """Hosts reach the bastion's outer address (the registry) through the bridge, as in a VPC."""
    netns.run(netns.nsenter_net(host.ns) + ["ip", "route", "replace", f"{topo.BASTION_ADDR}/32", "via", topo.BRIDGE_ADDR])


def as_deploy(host: topo.Host, script: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a shell script (on stdin) on `host` as the deploy user, as its SSH sessions would."""
    argv = netns.in_host_argv(host.name, ["env", f"XDG_RUNTIME_DIR={topo.XDG_RUNTIME_DIR}", "sh", "-s"], user=topo.DEPLOY_USER)
    home = pwd.getpwnam(topo.DEPLOY_USER).pw_dir
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": home,
           "USER": topo.DEPLOY_USER, "LOGNAME": topo.DEPLOY_USER}
    return subprocess.run(argv, input=script, capture_output=True, text=True, timeout=timeout, env=env, cwd="/", check=False)


def _running(host: topo.Host) -> containerapp.Running:
    out = as_deploy(host, containerapp.version_script(spec()), timeout=60)
    return containerapp.parse_running(out.stdout) if out.returncode == 0 else containerapp.Running(present=False)


def running_digest(host: topo.Host) -> str | None:
    return containerapp.current_digest(_running(host), topo.IMAGE)


def container_running(host: topo.Host) -> bool:
    return _running(host).status == "running"


def ensure_container(host: topo.Host, digest_v1: str) -> bool:
    """Start the app container at v1 unless one runs; True if it started one."""
    if container_running(host):
        return False
    out = as_deploy(host, containerapp.update_script(spec(), digest_v1), timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"could not start the app container on {host.name}: {out.stderr.strip()[-1500:]}")
    return True

