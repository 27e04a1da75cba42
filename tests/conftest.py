"""Shared fixtures. `fleet` brings the sandbox up once per session and always takes it down."""

import pytest

from sandbox import fleet as sandbox_fleet


def pytest_collection_modifyitems(items):
    """Tests that break the shared fleet on purpose (marked lifecycle) run last; before them, the ones
    that read what the whole session did (marked session_end). Every test that uses the fleet is marked fleet."""
    unmarked = [item.nodeid for item in items
                if "fleet" in getattr(item, "fixturenames", ()) and item.get_closest_marker("fleet") is None]
    if unmarked:
        raise pytest.UsageError("these tests use the sandbox fleet without @pytest.mark.fleet: " + ", ".join(unmarked))
    items.sort(key=lambda item: (item.get_closest_marker("lifecycle") is not None, item.get_closest_marker("session_end") is not None))


@pytest.fixture(scope="session")
def fleet(request):
    """The sandbox fleet of 4 hosts: the summary returned by sandbox.fleet.up().

    Fails (never skips) if the sandbox cannot start. The finalizer is registered
    before up() so a half-started sandbox is taken down too.
    """
    request.addfinalizer(lambda: sandbox_fleet.down(quiet=True))
    summary = sandbox_fleet.up(hosts=4)
    # A sandbox used before (scripts/sandbox-deploy, an interrupted session) may hold a pause, a
    # lock, an unfinished run or mixed versions: every test starts from the same baseline.
    from tests import fleetctl

    fleetctl.restore_baseline()
    return summary


@pytest.fixture
def new_commit(fleet):
    """A commit on main that no host runs yet."""
    import time

    from sandbox import origin, topology

    return origin.add_commit(topology.ORIGIN, f"release {time.time_ns()}")


@pytest.fixture
def healthy_fleet(fleet):
    """Before and after the test: every host in every balancer on one version, nothing suspended, no lock."""
    from tests import fleetctl

    fleetctl.restore_baseline()
    yield
    fleetctl.restore_baseline()
