import json

import pytest

from rollout import inventory, signing, worker
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


def test_the_valid_request_after_the_hostile_ones_is_read():
    req = worker.read_request(sandbox_inventory(), json.dumps(hostile.signed(at=NOW)), hostile.SECRET, now=NOW)
    assert req["env"] == "sandbox" and req["ref"] == "main"
