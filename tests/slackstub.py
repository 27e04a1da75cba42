"""A local stand-in for Slack's Web API that records every call (slack-sdk's base_url points here)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


class SlackStub:
    """Answers chat.postMessage / chat.update like Slack; `fail=True` answers errors instead."""

    def __init__(self, fail: bool = False):
        self.calls: list[dict] = []
        self.fail = fail
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                if "json" in (self.headers.get("Content-Type") or ""):
                    body = json.loads(raw or "{}")
                else:
                    body = {k: v[0] for k, v in parse_qs(raw).items()}
                method = self.path.strip("/").split("/")[-1]
                stub.calls.append({"method": method, "body": body, "auth": self.headers.get("Authorization", ""), "raw": raw})
                if stub.fail:
                    answer, code = {"ok": False, "error": "channel_not_found"}, 200
                else:
                    answer, code = {"ok": True, "channel": "C123", "ts": f"1700000000.{len(stub.calls):06d}"}, 200
                data = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def texts(self) -> list[str]:
        return [c["body"].get("text", "") for c in self.calls]
