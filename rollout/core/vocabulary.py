"""rollout's words, one enum each, shared by whoever writes them and whoever reads them.

Phases of a run, each host's result, the kinds of journal record, how a run ended, and why a
run stopped early. The values are the strings reports, journals and the history already hold.
"""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    """What a batch does: roll forward, return updated hosts (rollback), or restore a dead run's fleet (recover)."""

    DEPLOY = "deploy"
    ROLLBACK = "rollback"
    RECOVER = "recover"


class HostResult(StrEnum):
    """Where one host ended up, in reports, JUnit and the history."""

    PENDING = "pending"                    # not reached
    UPDATED = "updated"                    # runs the new version, in service
    ROLLED_BACK = "rolled back"            # returned by a rollback (or recover) batch, in service
    RESTORED = "failed, restored"          # failed, back on its previous version, in service
    LEFT_OUT = "failed, out of service"    # failed and could not be restored: out of the balancers


#: The start of a host's error when a rollback left it alone: it could not be reached, so it
#: was never taken out of service (it still runs the new version).
NOT_ROLLED_BACK = "could not roll back"


class Kind(StrEnum):
    """The kinds of journal record: the runner writes them, `recovery.assess` reads them."""

    START = "start"
    SUSPENDED = "suspended"
    ALARMS_DISABLED = "alarms_disabled"
    DEREGISTERED = "deregistered"
    REGISTERED = "registered"
    RESTORED = "restored"
    ALARMS_ENABLED = "alarms_enabled"
    RESUMED = "resumed"
    STEPPED = "stepped"       # a --step run waits for --continue or --abort
    CONTINUED = "continued"   # someone took a stepped run on
    STOPPED = "stopped"
    END = "end"


class Result(StrEnum):
    """How a run ended, in reports, `end` records and the history."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    INTERRUPTED = "interrupted"
    PAUSED = "paused"
    RECOVERED = "recovered"
    LOST_LOCK = "lost_lock"
    STEPPED = "stepped"


class Stop(StrEnum):
    """Why a phase stopped before its last host."""

    FAILED = "failed"             # over the failure budget, or no room left for a batch
    PAUSED = "paused"             # the environment was paused
    INTERRUPTED = "interrupted"   # Ctrl-C or SIGTERM
    LOCK_LOST = "lock_lost"       # another run took the lock over
    CAPACITY = "capacity"         # a batch would break the capacity floor (min_healthy), still after waiting
    GATE = "gate"                 # a rollback alarm fired, or the front end did not serve the new version
    STEPPED = "stepped"           # --step: after the first batch, wait for --continue or --abort
