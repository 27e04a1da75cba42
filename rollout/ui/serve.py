"""`fab ui`: load the environments, print the address with its token, serve until interrupted."""

from __future__ import annotations

import os
import re
import secrets
import sys
from typing import Optional

from werkzeug.serving import WSGIRequestHandler, make_server

from rollout.config import inventory
from rollout.core.errors import ConfigError, UsageError
from rollout.core.report import who
from rollout.ui.app import Settings, create_app
from rollout.ui.state import EnvState


class _Handler(WSGIRequestHandler):
    """Werkzeug's handler, with the token kept out of the access log."""

    def log(self, type: str, message: str, *args) -> None:
        super().log(type, message, *(_TOKEN.sub(r"\1token=***", a) if isinstance(a, str) else a for a in args))


_TOKEN = re.compile(r"([?&])token=[^&\s]*")


def run(envs: list[str], *, bind: str = "127.0.0.1", port: int = 8765, trusted_header: Optional[str] = None) -> None:
    """Serve the page for `envs` on bind:port until interrupted (Ctrl-C, SIGTERM)."""
    if not envs:
        raise UsageError("give the environments to show: fab ui --env=NAME[,NAME...]")
    states = []
    for name in envs:
        inv = inventory.load(name)
        if inv.queue is None:
            raise ConfigError(f"{name} has no deploy queue: the page acts only through it; add a 'queue' section to inventories/{name}.yml")
        if not os.environ.get(inv.queue.secret_env):
            raise ConfigError(f"{inv.queue.secret_env} is not set: the page signs its requests to the worker with it")
        states.append(EnvState(inv))
    settings = Settings(token=secrets.token_urlsafe(32), operator=who(), trusted_header=trusted_header or None)
    app = create_app(states, settings)
    try:
        server = make_server(bind, int(port), app, threaded=True, request_handler=_Handler)
    except OSError as exc:
        raise UsageError(f"cannot listen on {bind}:{port}: {exc.strerror}; choose another with --port or --bind") from None
    host = f"[{bind}]" if ":" in bind else bind
    if settings.trusted_header:
        print(f"rollout ui: serving {', '.join(envs)} on http://{host}:{server.port}/"
              f" (user from the {settings.trusted_header} header; run it behind the authenticating proxy only)", flush=True)
    else:
        print(f"rollout ui: serving {', '.join(envs)} on http://{host}:{server.port}/?token={settings.token}", flush=True)
    print("rollout ui: the token above is the key to this page: share it only with people who may deploy", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
