import json

import pytest

from rollout import signing


def test_a_signed_request_verifies_and_any_change_breaks_it():
    req = signing.make("integration", "main", "ci:42", "s3cret")
    assert signing.verify(json.dumps(req), "s3cret")["ref"] == "main"
    with pytest.raises(signing.BadRequest, match="bad signature"):
        signing.verify(json.dumps({**req, "ref": "evil"}), "s3cret")
    with pytest.raises(signing.BadRequest, match="bad signature"):
        signing.verify(json.dumps(req), "another")


@pytest.mark.parametrize("text", ["", "not json", "[]", json.dumps({"env": "x"})])
def test_garbage_is_a_bad_request(text):
    with pytest.raises(signing.BadRequest):
        signing.verify(text, "s3cret")
