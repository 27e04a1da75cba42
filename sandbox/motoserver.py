"""moto's server processes: the sandbox's own on 127.0.0.1:5055, and private ones on a free loopback port.

Both are started the same way (`_spawn`): `python -m sandbox.awsgate`, moto's server with
what it lacks added (sandbox/awsgate.py), waited for until it listens, with a deadline. A private server (`MotoServer`) is for tests that must not touch
the shared one: it starts open and `enforce()` turns moto's IAM checks on.

The shared one runs with moto's recorder on: every request it serves goes to
topology.MOTO_RECORDING, where tests/test_aws_operations.py finds rollout's own (by their
user agent) to check docs/iam/.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from functools import cache
from pathlib import Path
from typing import IO

from rollout.adapters.waiting import WaitTimeout, poll
from sandbox import awsresources, netns
from sandbox import topology as topo
from sandbox.awsprofile import REGION

LOOPBACK = "127.0.0.1"


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _spawn(port: int, log: IO | int, timeout: float, *, new_session: bool = False,
           env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start moto's server on LOOPBACK:port and wait until it listens; RuntimeError if it exits or never listens."""
    proc = subprocess.Popen([sys.executable, "-m", "sandbox.awsgate", "-H", LOOPBACK, "-p", str(port)],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[1],
                            start_new_session=new_session, env={**os.environ, **(env or {})})
    try:
        poll(lambda: proc.poll() is not None or _listening(LOOPBACK, port), bool, timeout=timeout, interval=0.05,
             max_interval=0.5, what="moto server listening")
    except WaitTimeout:
        _stop(proc)
        raise RuntimeError(f"moto server not listening on {LOOPBACK}:{port} after {timeout:g}s") from None
    if proc.poll() is not None:
        raise RuntimeError(f"moto server on {LOOPBACK}:{port} exited with {proc.returncode}")
    return proc


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# --- the sandbox's moto (topology.MOTO_ENDPOINT), detached, its pid in topology.MOTO_PID ---

def moto_pid() -> int | None:
    return netns.read_pid(topo.MOTO_PID)


def moto_listening() -> bool:
    return _listening(topo.MOTO_HOST, topo.MOTO_PORT)


def ensure_moto(timeout: float = 30.0) -> int | None:
    """Start moto's server detached unless ours runs; returns the new pid, or None if it was running."""
    if netns.pid_alive(moto_pid()) and moto_listening():
        return None
    if old := moto_pid():
        netns.kill_pids([old])
    if moto_listening():
        raise RuntimeError(
            f"{topo.MOTO_HOST}:{topo.MOTO_PORT} is taken by a process the sandbox did not start; stop it and retry"
        )
    topo.STATE_DIR.mkdir(parents=True, exist_ok=True)
    with topo.MOTO_LOG.open("ab") as log:
        try:
            proc = _spawn(topo.MOTO_PORT, log, timeout, new_session=True, env={
                "MOTO_ENABLE_RECORDING": "true", "MOTO_RECORDER_FILEPATH": str(topo.MOTO_RECORDING)})
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}; see {topo.MOTO_LOG}") from None
    topo.MOTO_PID.write_text(f"{proc.pid}\n")
    return proc.pid


def stop_moto() -> None:
    if p := moto_pid():
        netns.kill_pids([p])
    topo.MOTO_PID.unlink(missing_ok=True)


# --- a private moto on a free loopback port ----------------------------------------------

def free_port() -> int:
    """A free loopback port that is not the sandbox's moto port."""
    for _ in range(20):
        with socket.socket() as s:
            s.bind((LOOPBACK, 0))
            port = s.getsockname()[1]
        if port != topo.MOTO_PORT:
            return port
    raise RuntimeError("no free loopback port found in 20 tries")


class MotoServer:
    """A moto server of the caller's own on loopback; use as a context manager (stopped and waited for on exit).

    It starts open, so a test can create the resources and IAM users it needs; `enforce()`
    then has every request allowed or denied by its caller's policies, as AWS would.
    """

    def __init__(self, timeout: float = 30.0, log: Path | None = None):
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self._log = log.open("ab") if log else None
        try:
            self.proc = _spawn(self.port, self._log or subprocess.DEVNULL, timeout)
        except RuntimeError:
            self._close_log()
            raise

    @cache
    def client(self, service: str):
        """An administrator's client (dummy keys): use it before enforce()."""
        import boto3

        return boto3.client(service, endpoint_url=self.url, region_name=REGION, aws_access_key_id="admin",
                            aws_secret_access_key="admin")

    def user(self, name: str, actions: list[str]) -> dict[str, str]:
        """An IAM user allowed exactly `actions` on every resource; its AWS_* variables and ARN."""
        iam = self.client("iam")
        arn = iam.create_user(UserName=name)["User"]["Arn"]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
        iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"], "ARN": arn}

    def state_table(self, name: str = awsresources.STATE_TABLE) -> None:
        """The DynamoDB table rollout keeps its state in, as `fab setup` creates it."""
        awsresources.create_state_table(self.client("dynamodb"), name)

    def enforce(self) -> None:
        """From now on, every request is checked against its caller's IAM policies.

        moto's /moto-api/reset-auth with 0: the server-mode form of INITIAL_NO_AUTH_ACTION_COUNT=0.
        """
        request = urllib.request.Request(f"{self.url}/moto-api/reset-auth", data=b"0", method="POST",
                                         headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.load(answer)["status"] == "ok"

    def close(self) -> None:
        _stop(self.proc)
        self._close_log()

    def _close_log(self) -> None:
        if self._log:
            self._log.close()

    def __enter__(self) -> "MotoServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
