"""SSH to the fleet: one transport to the bastion, shared by every host connection.

Host keys are checked strictly, never added: against the inventory's known_hosts, or, with
`ssh.host_keys: aws`, by a trust policy that judges each instance's key against its pin and the
keys AWS vouches for (orchestration/hostkeys.py).
"""

from __future__ import annotations

import io
import logging
import os
import socket
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import paramiko
from fabric import Config, Connection
from fabric.runners import Remote
from invoke.exceptions import CommandTimedOut

from rollout.adapters.gate import Gate, GatedStdin, hold, wait_open
from rollout.adapters.retry import SSH_ATTEMPTS, ssh_retrying
from rollout.core.errors import ConnectError, HostKeyError

log = logging.getLogger("rollout.ssh")


class _Remote(Remote):
    """Fabric's runner, sending stdin in one piece and waiting on events instead of polling.

    Invoke reads a non-terminal in_stream one byte per 10 ms (it is built for people
    typing): a 2 KB script took 20 s. Our stdin is always a whole string in memory.
    Invoke also polls for the command's end every `input_sleep`: at 1 ms, ten commands
    running at once woke the controller 10,000 times a second on a loaded machine.
    """

    input_sleep = 0.001
    _sent_eof = False

    def read_our_stdin(self, input_):
        if not wait_open(input_, self.program_finished):
            return ""
        data = input_.read(1 << 20)
        if not data:
            if self._sent_eof:
                self.program_finished.wait(1.0)  # all sent: nothing to do until the command ends
            self._sent_eof = True
        return data

    def wait(self) -> None:
        """Block until the command has exited (or an IO thread died), woken by paramiko's exit-status event."""
        while not (self.process_is_finished or self.has_dead_threads):
            self.channel.status_event.wait(0.1)


_CONFIG = Config(overrides={"load_ssh_configs": False, "run": {"in_stream": False}, "runners": {"remote": _Remote}})


class _QuickAckSocket(socket.socket):
    """A TCP socket that acknowledges what it reads at once.

    sshd sets TCP_NODELAY only for sessions with a terminal. For ours, when it writes
    twice in a row (end of output, then exit status), the second write waits for our
    ACK of the first, which Linux delays by up to 40 ms: that was 40 ms on nearly every
    remote command (measured: `true` took 45 ms through the bastion, 5 ms with this).
    """

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data = super().recv(bufsize, flags)
        self.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        return data


class _BastionConnection(Connection):
    """The bastion's Connection, over a _QuickAckSocket (on Linux)."""

    def open(self):
        if self.is_connected or not hasattr(socket, "TCP_QUICKACK"):
            return super().open()
        plain = socket.create_connection((self.host, int(self.port)), timeout=self.connect_timeout)
        sock = _QuickAckSocket(fileno=plain.detach())
        sock.settimeout(self.connect_timeout)
        self.connect_kwargs["sock"] = sock
        try:
            return super().open()
        except BaseException:
            sock.close()
            raise
        finally:
            del self.connect_kwargs["sock"]


class _HostTransport(paramiko.Transport):
    """A host's transport that acknowledges the server's post-login notice at once (with SSH_MSG_IGNORE).

    Right after login, OpenSSH's sshd writes a notice (its host keys, "hostkeys-00@openssh.com").
    It sets no TCP_NODELAY for sessions without a terminal, so its next write, the answer to
    our first channel, waits for the bastion to ACK the notice, which Linux delays by 40 ms:
    measured, the first command on a host took 50 ms, later ones 5 ms. An IGNORE sent through
    the bastion carries that ACK (RFC 4253 11.2: every peer discards it).

    Its reading thread also wakes once a second, not ten times, while the host is idle: with
    100 hosts connected, paramiko's 0.1 s check cost the controller about 1,000 wake-ups and
    30 ms of CPU a second for the whole rollout. Data and a closed gateway channel wake it at once.
    """

    acked_notice = False
    IDLE_CHECK = 1.0

    def __init__(self, sock, *args, **kwargs):
        super().__init__(sock, *args, **kwargs)
        sock.settimeout(self.IDLE_CHECK)

    def _parse_global_request(self, m):
        super()._parse_global_request(m)
        # Once, and only when sending cannot wait on a key exchange that this (reading) thread must finish.
        if not self.acked_notice and not self.server_mode and self.clear_to_send.is_set():
            self.acked_notice = True
            self.send_ignore(0)


class _HostConnection(Connection):
    """A Connection whose gateway channel opens with a timeout (Fabric's has none)."""

    def open_gateway(self):
        return self.gateway.transport.open_channel(
            kind="direct-tcpip",
            dest_addr=(self.host, int(self.port)),
            src_addr=("", 0),
            timeout=self.connect_timeout,
        )


class _KnownHosts:
    """One known_hosts file, parsed once per version of it (mtime, size, inode), shared by every connection.

    paramiko's load_host_keys parses the whole file for each client, and each check then scans
    every entry: at 100 hosts that was a quarter of the controller's CPU while connecting.
    """

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._version: Optional[tuple] = None
        self._keys = paramiko.HostKeys()

    def give(self, client: paramiko.SSHClient, host: str, port: int) -> None:
        """Add to `client` the keys known for `host:port` (under the name paramiko looks up), in file order."""
        st = os.stat(self.path)
        with self._lock:
            if self._version != (st.st_mtime_ns, st.st_size, st.st_ino):
                self._keys = paramiko.HostKeys(str(self.path))
                self._version = (st.st_mtime_ns, st.st_size, st.st_ino)
            keys = self._keys
        name = host if port == 22 else f"[{host}]:{port}"
        found = keys.lookup(name) or {}
        for keytype in found.keys():
            client.get_host_keys().add(name, keytype, found[keytype])


@dataclass(frozen=True)
class Auth:
    """How this process logs in, besides the inventory's ssh.key: Fabric's -i keys, -S ssh_config, the agent, a passphrase.

    Host keys are not part of it: the Fleet checks them (known_hosts, or the trust policy).
    """

    identities: tuple[Path, ...] = ()
    ssh_config: Optional[Path] = None
    passphrase: Optional[str] = field(default=None, repr=False)

    def login(self, host: str, user: str, port: int, key: Path) -> tuple[str, int, list[str]]:
        """The user, port and key files for `host`: -i keys first, then the ssh_config's, then ssh.key.

        From the -S file, only User, Port and IdentityFile apply (for the address connected to);
        proxies and host-key settings do not: hosts are reached through the inventory's bastion.
        """
        keys = [str(p) for p in self.identities]
        if self.ssh_config is not None:
            found = paramiko.SSHConfig.from_path(str(self.ssh_config)).lookup(host)
            user = found.get("user", user)
            port = int(found.get("port", port))
            keys += [str(Path(p).expanduser()) for p in found.get("identityfile", [])]
        return user, port, list(dict.fromkeys(keys + [str(key)]))


def ssh_config_problem(path: str) -> Optional[str]:
    """What makes an -S ssh_config unusable (it does not parse, or a Port is not a port number); None if fine."""
    try:
        config = paramiko.SSHConfig.from_path(path)
    except Exception as exc:  # noqa: BLE001 - ConfigParseError, a file that is not text, ...
        return f"cannot be parsed: {' '.join(str(exc).split())[:200] or type(exc).__name__}"
    # The parsed blocks: lookup() would run Match exec commands, so the values are read without it.
    for block in getattr(config, "_config", []):
        port = block.get("config", {}).get("port")
        if port is not None and not (str(port).isdigit() and 1 <= int(port) <= 65535):
            return f"Port {str(port)[:40]!r} is not a port number (1-65535)"
    return None


_auth = Auth()


def auth_from_config(config) -> Auth:
    """The Auth that Fabric's core options put in a task's config: -i (key_filename), -S, --prompt-for-passphrase."""
    kwargs = config.get("connect_kwargs") or {}
    runtime = getattr(config, "_runtime_ssh_path", None)  # where Fabric keeps -S; it has no public accessor
    return Auth(identities=tuple(Path(p).expanduser() for p in kwargs.get("key_filename") or ()),
                ssh_config=Path(runtime).expanduser() if runtime else None, passphrase=kwargs.get("passphrase"))


def use(auth: Auth) -> None:
    """Log in with `auth` in every Fleet this process opens from now on (set once per command)."""
    global _auth
    _auth = auth


@dataclass(frozen=True)
class GroupResult:
    """What one fan-out over hosts gave (as Fabric's GroupResult): each host's result, or the error that stopped it.

    Both map addresses, in the order the hosts were given.
    """

    succeeded: dict[str, Any]
    failed: dict[str, ConnectError]

    def raise_failed(self) -> None:
        """Raise one error naming every failed host; nothing if none failed.

        Its kind (so its exit code) is a host key's refusal if any host gave one — a possible
        interception must not hide behind an unreachable host listed first — else the first error's.
        """
        if not self.failed:
            return
        errors = list(self.failed.values())
        if len(errors) == 1:
            raise errors[0]
        kind = next((type(e) for e in errors if isinstance(e, HostKeyError)), type(errors[0]))
        raise kind(f"{len(errors)} hosts failed: " + "; ".join(str(e) for e in errors))


class Fleet:
    """Connections to the bastion and to hosts behind it."""

    def __init__(
        self,
        *,
        bastion: str,
        bastion_port: int = 22,
        bastion_user: str,
        user: str,
        port: int = 22,
        key: Path,
        known_hosts: Optional[Path],
        connect_timeout: float = 10,
        parallel: int = 16,
        trust: Optional[paramiko.MissingHostKeyPolicy] = None,
        bastion_trust: Optional[paramiko.MissingHostKeyPolicy] = None,
    ):
        """`trust`, if given, judges the hosts' keys instead of known_hosts (ssh.host_keys: aws); `bastion_trust` the bastion's."""
        self.user = user
        self.port = port
        self.key = Path(key)
        self.known_hosts = Path(known_hosts) if known_hosts is not None else None
        self._known = _KnownHosts(self.known_hosts) if known_hosts is not None else None
        self.connect_timeout = connect_timeout
        self.parallel = parallel
        self.trust = trust
        self.bastion = self._new(_BastionConnection, bastion, bastion_port, bastion_user, trust=bastion_trust)
        self.bastion_opens = 0
        self._hosts: dict[str, Connection] = {}
        self._lock = threading.Lock()
        self._bastion_lock = threading.Lock()
        self._early: Optional[Future] = None

    def _new(self, cls, host, port, user, gateway=None, trust=None):
        auth = _auth
        user, port, keys = auth.login(host, user, port, self.key)
        secret = {"passphrase": auth.passphrase} if auth.passphrase else {}
        conn = cls(
            host,
            user=user,
            port=port,
            gateway=gateway,
            # Invoke's Config merges lazily and is not thread-safe: each connection gets its own,
            # since host connections are opened from several threads at once.
            config=_CONFIG.clone(),
            connect_timeout=int(max(1, self.connect_timeout)),
            connect_kwargs={"key_filename": keys, "look_for_keys": False, "allow_agent": True, **secret},
        )
        if trust is not None:
            conn.client.set_missing_host_key_policy(trust)  # no key file: every key goes through the policy
        else:
            self._known.give(conn.client, conn.host, conn.port)
            conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        return conn

    def open_bastion(self) -> None:
        """Open the one transport to the bastion (idempotent, and safe from several threads).

        After open_bastion_early, the first call waits for that attempt and raises its error.
        """
        early = self._early
        if early is not None:
            early.result()  # every caller gets the early attempt's error; none starts another attempt
            self._early = None
        if not self.bastion.is_connected:
            self._open_once()

    def open_bastion_early(self) -> None:
        """Start opening the bastion transport in the background."""
        early: Future = Future()

        def work() -> None:
            try:
                self._open_once()
            except BaseException as exc:  # noqa: BLE001 - handed to whoever uses the fleet first
                early.set_exception(exc)
            else:
                early.set_result(None)

        self._early = early
        threading.Thread(target=work, name="bastion-open", daemon=True).start()

    def _open_once(self) -> None:
        with self._bastion_lock:
            if not self.bastion.is_connected:
                self._open_bastion()

    def _open_bastion(self) -> None:
        if self.bastion_opens:
            log.warning("bastion %s: connection lost; reconnecting", self.bastion.host)
        _open(self.bastion, "bastion", self.known_hosts)
        self.bastion_opens += 1
        # Every host session is multiplexed over this one socket; without NODELAY each
        # small SSH message can wait on a delayed ACK (about 40 ms on Linux).
        self.bastion.transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connect(self, addresses: list[str]) -> None:
        """Open a connection to each host through the bastion, in parallel; raise on the first failure."""
        self.open_bastion()
        todo = [a for a in addresses if a not in self._hosts or not self._hosts[a].is_connected]
        if not todo:
            return
        if len(todo) == 1:
            if error := self._connect_one(todo[0]):
                raise error
            return
        with ThreadPoolExecutor(max_workers=min(self.parallel, len(todo))) as pool:
            results = list(pool.map(self._connect_one, todo))
        errors = [e for e in results if e is not None]
        if errors:
            raise errors[0]

    def each(self, addresses: list[str], fn: Callable[[str], Any]) -> GroupResult:
        """Connect each host and call `fn(address)` as soon as it is connected, in parallel (at most `parallel` at once).

        Every host is tried: one that cannot be connected, or whose `fn` raises ConnectError
        (a lost connection, a command that timed out), is in `failed` with its error.
        """
        def one(address: str) -> tuple[str, Any, Optional[ConnectError]]:
            try:
                self.connect([address])
                return address, fn(address), None
            except ConnectError as exc:
                return address, None, exc

        with ThreadPoolExecutor(max_workers=max(1, min(len(addresses), self.parallel))) as pool:
            rows = list(pool.map(one, addresses))
        return GroupResult(succeeded={a: r for a, r, e in rows if e is None}, failed={a: e for a, _, e in rows if e is not None})

    def _connect_one(self, address: str) -> Optional[Exception]:
        conn = self._new(_HostConnection, address, self.port, self.user, gateway=self.bastion, trust=self.trust)
        conn.connect_kwargs["transport_factory"] = _HostTransport
        try:
            _open(conn, "host", self.known_hosts)
        except ConnectError as exc:
            return exc
        with self._lock:
            self._hosts[address] = conn
        return None

    def host(self, address: str) -> Connection:
        """The open connection to a host (connecting it if needed)."""
        conn = self._hosts.get(address)
        if conn is None or not conn.is_connected:
            if conn is not None:
                log.warning("host %s: connection lost; reconnecting", address)
            self.connect([address])
            conn = self._hosts[address]
        return conn

    def run(self, address: str, command: str, timeout: Optional[float] = None, stdin: Optional[str] = None,
            gate: Optional[Gate] = None):
        """Run a shell command on a host; return invoke's Result (never raises on exit status).

        A dropped connection is reopened and the command run again (tenacity, bounded),
        so commands given here must be safe to repeat. A host lost for good raises ConnectError.
        `stdin`, if given, is sent to the command and then closed (scripts with secrets go there, not in argv).
        With `gate`, the command runs only once the gate opens (see rollout.adapters.gate).
        """
        if gate is not None:
            command, stdin = hold(command, stdin)

        def drop(state):
            exc = state.outcome.exception()
            log.warning("host %s: %s: %s; reconnecting (attempt %d of %d)", address, type(exc).__name__, exc,
                        state.attempt_number + 1, SSH_ATTEMPTS)
            with self._lock:
                conn = self._hosts.pop(address, None)
            if conn is not None:
                conn.close()

        try:
            for attempt in ssh_retrying(drop):
                with attempt:
                    conn = self.host(address)
                    extra = ({"in_stream": GatedStdin(stdin, gate)} if gate is not None
                             else {"in_stream": io.StringIO(stdin)} if stdin is not None else {})
                    result = conn.run(command, hide=True, warn=True, timeout=timeout, **extra)
                    if result.exited == -1 and not (conn.is_connected and self.bastion.is_connected):
                        raise EOFError("the connection closed before the command finished")
                    return result
        except CommandTimedOut as exc:
            raise ConnectError(f"host {address}: command timed out after {exc.timeout}s: {command}") from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise ConnectError(f"host {address}: connection lost ({type(exc).__name__}: {exc}) after {SSH_ATTEMPTS} attempts") from None

    def host_channel(self, address: str, port: int, timeout: float = 10) -> paramiko.Channel:
        """A TCP channel from the host's own sshd to its 127.0.0.1:port."""
        transport = self.host(address).transport
        return transport.open_channel("direct-tcpip", ("127.0.0.1", port), ("127.0.0.1", 0), timeout=timeout)

    def bastion_channel(self, host: str, port: int, timeout: float = 10) -> paramiko.Channel:
        """A TCP channel from the bastion's sshd to host:port; a dead bastion connection is reopened."""

        def drop(state):
            log.warning("bastion %s: %s while opening a channel; reconnecting", self.bastion.host, state.outcome.exception())
            self.bastion.close()

        for attempt in ssh_retrying(drop):
            with attempt:
                self.open_bastion()
                return self.bastion.transport.open_channel("direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=timeout)

    def close(self) -> None:
        """Close every host connection, then the bastion (once an early opening has ended)."""
        early, self._early = self._early, None
        if early is not None:
            early.exception()  # waits; its error no longer matters
        for conn in list(self._hosts.values()):
            conn.close()
        self._hosts.clear()
        self.bastion.close()


def _open(conn: Connection, what: str, known_hosts: Path) -> None:
    target = f"{conn.host}:{conn.port}" if conn.port != 22 else conn.host
    try:
        conn.open()
    except paramiko.BadHostKeyException:
        raise HostKeyError(
            f"{what} {target}: host key does not match {known_hosts}; if the server was rebuilt,"
            f" verify its new key and replace its line (ssh-keygen -R {conn.host} -f {known_hosts})"
        ) from None
    except paramiko.AuthenticationException:
        keys = ", ".join(conn.connect_kwargs["key_filename"])
        agent = " and the SSH agent's keys" if conn.connect_kwargs.get("allow_agent") else ""
        raise ConnectError(f"{what} {target}: user {conn.user!r} was refused with key {keys}{agent}") from None
    except paramiko.ChannelException as exc:
        raise ConnectError(f"{what} {target}: the bastion could not open a connection to it ({exc.text}); check that it is up and allows SSH from the bastion") from None
    except paramiko.SSHException as exc:
        if "not found in known_hosts" in str(exc):
            raise HostKeyError(
                f"{what} {target}: host key unknown (not in {known_hosts}); verify the server's fingerprint and add it to that file"
            ) from None
        if isinstance(exc, paramiko.IncompatiblePeer) or "protocol banner" in str(exc):
            raise ConnectError(f"{what} {target}: the server there does not speak SSH ({exc}); check the address and"
                               f" port {conn.port}") from None
        raise ConnectError(f"{what} {target}: SSH failed: {exc}") from None
    except (socket.timeout, TimeoutError):
        raise ConnectError(f"{what} {target}: timed out connecting; check the address and that port {conn.port} is reachable") from None
    except OSError as exc:
        raise ConnectError(f"{what} {target}: cannot connect ({exc.strerror or exc}); check the address and that sshd is running") from None
