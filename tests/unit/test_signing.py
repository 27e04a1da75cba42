import json

import pytest

from rollout.config import inventory
from rollout.core import signing
from rollout.orchestration import worker
from tests import hostile

NOW = 1_800_000_000.0


def test_a_signed_request_verifies_and_any_change_breaks_it():
    req = signing.make("integration", "main", "ci:42", "s3cret")
    assert signing.verify(json.dumps(req), "s3cret", max_age=60)["ref"] == "main"
    with pytest.raises(signing.BadRequest, match="bad signature"):
        signing.verify(json.dumps({**req, "ref": "evil"}), "s3cret", max_age=60)
    with pytest.raises(signing.BadRequest, match="bad signature"):
        signing.verify(json.dumps(req), "another", max_age=60)


@pytest.mark.parametrize("text", ["", "not json", "[]", json.dumps({"env": "x"}), None, b"{}", 42])
def test_garbage_is_a_bad_request(text):
    with pytest.raises(signing.BadRequest):
        signing.verify(text, "s3cret", max_age=60)


@pytest.mark.parametrize("age,ok", [
    (0, True), (3599, True), (3601, False),            # max_age 3600
    (-signing.CLOCK_TOLERANCE + 1, True),              # the enqueuer's clock a little ahead: tolerated
    (-signing.CLOCK_TOLERANCE - 1, False),             # too far ahead
])
def test_the_signed_time_is_checked_against_max_age_and_the_clock_tolerance(age, ok):
    body = json.dumps(hostile.signed(at=NOW - age))
    if ok:
        assert signing.verify(body, hostile.SECRET, max_age=3600, now=NOW)["at"] == NOW - age
    else:
        with pytest.raises(signing.BadRequest, match="max_age|ahead"):
            signing.verify(body, hostile.SECRET, max_age=3600, now=NOW)


def sandbox_inventory():
    return inventory.load("sandbox")


@pytest.mark.parametrize("case", hostile.bodies(NOW), ids=lambda c: c[0])
def test_every_hostile_body_is_a_bad_request_with_its_reason(case):
    _, body, words = case
    with pytest.raises(signing.BadRequest) as caught:
        worker.read_request(sandbox_inventory(), body, hostile.SECRET, now=NOW)
    for w in words:
        assert w in str(caught.value)
    assert "\n" not in str(caught.value)


def test_any_failure_while_checking_a_body_is_a_bad_request_so_the_worker_dead_letters_it(monkeypatch):
    def broken(*args, **kwargs):
        raise OverflowError("int too large to convert to float")

    monkeypatch.setattr(signing, "verify", broken)
    with pytest.raises(signing.BadRequest) as caught:
        worker.read_request(sandbox_inventory(), json.dumps(hostile.signed(at=NOW)), hostile.SECRET, now=NOW)
    assert "OverflowError" in str(caught.value) and "\n" not in str(caught.value)


def test_the_valid_request_after_the_hostile_ones_is_read():
    req = worker.read_request(sandbox_inventory(), json.dumps(hostile.signed(at=NOW)), hostile.SECRET, now=NOW)
    assert req["env"] == "sandbox" and req["ref"] == "main"



def test_a_request_without_an_action_is_a_deploy_as_before():
    from rollout.core.actions import Action, of

    old = {"id": "1", "env": "integration", "ref": "main", "requested_by": "ci", "at": NOW}
    old["signature"] = signing.sign(old, "s3cret")  # exactly what the previous version sent
    assert of(signing.verify(json.dumps(old), "s3cret", max_age=60, now=NOW)) is Action.DEPLOY
    assert "action" not in signing.make("integration", "main", "ci", "s3cret")


@pytest.mark.parametrize("action, ref", [("rollback", "v1"), ("pause", ""), ("unpause", "")])
def test_an_action_kind_is_signed_and_cannot_be_removed_or_changed(action, ref):
    from rollout.core.actions import Action, of

    req = signing.make("integration", ref, "ana (ui)", "s3cret", action=Action(action), reason="incident 42")
    assert of(signing.verify(json.dumps(req), "s3cret", max_age=60)) is Action(action)
    stripped = {k: v for k, v in req.items() if k not in ("action", "reason")}
    for forged in (stripped, {**req, "action": "deploy"}, {**req, "reason": "other"}):
        with pytest.raises(signing.BadRequest, match="bad signature|'ref' is empty"):
            signing.verify(json.dumps(forged), "s3cret", max_age=60)


@pytest.mark.parametrize("change, words", [
    ({"action": ["pause"]}, "unknown action"),
    ({"reason": 42}, "'reason' is not text"),
    ({"reason": "x" * 501}, "'reason' is not text"),
    ({"reason": "two\nlines"}, "'reason' is not text"),
    ({"action": "deploy", "ref": ""}, "'ref' is empty"),
])
def test_malformed_action_fields_are_bad_requests(change, words):
    body = {"id": "1", "env": "integration", "ref": "main", "requested_by": "ci", "at": NOW, **change}
    body["signature"] = signing.sign(body, "s3cret")
    with pytest.raises(signing.BadRequest, match=words):
        signing.verify(json.dumps(body), "s3cret", max_age=60, now=NOW)


def test_a_signed_request_with_an_unknown_action_is_refused():
    body = {"id": "1", "env": "integration", "ref": "main", "requested_by": "ci", "at": NOW, "action": "format-disks"}
    body["signature"] = signing.sign(body, "s3cret")
    with pytest.raises(signing.BadRequest, match="unknown action 'format-disks'"):
        signing.verify(json.dumps(body), "s3cret", max_age=60, now=NOW)
