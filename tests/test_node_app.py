"""The example Node app, its git origin and checkout, run locally on 127.0.0.1."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.fleetctl import wait_until
from tests.instruments.load import LoadGenerator

from sandbox.app import checkout, start_argv, stop_argv
from sandbox.origin import add_commit, ensure_origin, git

NODE = "/usr/bin/node"
WORKERS = 2


def wait_for(pred, timeout: float, what: str, interval: float = 0.01):
    return wait_until(pred, timeout, what, interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str) -> tuple[int, dict[str, str], str]:
    """One GET on a fresh connection to 127.0.0.1:port."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read().decode()
    finally:
        conn.close()


def try_get(port: int, path: str):
    try:
        return get(port, path)
    except OSError:
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has exited for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


class App:
    """A locally started primary (server.js) in its own session."""

    def __init__(self, app_dir: Path, run_dir: Path, **extra_env: str) -> None:
        self.dir, self.port = app_dir, free_port()
        self.pid_file = run_dir / "app.pid"
        self.out, self.err = run_dir / "out.log", run_dir / "err.log"
        env = {"PATH": "/usr/bin:/bin", "PORT": str(self.port), "HOST": "127.0.0.1",
               "WORKERS": str(WORKERS), "PID_FILE": str(self.pid_file), **extra_env}
        with open(self.out, "ab") as out, open(self.err, "ab") as err:
            self.proc = subprocess.Popen([NODE, "server.js"], cwd=app_dir, env=env, stdout=out,
                                         stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid = self.proc.pid
        self.seen_workers: set[int] = set()

    def workers(self) -> set[int]:
        """Pids of the primary's live children."""
        r = subprocess.run(["pgrep", "-P", str(self.pid)], capture_output=True, text=True, timeout=5)
        pids = {int(p) for p in r.stdout.split()}
        self.seen_workers |= pids
        return {p for p in pids if pid_alive(p)}

    def log(self) -> str:
        return self.out.read_text() + self.err.read_text()

    def wait_ready(self) -> set[int]:
        """Wait until WORKERS workers listen; return their pids."""
        wait_for(lambda: self.log().count("listening after") >= WORKERS, 10, "workers to listen")
        wait_for(lambda: (try_get(self.port, "/health") or (0,))[0] == 200, 10, "/health")
        return wait_for(lambda: len(w := self.workers()) == WORKERS and w, 10, f"{WORKERS} workers")

    def hup(self) -> None:
        os.kill(self.pid, signal.SIGHUP)

    def replace_all(self, timeout: float = 15) -> tuple[set[int], float]:
        """SIGHUP and wait until every worker is new; return the new pids and the seconds taken."""
        before = self.workers()
        t0 = time.monotonic()
        self.hup()
        after = wait_for(lambda: len(w := self.workers()) == WORKERS and not (w & before) and w,
                         timeout, "all workers replaced")
        return after, time.monotonic() - t0

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(5)
        for p in self.seen_workers:
            if pid_alive(p):
                os.kill(p, signal.SIGKILL)


@pytest.fixture(scope="module")
def origin(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("origin") / "origin.git"
    return path, ensure_origin(path)


@pytest.fixture
def app(origin, tmp_path, request) -> App:
    """The app at v1, started from a fresh checkout, with WORKERS workers listening."""
    origin_path, refs = origin
    assert checkout(tmp_path / "app", origin_path, "v1", owner=None) == refs["v1"]
    a = App(tmp_path / "app", tmp_path)
    request.addfinalizer(a.cleanup)
    a.wait_ready()
    return a


def load(port: int, duration: float = 3.0) -> LoadGenerator:
    return LoadGenerator(f"http://127.0.0.1:{port}/version", duration).start()


def assert_clean(result, min_rate: float = 500) -> None:
    assert result.failures == 0, result.summary()
    assert result.keepalive_requests and result.fresh_requests, result.summary()
    assert result.rate >= min_rate, result.summary()


def test_origin_is_idempotent_and_readable(origin):
    path, refs = origin
    assert set(refs) == {"v1", "v2", "broken"} and len(set(refs.values())) == 3
    mtime = (path / "packed-refs").stat().st_mtime_ns if (path / "packed-refs").exists() else None
    assert ensure_origin(path) == refs
    if mtime is not None:
        assert (path / "packed-refs").stat().st_mtime_ns == mtime
    assert git("--git-dir", path, "merge-base", "--is-ancestor", refs["v1"], refs["v2"]) == ""
    assert "throw new Error" in git("--git-dir", path, "show", f"{refs['broken']}:worker.js")
    for d, _, files in os.walk(path):
        for f in files:
            assert os.stat(os.path.join(d, f)).st_mode & stat.S_IROTH, f


def test_add_commit_advances_main(origin, tmp_path):
    path, refs = origin
    sha = add_commit(path, "v3: test commit", worker_patch=lambda s: s + "// v3\n")
    assert git("--git-dir", path, "rev-parse", "main") == sha
    assert git("--git-dir", path, "merge-base", "--is-ancestor", refs["v2"], sha) == ""
    assert checkout(tmp_path / "app", path, sha, owner=None) == sha
    assert (tmp_path / "app" / "worker.js").read_text().endswith("// v3\n")
    assert checkout(tmp_path / "app", path, "v1", owner=None) == refs["v1"]
    assert not (tmp_path / "app" / "RELEASE").exists()


def test_version_health_and_pid_file(app, origin):
    _, refs = origin
    assert app.pid_file.read_text().strip() == str(app.pid)
    status, headers, body = get(app.port, "/version")
    assert (status, body) == (200, refs["v1"] + "\n")
    assert headers["X-Version"] == refs["v1"]
    assert int(headers["X-Worker-Pid"]) in app.workers()
    assert get(app.port, "/health")[::2] == (200, "ok\n")
    assert get(app.port, "/nope")[0] == 404
    assert get(app.port, "/sleep?ms=50")[0] == 200


def test_sighup_idle_replaces_every_worker(app):
    before = app.workers()
    after, took = app.replace_all()
    assert len(after) == WORKERS and not after & before
    assert get(app.port, "/health")[0] == 200
    print(f"idle roll: all {WORKERS} workers replaced in {took * 1000:.0f} ms")


def test_sighup_under_load_loses_nothing(app):
    before = app.workers()
    gen = load(app.port)
    wait_for(lambda: gen.elapsed() > 0.5, 5, "load to warm up")
    after, took = app.replace_all()
    result = gen.wait()
    assert not after & before
    assert_clean(result)
    assert result.elapsed >= 2.5  # the load covered the roll
    print(f"loaded roll: replaced in {took * 1000:.0f} ms; {result.summary()}")


def test_roll_drains_in_flight_requests(app):
    conns = [http.client.HTTPConnection("127.0.0.1", app.port, timeout=10) for _ in range(2 * WORKERS)]
    try:
        for c in conns:  # fresh connections spread over both workers (round-robin)
            c.request("GET", "/sleep?ms=1500")
        app.replace_all()
        headers = []
        for c in conns:
            r = c.getresponse()
            assert (r.status, r.read()) == (200, b"slept 1500\n")
            headers.append(r.getheader("Connection"))
        # The first worker retired drains its requests, closing their connections after;
        # the second is retired after its requests have finished.
        assert "close" in headers, headers
    finally:
        for c in conns:
            c.close()


def test_deploy_v2_under_load(app, origin):
    origin_path, refs = origin
    assert checkout(app.dir, origin_path, "v2", owner=None) == refs["v2"]
    gen = load(app.port)
    wait_for(lambda: gen.elapsed() > 0.5, 5, "load to warm up")
    app.replace_all()
    result = gen.wait()
    assert_clean(result)
    assert set(result.versions) == {refs["v1"], refs["v2"]}, result.summary()
    assert result.version_last_seen[refs["v1"]] < result.version_last_seen[refs["v2"]]
    for _ in range(2 * WORKERS):
        assert get(app.port, "/version")[2] == refs["v2"] + "\n"


def test_broken_deploy_keeps_old_workers(app, origin):
    origin_path, refs = origin
    checkout(app.dir, origin_path, "v2", owner=None)
    workers, _ = app.replace_all()
    assert checkout(app.dir, origin_path, "broken", owner=None) == refs["broken"]
    gen = load(app.port)
    wait_for(lambda: gen.elapsed() > 0.5, 5, "load to warm up")
    app.hup()
    wait_for(lambda: "roll aborted" in app.err.read_text(), 15, "the roll to abort")
    result = gen.wait()
    assert "failed to start" in app.err.read_text()
    assert app.workers() == workers
    assert_clean(result)
    assert set(result.versions) == {refs["v2"]}, result.summary()
    assert get(app.port, "/version")[2] == refs["v2"] + "\n"
    assert app.proc.poll() is None


def test_worker_that_never_listens_aborts_the_roll(origin, tmp_path, request):
    origin_path, refs = origin
    checkout(tmp_path / "app", origin_path, "v2", owner=None)
    a = App(tmp_path / "app", tmp_path, LISTEN_TIMEOUT_MS="1000")
    request.addfinalizer(a.cleanup)
    workers = a.wait_ready()
    hang = add_commit(origin_path, "hangs: never listens",
                      worker_patch=lambda s: s.replace("server.listen(PORT, HOST);", "setInterval(() => {}, 1000);"))
    checkout(a.dir, origin_path, hang, owner=None)
    a.hup()
    wait_for(lambda: "roll aborted" in a.err.read_text(), 10, "the roll to abort")
    assert "not listening after 1000 ms" in a.err.read_text()
    assert a.workers() == workers
    assert get(a.port, "/version")[2] == refs["v2"] + "\n"


def test_sighup_during_roll_queues_exactly_one_more(app):
    before = app.workers()
    app.hup()
    wait_for(lambda: "roll started" in app.out.read_text(), 5, "the roll to start")
    app.hup()
    wait_for(lambda: "SIGHUP during roll" in app.out.read_text(), 5, "the second SIGHUP")
    app.hup()
    wait_for(lambda: app.out.read_text().count("roll finished") >= 2, 15, "two rolls")
    # A third roll would log "roll started" in the same tick as the second's "roll finished".
    out = app.out.read_text()
    assert out.count("roll started") == out.count("roll finished") == 2, out
    assert not app.workers() & before


def test_unexpected_worker_death_is_replaced(app):
    before = app.workers()
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    after = wait_for(lambda: len(w := app.workers()) == WORKERS and victim not in w and w, 10, "a respawn")
    assert len(after & before) == WORKERS - 1
    assert "died unexpectedly" in app.err.read_text()


def test_sigterm_stops_everything(app):
    workers = app.workers()
    app.proc.send_signal(signal.SIGTERM)
    assert app.proc.wait(15) == 0
    assert not app.pid_file.exists()
    wait_for(lambda: not any(pid_alive(p) for p in workers), 10, "workers to exit")
    assert try_get(app.port, "/health") is None


def test_start_and_stop_argv(origin, tmp_path):
    origin_path, refs = origin
    app_dir = tmp_path / "app"
    checkout(app_dir, origin_path, "v2", owner=None)
    pid_file, log_file, port = tmp_path / "run" / "app.pid", tmp_path / "log" / "app.log", free_port()
    argv = start_argv(str(app_dir), str(pid_file), str(log_file), port=port, workers=WORKERS,
                      host="127.0.0.1", node=NODE)
    t0 = time.monotonic()
    try:
        subprocess.run(argv, check=True, timeout=10, cwd="/")
        assert time.monotonic() - t0 < 3  # detached: returned without waiting for the app
        pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), 10, "pid file"))
        wait_for(lambda: (try_get(port, "/version") or (0, 0, ""))[2] == refs["v2"] + "\n", 10, "/version")
        assert os.getsid(pid) == pid  # own session: survives the launching SSH command
        r = subprocess.run(stop_argv(str(pid_file)), timeout=30, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert not pid_file.exists() and not pid_alive(pid)
        assert "stopped in" in log_file.read_text()
        # Stopping again is a no-op.
        assert subprocess.run(stop_argv(str(pid_file)), timeout=30).returncode == 0
    finally:
        if pid_file.exists():
            try:
                os.killpg(int(pid_file.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
