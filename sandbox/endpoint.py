"""An AWS endpoint inside a host's namespace: 127.0.0.1:5055 there relays to moto on the controller's loopback.

Sandbox hosts have no route out (they are reached only through the bastion), as instances in a
private subnet; a real one reaches SSM through a VPC endpoint or a NAT. While a host boots, this
gives it the same: a socket listening inside its network namespace, whose connections are
relayed to moto. It lives only as long as the `with` block.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import threading

from sandbox import topology as topo

_CLONE_NEWNET = 0x40000000


def _listen_in(ns: str, port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:port inside network namespace `ns` (made by a thread that enters it)."""
    made: dict = {}

    def work() -> None:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            if libc.setns(fd, _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {ns}")
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(16)
            made["sock"] = sock
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            made["error"] = exc
        finally:
            os.close(fd)

    thread = threading.Thread(target=work, name=f"enter-{ns}")  # the thread ends in the namespace, the socket stays there
    thread.start()
    thread.join()
    if "error" in made:
        raise made["error"]
    return made["sock"]


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _relay(client: socket.socket) -> None:
    with client, socket.create_connection((topo.MOTO_HOST, topo.MOTO_PORT), timeout=30) as upstream:
        back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
        back.start()
        _pipe(client, upstream)
        back.join(timeout=60)


@contextlib.contextmanager
def aws_endpoint(ns: str, port: int = topo.MOTO_PORT):
    """While the block runs, http://127.0.0.1:PORT inside namespace `ns` is moto; yields that URL."""
    listener = _listen_in(ns, port)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            client.settimeout(60)
            threading.Thread(target=_relay, args=(client,), daemon=True).start()

    server = threading.Thread(target=serve, name=f"aws-endpoint-{ns}", daemon=True)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        server.join(timeout=5)
        listener.close()
