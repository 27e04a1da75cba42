"""Bring the sandbox fleet up, describe it, take it down.

up() is idempotent and repairs: it creates what is missing and restarts what is
not running (namespaces, sshd, moto, AWS resources, apps, HAProxy), and leaves
alone what is there. Changing the host count adds or removes hosts in place
(namespaces, instances, LB registrations, HAProxy servers); the others are kept.

The root-namespace guard route `unreachable 198.18.0.0/15` is added by up() if
absent and removed by down() only if up() added it, like every other change to
the machine (deploy user, AWS profile sections, /srv/rollout-sandbox, /run/sshd):
state.json records what the sandbox created, and down() undoes exactly that.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import shlex
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rollout.adapters.waiting import WaitTimeout, poll
from sandbox import app, awsprofile, awsresources, console, container, endpoint, haproxy, motoserver, netns, origin, sshd
from sandbox import topology as topo

DEFAULT_HOSTS = 4
_POOL = 16
# Outside the state dir, which down() deletes; on tmpfs, left in place (an empty file).
LOCK_FILE = "/run/lock/rollout-sandbox.lock"


@contextlib.contextmanager
def _locked(timeout: float = 600.0):
    """Serialize up()/down() across processes (a test session and a shell, say)."""
    fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)

    def take() -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    try:
        try:
            poll(take, bool, timeout=timeout, interval=0.2, what=f"waiting for {LOCK_FILE}")
        except WaitTimeout:
            raise TimeoutError(f"another sandbox up()/down() holds {LOCK_FILE} for over {timeout}s") from None
        yield
    finally:
        os.close(fd)


def _load_state() -> dict:
    try:
        return json.loads(topo.STATE_FILE.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _save_state(state: dict) -> None:
    topo.STATE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = topo.STATE_FILE.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    tmp.replace(topo.STATE_FILE)


def _require_root() -> None:
    if os.geteuid() != 0:
        raise PermissionError("the sandbox needs root (namespaces, a system user, bind mounts): run it as root")


def _pmap(fn, items) -> list:
    with ThreadPoolExecutor(max_workers=_POOL) as pool:
        return list(pool.map(fn, items))


def _prepare_machine(state: dict) -> None:
    """Keys, deploy user, mount point, guard route, AWS profile; records in state what it created."""
    created = state.setdefault("created", {})
    topo.STATE_DIR.mkdir(parents=True, exist_ok=True)
    topo.STATE_DIR.chmod(0o755)  # the deploy user must reach hosts/ and origin.git
    sshd.ensure_deploy_key()
    created["deploy_user"] = sshd.ensure_deploy_user() or created.get("deploy_user", False)
    _save_state(state)
    if not topo.SRV_MOUNTPOINT.exists():
        topo.SRV_MOUNTPOINT.mkdir(parents=True)
        created["srv_mountpoint"] = True
    if not sshd.PRIVSEP_DIR.exists():
        sshd.PRIVSEP_DIR.mkdir(mode=0o755)
        created["privsep_dir"] = True
    created["guard_route"] = netns.add_guard_route() or created.get("guard_route", False)
    added = awsprofile.ensure_profile()
    prev = created.get("aws_profile", {})
    created["aws_profile"] = {k: added[k] or prev.get(k, False) for k in added}
    _save_state(state)


def _remove_surplus_hosts(wanted: list[topo.Host]) -> list[str]:
    names = {h.ns for h in wanted}
    surplus = [ns for ns in netns.ours() if ns != topo.BASTION_NS and ns not in names]
    for ns in surplus:
        netns.delete(ns)
    known = {h.name for h in wanted}
    for d in topo.HOSTS_DIR.glob("h*") if topo.HOSTS_DIR.exists() else []:
        if d.name not in known:
            shutil.rmtree(d, ignore_errors=True)
            shutil.rmtree(topo.SSHD_DIR / f"{topo.NS_PREFIX}{d.name}", ignore_errors=True)
    return surplus


def _host_dirs(host: topo.Host) -> None:
    pw = pwd.getpwnam(topo.DEPLOY_USER)
    for d in (host.data_dir.parent, host.data_dir, host.data_dir / "run", host.data_dir / "log"):
        d.mkdir(parents=True, exist_ok=True)
    for d in (host.data_dir, host.data_dir / "run", host.data_dir / "log"):
        os.chown(d, pw.pw_uid, pw.pw_gid)
    container.host_runtime_dir(host)


def _app_running(host: topo.Host) -> bool:
    p = netns.read_pid(host.app_pid_file)
    return bool(p) and netns.pid_in_ns(p, host.ns)


def _ensure_app(host: topo.Host, boot: bool = False) -> list[str]:
    """The app checked out (v1, the image's) and running; with `boot`, started by the boot script (user data)."""
    did = []
    if not (host.app_dir / ".git").exists():
        app.checkout(host.app_dir, topo.ORIGIN, "v1", owner=topo.DEPLOY_USER)
        did.append("checked out v1")
    if boot and not _app_running(host):
        host.app_pid_file.unlink(missing_ok=True)
        return did + [_boot(host), "started app"]  # the boot script started it; up() waits for its pid file
    if not _app_running(host):
        host.app_pid_file.unlink(missing_ok=True)
        argv = app.start_argv(
            app_dir=str(topo.APP_DIR), pid_file=str(topo.APP_PID_FILE), log_file=str(topo.APP_LOG_FILE),
            port=topo.APP_PORT, workers=topo.APP_WORKERS,
        )
        netns.run_in_host(host.name, argv, user=topo.DEPLOY_USER)
        did.append("started app")
    return did


BOOT_SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "boot" / "user-data.sh"
VERSION_PARAMETER = "/rollout/sandbox/version"  # inventories/sandbox-ec2.yml's desired_version.parameter


def _boot(host: topo.Host) -> str:
    """Run the boot script as EC2 would run the user data: as root, on the host, with AWS reachable; its last line."""
    start = ["runuser", "-u", topo.DEPLOY_USER, "--"] + app.start_argv(
        app_dir=str(topo.APP_DIR), pid_file=str(topo.APP_PID_FILE), log_file=str(topo.APP_LOG_FILE),
        port=topo.APP_PORT, workers=topo.APP_WORKERS)
    with endpoint.aws_endpoint(host.ns) as url:
        settings = {"ROLLOUT_PARAMETER": VERSION_PARAMETER, "APP_PATH": str(topo.APP_DIR), "APP_USER": topo.DEPLOY_USER,
                    "APP_START": shlex.join(start), "AWS_ENDPOINT_URL": url, "AWS_DEFAULT_REGION": awsprofile.REGION,
                    "AWS_ACCESS_KEY_ID": "sandbox", "AWS_SECRET_ACCESS_KEY": "sandbox",
                    "PATH": f"{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin"}  # the aws CLI
        done = netns.run_in_host(host.name, ["env", *[f"{k}={v}" for k, v in settings.items()], "sh", str(BOOT_SCRIPT)],
                                 check=False, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{host.name}: the boot script {BOOT_SCRIPT} failed ({done.returncode}): {done.stdout}{done.stderr}")
    return f"booted through {BOOT_SCRIPT.name}: " + "; ".join(done.stdout.strip().splitlines()[-2:])


def _wait_serving(hosts: list[topo.Host], timeout: float) -> None:
    """Wait until each host's app answers /health on its own loopback."""
    def pending() -> list[topo.Host]:
        probe = ["curl", "-sf", "-o", "/dev/null", "--max-time", "1", f"http://127.0.0.1:{topo.APP_PORT}/health"]
        return [h for h in hosts if netns.run_in_host(h.name, probe, check=False, timeout=10).returncode != 0]

    try:
        poll(pending, lambda left: not left, timeout=timeout, interval=0.1, max_interval=0.5, what="apps answering /health")
    except WaitTimeout as exc:
        raise RuntimeError(f"app not answering /health on {', '.join(h.name for h in exc.last)};"
                           f" see {topo.HOSTS_DIR}/hNNN/srv/log/app.log") from None


def _wait_app_pids(hosts: list[topo.Host], timeout: float) -> None:
    try:
        poll(lambda: [h for h in hosts if not _app_running(h)], lambda pending: not pending, timeout=timeout,
             interval=0.05, max_interval=0.5, what="waiting for the apps' pid files")
        return
    except WaitTimeout as exc:
        names = ", ".join(h.name for h in exc.last)
    raise RuntimeError(f"app did not write its pid file on {names}; see {topo.HOSTS_DIR}/hNNN/srv/log/app.log")


def _ensure_aws(hosts: list[topo.Host], personal: dict[str, topo.Host]) -> dict:
    started = motoserver.ensure_moto()
    resources = awsresources.ensure(hosts, personal)
    if started:
        resources["changes"].insert(0, f"started moto server pid {started} on {topo.MOTO_ENDPOINT} (log {topo.MOTO_LOG})")
    return resources


def up(hosts: int = DEFAULT_HOSTS, quiet: bool = False, personal: tuple[str, ...] = (), app: str = "git") -> dict:
    """Bring up (or repair, or resize to) a fleet of `hosts`; print what was done and return a summary.

    `personal` adds one host per developer, tagged Deployment=dev-USER, outside every
    balancer and the group (for personal branch deploys). `app="container"` adds the app
    as a podman container beside the git app on every shared host (registry, images,
    HAProxy front end :8081); once added it stays until down().
    """
    if app not in ("git", "container"):
        raise ValueError(f"app must be 'git' or 'container', got {app!r}")
    _require_root()
    with _locked():
        return _up(hosts, quiet, tuple(personal), app == "container")


def scale(add: int = 0, remove: int = 0, quiet: bool = False) -> dict:
    """Scale the running sandbox out or in as its Auto Scaling group would; a summary as up() returns.

    `add`: new hosts after the last one, each a new instance (new id) in a new namespace with
    new host keys, booted through examples/boot/user-data.sh (it checks out the desired version
    from SSM before the app starts), registered in the balancers and the group, and NOT written
    to ssh/known_hosts. An instance left stopped at one of their addresses is terminated first,
    so the new one reuses the address of a terminated instance. `remove`: the last hosts are
    deregistered and their instances terminated (their addresses free for the next ones).
    """
    if add < 0 or remove < 0 or (add > 0) == (remove > 0):
        raise ValueError("give --add=N or --remove=N (a positive number)")
    _require_root()
    with _locked():
        state = _load_state()
        count = state.get("hosts", 0)
        if not count or not motoserver.moto_listening():
            raise RuntimeError("the sandbox is not up: run fab sandbox.up first")
        if state.get("personal"):
            raise RuntimeError("scale a sandbox without personal hosts: they are numbered after the shared ones")
        with_container = bool(state.get("container"))
        if remove:
            if remove >= count:
                raise ValueError(f"the sandbox has {count} hosts: remove fewer")
            gone = [h.name for h in topo.hosts(count)[count - remove:]]
            summary = _up(count - remove, quiet, (), with_container)
            summary["terminated"] = awsresources.terminate(gone)
            return summary
        new = topo.hosts(count + add)[count:]
        awsresources.terminate([h.name for h in new])  # instances a shrink left stopped there
        for h in new:  # a new instance: a fresh disk and new host keys
            shutil.rmtree(topo.HOSTS_DIR / h.name, ignore_errors=True)
            shutil.rmtree(topo.SSHD_DIR / h.ns, ignore_errors=True)
        reused = awsresources.terminated_at([h.address for h in new])
        summary = _up(count + add, quiet, (), with_container, boot=frozenset(h.name for h in new))
        summary["reused_addresses"] = {h.name: {"address": h.address, "terminated": reused[h.address]}
                                       for h in new if h.address in reused}
        return summary


def _up(hosts: int, quiet: bool, personal: tuple[str, ...] = (), with_container: bool = False,
        boot: frozenset[str] = frozenset()) -> dict:
    t0 = time.monotonic()
    shared = topo.hosts(hosts)
    owners = topo.personal_hosts(hosts, list(personal))
    wanted = shared + list(owners.values())
    log: list[str] = []
    say = (lambda msg: None) if quiet else (lambda msg: print(f"sandbox: {msg}", flush=True))

    state = _load_state()
    with_container = with_container or bool(state.get("container"))
    _prepare_machine(state)
    refs = origin.ensure_origin(topo.ORIGIN)

    with ThreadPoolExecutor(max_workers=1) as bg:
        aws_done = bg.submit(_ensure_aws, shared, owners)  # moto boots and fills while the network comes up

        if removed := _remove_surplus_hosts(wanted):
            log.append(f"removed {len(removed)} hosts: {', '.join(removed)}")
        if netns.ensure_bastion():
            log.append(f"created namespace {topo.BASTION_NS} ({topo.BASTION_ADDR}, bridge {topo.BRIDGE_ADDR})")
        ports = netns.bridge_ports()
        if made := [h.name for h, did in zip(wanted, _pmap(lambda h: netns.ensure_host(h, ports), wanted)) if did]:
            log.append(f"created {len(made)} host namespaces: {_span(made)}")

        sshd.write_etc([(h.name, h.address) for h in wanted])
        _pmap(_host_dirs, wanted)
        started = []
        if p := sshd.ensure(topo.BASTION_NS):
            started.append(f"{topo.BASTION_NS}={p}")
        started += [f"{h.ns}={p}" for h, p in zip(wanted, _pmap(lambda h: sshd.ensure(h.ns, h.data_dir), wanted)) if p]
        if started:
            log.append(f"started {len(started)} sshd: " + ", ".join(started[:4]) + (" ..." if len(started) > 4 else ""))
        # Hosts booted by scale() stay out: like new Auto Scaling instances, nobody edited known_hosts for them.
        sshd.write_known_hosts([(topo.BASTION_NS, topo.BASTION_ADDR)] + [(h.ns, h.address) for h in wanted if h.name not in boot])
        sshd.write_ssh_config()

        if boot:
            aws_done.result()  # the instances exist, and SSM answers, before they boot
        app_did = _pmap(lambda h: _ensure_app(h, h.name in boot), wanted)
        if restarted := [h.name for h, did in zip(wanted, app_did) if "started app" in did]:
            log.append(f"started app on {len(restarted)} hosts: {_span(restarted)}")
        log += [f"{h.name}: {line}" for h, did in zip(wanted, app_did) for line in did if line.startswith("booted")]

        if with_container:
            log += _ensure_containers(shared)

        resources = aws_done.result()
    log += resources["changes"]
    booted = [name for name, ns, iid in [("bastion", topo.BASTION_NS, resources["bastion_instance_id"])]
              + [(h.name, h.ns, resources["instance_ids"][h.name]) for h in wanted]
              if console.boot(iid, topo.SSHD_DIR / ns, name)]
    if booted:
        log.append(f"console output with host keys for {len(booted)} instances: {_span(booted)}")

    ha = haproxy.ensure(shared, container=with_container)
    if ha != "unchanged":
        log.append(f"{ha} HAProxy pid {haproxy.pid()}: front end {topo.BASTION_ADDR}:{topo.HAPROXY_FRONTEND_PORT}")
    wait = 30 + 0.5 * len(wanted)
    if restarted:
        _wait_app_pids([h for h in wanted if h.name in restarted], wait)
    haproxy.wait_up([h.name for h in shared], timeout=wait)
    if with_container:
        haproxy.wait_up([h.name for h in shared], timeout=wait, backend=haproxy.CONTAINER_BACKEND)
    _wait_serving(list(owners.values()), wait)  # personal hosts are in no balancer: ask them directly

    state.update(
        container=with_container,
        hosts=len(shared),
        personal={user: h.name for user, h in owners.items()},
        names=[h.name for h in wanted],
        addresses={"bastion": topo.BASTION_ADDR, **{h.name: h.address for h in wanted}},
        instance_ids=resources["instance_ids"],
        bastion_instance_id=resources["bastion_instance_id"],
        origin=refs,
        pids=_pids(wanted),
    )
    _save_state(state)
    seconds = round(time.monotonic() - t0, 2)
    for line in log:
        say(line)
    say(
        f"up: {len(wanted)} hosts in {seconds}s; ssh deploy@{topo.BASTION_ADDR} -i {topo.DEPLOY_KEY} "
        f"(known_hosts {topo.KNOWN_HOSTS}), HAProxy http://{topo.BASTION_ADDR}:{topo.HAPROXY_FRONTEND_PORT}/, "
        f"moto {topo.MOTO_ENDPOINT} (profile {awsprofile.PROFILE})"
    )
    return {
        "hosts": len(shared),
        "personal": {user: h.name for user, h in owners.items()},
        "bastion": topo.BASTION_ADDR,
        "addresses": {h.name: h.address for h in wanted},
        "instance_ids": resources["instance_ids"],
        "bastion_instance_id": resources["bastion_instance_id"],
        "origin": refs,
        "changes": log,
        "seconds": seconds,
    }


def _ensure_containers(hosts: list[topo.Host]) -> list[str]:
    """Registry, images and a running app container (v1) on each host; what was done."""
    did = []
    if container.configure_podman():
        did.append("configured rootless podman for the deploy user")
    if p := container.ensure_registry():
        did.append(f"started docker-registry pid {p} on {container.REGISTRY_URL}")
    digests, built = container.ensure_images()
    if built:
        did.append("built and pushed " + ", ".join(f"rollout-app:{t} ({d[7:19]})" for t, d in digests.items()))
    _pmap(container.route_to_registry, hosts)
    started = [h.name for h, new in zip(hosts, _pmap(lambda h: container.ensure_container(h, digests["v1"]), hosts)) if new]
    if started:
        did.append(f"started the app container (v1) on {len(started)} hosts: {_span(started)}")
    return did


def _span(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{names[0]}..{names[-1]}"


def _pids(hosts: list[topo.Host]) -> dict:
    return {
        "sshd": {ns: sshd.pid(ns) for ns in [topo.BASTION_NS] + [h.ns for h in hosts]},
        "app": {h.name: netns.read_pid(h.app_pid_file) for h in hosts},
        "haproxy": haproxy.pid(),
        "moto": motoserver.moto_pid(),
    }


def describe() -> dict:
    """What of the sandbox is present and running now, as data (pids are None when not running)."""
    state = _load_state()
    count = state.get("hosts", 0)
    hosts = topo.hosts(count) if count else []
    return {
        "state_dir": topo.STATE_DIR.exists(),
        "hosts": count,
        "namespaces": netns.ours(),
        "guard_route": netns.guard_route_present(),
        "moto_listening": motoserver.moto_listening(),
        "pids": _pids(hosts),
        "instance_ids": state.get("instance_ids", {}),
        "created": state.get("created", {}),
    }


def down(quiet: bool = False) -> dict:
    """Remove everything up() created: processes, namespaces, routes, files, deploy user, profile sections."""
    _require_root()
    with _locked():
        return _down(quiet)


def _down(quiet: bool) -> dict:
    t0 = time.monotonic()
    state = _load_state()
    created = state.get("created", {})
    names = netns.ours()
    hosts_first = sorted(names, key=lambda ns: ns == topo.BASTION_NS)
    killed = netns.kill_in(names)
    for ns in hosts_first:
        netns.delete(ns)
    netns.run(["ip", "link", "del", topo.ROOT_VETH], check=False)
    motoserver.stop_moto()
    if created.get("guard_route"):
        netns.remove_guard_route()
    if created.get("srv_mountpoint"):
        try:
            topo.SRV_MOUNTPOINT.rmdir()
        except OSError as e:
            print(f"sandbox: could not remove {topo.SRV_MOUNTPOINT}: {e}", flush=True)
    if created.get("privsep_dir"):
        sshd.remove_privsep_dir()
    awsprofile.remove_profile(created.get("aws_profile", {}))
    if created.get("deploy_user"):
        try:
            uid = pwd.getpwnam(topo.DEPLOY_USER).pw_uid
            netns.kill_pids([int(p) for p in _pids_of_uid(uid)])
        except KeyError:
            pass
        sshd.remove_deploy_user()
    elif topo.DEPLOY_KEY.exists():
        sshd.remove_deploy_key_from_user()
        if state.get("container"):
            container.remove_podman_config()
    shutil.rmtree(topo.STATE_DIR, ignore_errors=True)
    seconds = round(time.monotonic() - t0, 2)
    if not quiet:
        print(f"sandbox: down: removed {len(names)} namespaces, {killed} processes in {seconds}s", flush=True)
    return {"namespaces": names, "processes": killed, "seconds": seconds}


def _pids_of_uid(uid: int) -> list[str]:
    out = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if os.stat(entry.path).st_uid == uid:
                    out.append(entry.name)
            except FileNotFoundError:
                pass
    return out
