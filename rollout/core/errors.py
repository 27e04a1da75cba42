"""The error hierarchy; each class carries the process exit code it maps to."""


class RolloutError(Exception):
    """Base of every error rollout reports to the user: one line, one exit code."""

    exit_code = 1


class UsageError(RolloutError):
    """A command-line argument is malformed (bad --batch, --hosts, ...)."""

    exit_code = 2


class ConfigError(RolloutError):
    """Unknown environment or malformed inventory."""

    exit_code = 3


class InventoryError(ConfigError):
    """An inventory file has invalid values; `problems` lists each, with its key and line."""

    def __init__(self, path: str, problems: list[str]):
        self.path, self.problems = path, problems
        many = f"{path}: {len(problems)} errors:\n  " + "\n  ".join(problems)
        super().__init__(problems[0] if len(problems) == 1 else many)


class RefError(RolloutError):
    """The ref does not name a commit of the app's repository."""

    exit_code = 4


class AwsAccessError(RolloutError):
    """AWS credentials are missing or rejected, or the endpoint does not answer."""

    exit_code = 5


class ConnectError(RolloutError):
    """The bastion or a host cannot be reached or refuses our key."""

    exit_code = 6


class HostKeyError(ConnectError):
    """A server's host key is unknown or does not match known_hosts."""

    exit_code = 7


class PreflightError(RolloutError):
    """The fleet is not in a state a rollout may start from (missing balancer, group, instances)."""

    exit_code = 8


class CapacityFloor(RolloutError):
    """A batch would leave a balancer with fewer healthy hosts than min_healthy, even after waiting."""

    exit_code = 14


class StackNotReady(RolloutError):
    """The environment's CloudFormation stack is changing or broken (*_IN_PROGRESS, *_FAILED, ROLLBACK_*)."""

    exit_code = 20


class DeployFailed(RolloutError):
    """A host failed a step; the rollout stopped."""

    exit_code = 1


class RolledBack(RolloutError):
    """Hosts failed; every updated host was returned to its previous version."""

    exit_code = 9


class LockHeld(RolloutError):
    """Another rollout holds the environment's lock."""

    exit_code = 10


class LockLost(LockHeld):
    """This run lost the environment's lock (another actor took it over); it changed nothing more.

    What it changed before stays for the new holder (a `recover`) to restore, so it has its own code:
    10 says "nothing changed"."""

    exit_code = 18

    @classmethod
    def to(cls, holder: str) -> "LockLost":
        """The error for a run whose lock is now held by `holder` (in words)."""
        return cls(f"this run lost the deploy lock to {holder}; it changed nothing more")


class LockUnproven(DeployFailed):
    """This run could not prove it still holds the lock (the state table did not answer): it changed
    nothing more, but what it had changed stays as it was, for `fab recover`."""


class Paused(RolloutError):
    """The environment is paused, or the rollout stopped because it was paused."""

    exit_code = 11


class RecoveryNeeded(RolloutError):
    """An earlier run did not finish; `fab recover` must restore the fleet first."""

    exit_code = 12


class Drift(RolloutError):
    """A host's checkout has local changes that the deploy would discard (deploy with --force to discard them)."""

    exit_code = 13


class Stepped(RolloutError):
    """The run stopped after its first batch, as --step asked; it waits for `fab deploy --continue` or `--abort`."""

    exit_code = 15


class Interrupted(RolloutError):
    """The operator interrupted the rollout (Ctrl-C or SIGTERM)."""

    exit_code = 130


class StepError(Exception):
    """One host failed one step; carries what the operator needs to act on it."""

    def __init__(self, host, step, message):
        super().__init__(f"{host}: {step}: {message}")
        self.host = host
        self.step = step
        self.message = message


# Exit codes that mean "refused before anything changed".
NOTHING_CHANGED = frozenset({2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13})
