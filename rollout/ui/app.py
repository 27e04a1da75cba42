"""The Flask app: pages and live fragments of each environment, and actions sent as signed queue requests.

Every request is authenticated (the printed token, kept in a session cookie, or a header set by an
authenticating proxy); every form is protected against cross-site request forgery (Flask-WTF).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Optional

from flask import Flask, Response, abort, flash, redirect, render_template, request, session, stream_with_context, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect

from rollout.core.actions import Action
from rollout.core.errors import RolloutError
from rollout.core.report import short
from rollout.orchestration import worker
from rollout.ui import model
from rollout.ui.state import EnvState

LIVE_INTERVAL = 1.0  # seconds between reads of the state for a live page
STREAM_SECONDS = 300  # an event stream ends after this; the browser reconnects by itself


@dataclass(frozen=True)
class Settings:
    """How the app authenticates: a token, or (opt-in) a header set by an authenticating proxy."""

    token: str
    operator: str  # who the token's holder is: the user who ran `fab ui`
    trusted_header: Optional[str] = None


def create_app(envs: list[EnvState], settings: Settings) -> Flask:
    """The page for `envs` (in tab order)."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY=secrets.token_bytes(32), SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict",
                      WTF_CSRF_TIME_LIMIT=None, WTF_CSRF_SSL_STRICT=False)
    CSRFProtect(app)
    by_name = {e.name: e for e in envs}
    app.jinja_env.filters["short"] = short
    app.jinja_env.filters["ago"] = _ago
    app.jinja_env.filters["duration"] = model.duration
    app.jinja_env.filters["utc"] = lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(t))) if t else "-"

    @app.before_request
    def authenticate():
        if request.endpoint == "static":
            return None if session.get("user") or _header_user(settings) else Response("authentication required\n", 401)
        if settings.trusted_header:
            user = _header_user(settings)
            if not user:
                return Response(f"authentication required: no {settings.trusted_header} header from the proxy\n", 401)
            session["user"] = user
            return None
        given = request.args.get("token") or request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if given and hmac.compare_digest(given.encode(), settings.token.encode()):
            session["user"] = settings.operator
            if request.method == "GET" and "token" in request.args:
                # Out of the address bar and the browser's history.
                args = {k: v for k, v in request.args.items() if k != "token"}
                return redirect(url_for(request.endpoint, **(request.view_args or {}), **args))
            return None
        if session.get("user"):
            return None
        return Response("authentication required: open the address `fab ui` printed, with its token\n", 401)

    @app.errorhandler(CSRFError)
    def forged(exc):
        return Response(f"refused: {exc.description}; nothing was changed. Reload the page and try again.\n", 403)

    @app.context_processor
    def common():
        return {"envs": list(by_name), "user": session.get("user", "")}

    def env_or_404(name: str) -> EnvState:
        if name not in by_name:
            abort(404)
        return by_name[name]

    @app.get("/")
    def index():
        return redirect(url_for("env_page", name=envs[0].name))

    @app.get("/env/<name>")
    def env_page(name):
        e = env_or_404(name)
        try:
            live, history = e.live(), e.history()
            histories = {n: (other.history(limit=100) if n != name else history) for n, other in by_name.items()}
            error = ""
        except RolloutError as exc:
            live, history, histories, error = None, [], {}, str(exc)
        builds = (e.builds() or model.deployed_builds(history)) if not error else []
        return render_template("env.html", env=e, live=live, history=history, error=error, builds=builds,
                               builds_error=e.builds_error, standing=model.standing(builds, histories) if histories else [])

    @app.get("/env/<name>/live")
    def env_live(name):
        return render_template("_live.html", live=env_or_404(name).live())

    @app.get("/env/<name>/events")
    def env_events(name):
        e = env_or_404(name)
        stop = threading.Event()

        def stream():
            last, deadline = None, time.monotonic() + STREAM_SECONDS
            yield "retry: 2000\n\n"
            while time.monotonic() < deadline:
                try:
                    html = render_template("_live.html", live=e.live())
                except RolloutError as exc:
                    html = render_template("_error.html", error=str(exc))
                if html != last:
                    last = html
                    yield "".join(f"data: {line}\n" for line in html.splitlines()) + "\n"
                stop.wait(LIVE_INTERVAL)  # pacing between reads, not a wait for a condition

        return Response(stream_with_context(stream()), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/env/<name>/run/<run_id>")
    def run_page(name, run_id):
        e = env_or_404(name)
        run = e.run(run_id)
        if run is None:
            abort(404)
        return render_template("run.html", env=e, run=run)

    def act(e: EnvState, action: Action, ref: str = "", reason: Optional[str] = None):
        try:
            req = worker.submit(e.inv, action, f"{session['user']} (ui)", ref=ref, reason=reason)
        except RolloutError as exc:
            flash(f"{e.name}: {exc}", "error")
        else:
            what = f"{action.value} {ref}".strip()
            flash(f"{e.name}: request {req['id']} queued: {what}", "ok")

    def confirmed(e: EnvState) -> bool:
        if e.inv.protected and request.form.get("confirm", "").strip() != e.name:
            flash(f"{e.name} is protected: type its name to confirm; nothing was sent", "error")
            return False
        return True

    @app.post("/env/<name>/pause")
    def pause(name):
        e = env_or_404(name)
        act(e, Action.PAUSE, reason=request.form.get("reason", "")[:500])
        return redirect(url_for("env_page", name=name), 303)

    @app.post("/pause-all")
    def pause_all():
        for e in envs:
            act(e, Action.PAUSE, reason=request.form.get("reason", "")[:500])
        back = request.form.get("back", "")
        return redirect(url_for("env_page", name=back) if back in by_name else url_for("index"), 303)

    @app.post("/env/<name>/unpause")
    def unpause(name):
        e = env_or_404(name)
        act(e, Action.UNPAUSE)
        return redirect(url_for("env_page", name=name), 303)

    @app.post("/env/<name>/deploy")
    def deploy(name):
        e = env_or_404(name)
        ref = (request.form.get("ref_typed") or request.form.get("ref") or "").strip()
        if not ref:
            flash(f"{name}: choose a build or type a ref to deploy; nothing was sent", "error")
        elif confirmed(e):
            act(e, Action.DEPLOY, ref=ref)
        return redirect(url_for("env_page", name=name), 303)

    @app.post("/env/<name>/rollback")
    def rollback(name):
        e = env_or_404(name)
        if confirmed(e):
            act(e, Action.ROLLBACK, ref=request.form.get("sha", "").strip())
        return redirect(url_for("env_page", name=name), 303)

    return app


def _header_user(settings: Settings) -> str:
    return (request.headers.get(settings.trusted_header) or "").strip()[:200] if settings.trusted_header else ""


def _ago(seconds) -> str:
    if seconds is None:
        return "never"
    s = int(seconds)
    return f"{s}s ago" if s < 120 else f"{s // 60}min ago" if s < 7200 else f"{s // 3600}h ago"
