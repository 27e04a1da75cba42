"""What reaches stderr: paramiko's own records only when asked for (-v)."""

import logging

import pytest

from rollout.adapters import log


@pytest.fixture(autouse=True)
def restore():
    yield
    log.setup(log.NORMAL)


def record(name, level, message):
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


@pytest.mark.parametrize("level,paramiko_shown", [(log.QUIET, False), (log.NORMAL, False), (log.VERBOSE, True)])
def test_paramiko_is_silent_unless_verbose(level, paramiko_shown):
    log.setup(level)
    # paramiko.transport logs the traceback of a banner error at ERROR: rollout reports it itself.
    assert logging.getLogger("paramiko.transport").isEnabledFor(logging.ERROR) == paramiko_shown


def test_a_refused_channel_is_never_logged_even_when_verbose():
    log.setup(log.VERBOSE)
    transport = logging.getLogger("paramiko.transport")
    assert not transport.filter(record("paramiko.transport", logging.ERROR, "Secsh channel 3 open FAILED: Connection refused"))
    assert transport.filter(record("paramiko.transport", logging.ERROR, "Exception (client): Error reading SSH protocol banner"))
