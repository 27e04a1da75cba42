"""Who may use the page: the token or the proxy's header, and forms only with the anti-forgery token.

Flask's test client, on requests that are refused (or only redirected) before any state is read.
"""

import pytest

from rollout.config import inventory
from rollout.ui.app import Settings, create_app
from rollout.ui.state import EnvState

TOKEN = "t0ken-for-tests"


def client(trusted_header=None):
    envs = [EnvState(inventory.load("sandbox"))]
    app = create_app(envs, Settings(token=TOKEN, operator="ana", trusted_header=trusted_header))
    return app.test_client()


@pytest.mark.parametrize("path", ["/", "/env/sandbox", "/env/sandbox/events", "/static/ui.js", "/?token=wrong"])
def test_without_the_token_every_page_is_401(path):
    assert client().get(path).status_code == 401


def test_the_token_opens_a_session_and_leaves_the_address_bar():
    c = client()
    first = c.get(f"/?token={TOKEN}")
    assert first.status_code == 302 and "token" not in first.headers["Location"]
    assert c.get("/").status_code == 302 and c.get("/static/ui.js").status_code == 200
    assert client().get("/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 302


def test_a_form_without_the_anti_forgery_token_is_refused_before_anything_is_sent():
    c = client()
    c.get(f"/?token={TOKEN}")
    for path in ("/env/sandbox/pause", "/pause-all", "/env/sandbox/unpause", "/env/sandbox/deploy", "/env/sandbox/rollback"):
        answer = c.post(path, data={"reason": "forged", "ref": "main"})
        assert answer.status_code == 403 and b"nothing was changed" in answer.data


def test_behind_a_proxy_the_user_comes_from_its_header_and_a_token_is_not_enough():
    c = client("X-Forwarded-User")
    assert c.get(f"/?token={TOKEN}").status_code == 401
    assert c.get("/", headers={"X-Forwarded-User": "ben"}).status_code == 302
    assert c.get("/", headers={"X-Forwarded-User": "  "}).status_code == 401


def test_a_protected_environment_sends_nothing_until_its_name_is_typed(monkeypatch):
    from rollout.orchestration import worker

    sent = []
    monkeypatch.setattr(worker, "submit", lambda *a, **k: sent.append((a, k)) or {"id": "r1"})
    inv = inventory.load("sandbox").model_copy(update={"protected": True})
    app = create_app([EnvState(inv)], Settings(token=TOKEN, operator="ana"))
    app.config["WTF_CSRF_ENABLED"] = False  # this test is about the typed name, not the forgery check
    c = app.test_client()
    c.get(f"/?token={TOKEN}")
    for path, form in (("/env/sandbox/deploy", {"ref": "main"}), ("/env/sandbox/rollback", {"sha": "a" * 40}),
                       ("/env/sandbox/deploy", {"ref": "main", "confirm": "sandbo"})):
        assert c.post(path, data=form).status_code == 303
    assert sent == []
    assert c.post("/env/sandbox/deploy", data={"ref": "main", "confirm": "sandbox"}).status_code == 303
    assert [(a[1].value, a[2], k["ref"]) for a, k in sent] == [("deploy", "ana (ui)", "main")]
