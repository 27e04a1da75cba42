"""Host keys rooted in AWS: the console parser and the trust decision, as tables."""

import pytest

from rollout.core.hostkeys import Refresh, Server, Trust, console_keys, fingerprint, judge, parse_key, refresh, refusal

ED = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICRSW92iNtqI44MjGUcF6cLlWiAByCJmLpFLZHD7xcpC"
EC = ("ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBMGSEuiW+X5g58EHD9HvfqCI4lfat79YxBG2IybIFz1e8m0sN"
      "AbyHWcs/BfQITggvUsfYaz8a/cdHTOMYHce/UM=")
OTHER = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINaGWoUPxbeZWBAHwEKAUoB51s+kS0QBPibbwPu32nHk"

# What cloud-init prints on an EC2 console (captured layout: fingerprints block with an "ec2:" prefix, then keys).
CONSOLE = f"""[   12.011] cloud-init[601]: Cloud-init v. 22.2.2 running 'modules:final'
ec2: #############################################################
ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----
ec2: 256 SHA256:xlJoSq8jCtV2TY5GWg0HVJLv79cAsZf+71e/x/7uf2o root@ip-10-0-1-23 (ED25519)
ec2: -----END SSH HOST KEY FINGERPRINTS-----
ec2: #############################################################
-----BEGIN SSH HOST KEY KEYS-----\r
{EC} root@ip-10-0-1-23\r
{ED} root@ip-10-0-1-23\r
-----END SSH HOST KEY KEYS-----\r
[   12.5] cloud-init[601]: Cloud-init v. 22.2.2 finished
"""


@pytest.mark.parametrize("text, keys", [
    (CONSOLE, (EC, ED)),
    ("", ()),
    ("Linux version 2.6.16-xenU\nKernel command line: root=/dev/sda1\n", ()),  # moto's stock sample: no block
    (f"-----BEGIN SSH HOST KEY KEYS-----\n{ED}\n", ()),  # cut before END: not vouched
    (f"-----BEGIN SSH HOST KEY KEYS-----\n{OTHER}\n-----END SSH HOST KEY KEYS-----\nreboot\n"
     f"-----BEGIN SSH HOST KEY KEYS-----\n{ED}\n-----END SSH HOST KEY KEYS-----\n", (ED,)),  # the last boot's
    (f"{ED}\n-----BEGIN SSH HOST KEY KEYS-----\n-----END SSH HOST KEY KEYS-----\n", ()),  # keys outside a block
    (f"-----BEGIN SSH HOST KEY KEYS-----\nssh-ed25519 bm90IGEga2V5\nssh-ed25519 !!!\n-----END SSH HOST KEY KEYS-----\n", ()),
    (f"-----BEGIN SSH HOST KEY KEYS-----\n{ED}\n{ED} again\n-----END SSH HOST KEY KEYS-----\n", (ED,)),
])
def test_console_keys_are_the_last_complete_cloud_init_block(text, keys):
    assert console_keys(text) == keys


@pytest.mark.parametrize("line, key", [
    (f"{ED} root@x", ED),
    (f"ec2: {ED}", ED),
    ("ssh-rsa " + ED.split()[1], None),  # the blob names another type
    ("ssh-ed25519", None),
    ("hello world", None),
])
def test_parse_key_needs_a_blob_of_its_own_type(line, key):
    assert parse_key(line) == key


def test_fingerprint_is_what_ssh_keygen_shows():
    assert fingerprint(ED) == "SHA256:xlJoSq8jCtV2TY5GWg0HVJLv79cAsZf+71e/x/7uf2o"


P, V, NONE = frozenset({ED, EC}), frozenset({ED, EC}), frozenset()


@pytest.mark.parametrize("presented, pinned, vouched, verdict", [
    (ED, P, NONE, Trust.PINNED),               # pinned: AWS not needed
    (EC, P, V, Trust.PINNED),
    (OTHER, P, NONE, Trust.CHANGED),
    (OTHER, P, frozenset({OTHER}), Trust.CHANGED),  # a pin wins even when AWS now shows the new key
    (ED, NONE, V, Trust.VOUCHED),              # a new instance: accepted through AWS
    (OTHER, NONE, V, Trust.UNVOUCHED),         # a server at a reused address, another key
    (ED, NONE, NONE, Trust.NO_VOUCHED),        # console not yet written
])
def test_judge(presented, pinned, vouched, verdict):
    assert judge(presented, pinned, vouched) is verdict
    assert verdict.accepted == (verdict in (Trust.PINNED, Trust.VOUCHED))


@pytest.mark.parametrize("trust, words", [
    (Trust.CHANGED, ["changed against the key pinned for i-0abc", "possible interception", "--replace=i-0abc"]),
    (Trust.UNVOUCHED, ["not vouched for by AWS", "get-console-output --instance-id i-0abc"]),
    (Trust.NO_VOUCHED, ["vouches for no host key of i-0abc", "fab keys --env=prod"]),
])
def test_refusal_names_the_instance_the_key_and_the_fix(trust, words):
    line = refusal(Server("host", "i-0abc", "web-1", "10.0.1.23"), trust, OTHER, "prod")
    assert "host web-1 (i-0abc, 10.0.1.23)" in line and fingerprint(OTHER) in line and "\n" not in line
    for w in words:
        assert w in line


@pytest.mark.parametrize("pinned, vouched, replace, action", [
    (P, V, False, Refresh.KEEP),
    (P, NONE, False, Refresh.KEEP),            # console rotated away: the pin stands
    (NONE, V, False, Refresh.PIN),
    (NONE, NONE, False, Refresh.NOTHING),
    (NONE, NONE, True, Refresh.NOTHING),       # --replace cannot pin what AWS does not show
    (frozenset({OTHER}), V, False, Refresh.DIFFERS),
    (frozenset({OTHER}), V, True, Refresh.REPIN),
    (P, V, True, Refresh.KEEP),
])
def test_refresh(pinned, vouched, replace, action):
    assert refresh(pinned, vouched, replace) is action
