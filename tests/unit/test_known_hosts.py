"""The fleet's known_hosts: parsed once, and each connection checks against its own host's keys only."""

import os

import paramiko
import pytest

from rollout.adapters.ssh import _KnownHosts


def line(name: str, key: paramiko.PKey) -> str:
    return f"{name} {key.get_name()} {key.get_base64()}\n"


@pytest.fixture
def keys():
    return [paramiko.ECDSAKey.generate() for _ in range(3)]


def given(known: _KnownHosts, host: str, port: int = 22) -> dict:
    client = paramiko.SSHClient()
    known.give(client, host, port)
    return {name: {t: k.get_base64() for t, k in client.get_host_keys()[name].items()} for name in client.get_host_keys().keys()}


@pytest.mark.parametrize("host, port, expected", [
    ("198.18.1.11", 22, {"198.18.1.11": 0}),
    ("198.18.1.12", 22, {"198.18.1.12": 1}),
    ("198.18.1.12", 2222, {"[198.18.1.12]:2222": 2}),  # paramiko looks a non-22 port up as [host]:port
    ("198.18.1.13", 22, {}),                            # unknown: nothing, so RejectPolicy refuses it
    ("198.18.1.1", 22, {}),                             # no prefix match
])
def test_a_connection_gets_only_its_own_hosts_keys(tmp_path, keys, host, port, expected):
    path = tmp_path / "known_hosts"
    path.write_text(line("198.18.1.11", keys[0]) + line("198.18.1.12", keys[1]) + line("[198.18.1.12]:2222", keys[2]))
    got = given(_KnownHosts(path), host, port)
    assert got == {name: {keys[i].get_name(): keys[i].get_base64()} for name, i in expected.items()}


def test_hashed_and_comma_separated_names_match_as_paramiko_matches_them(tmp_path, keys):
    hashed = paramiko.HostKeys.hash_host("198.18.1.21")
    path = tmp_path / "known_hosts"
    path.write_text(line(hashed, keys[0]) + line("web-1,198.18.1.22", keys[1]))
    known = _KnownHosts(path)
    assert given(known, "198.18.1.21") == {"198.18.1.21": {keys[0].get_name(): keys[0].get_base64()}}
    assert given(known, "198.18.1.22") == {"198.18.1.22": {keys[1].get_name(): keys[1].get_base64()}}


def test_a_changed_file_is_read_again(tmp_path, keys):
    path = tmp_path / "known_hosts"
    path.write_text(line("198.18.1.11", keys[0]))
    known = _KnownHosts(path)
    assert given(known, "198.18.1.31") == {}
    path.write_text(line("198.18.1.11", keys[0]) + line("198.18.1.31", keys[1]))
    os.utime(path, ns=(1, 1))  # a different mtime even within the filesystem's timestamp resolution
    assert given(known, "198.18.1.31") == {"198.18.1.31": {keys[1].get_name(): keys[1].get_base64()}}


def test_the_file_is_parsed_once_while_unchanged(tmp_path, keys, monkeypatch):
    path = tmp_path / "known_hosts"
    path.write_text(line("198.18.1.11", keys[0]))
    known = _KnownHosts(path)
    parsed = []
    real = paramiko.HostKeys.load
    monkeypatch.setattr(paramiko.HostKeys, "load", lambda self, f: (parsed.append(f), real(self, f))[1])
    for _ in range(5):
        given(known, "198.18.1.11")
    assert parsed == [str(path)]
