"""rollout's tasks, for `fab` and for the `rollout` command.

An application's fabfile needs two lines (see the README, "Install"):

    from rollout.cli.tasks import namespace
    ns = namespace()

Each task parses its arguments and calls rollout.cli.commands; `--env` is a named option everywhere,
`-h` is only help, and the only short flags are `-v` (--verbose) and `-q` (--quiet).
"""

from __future__ import annotations

import inspect

from fabric import Connection, Task
from fabric import task as fabric_task
from invoke import Collection
from invoke.exceptions import Exit

from rollout.cli import program

SHORT_FLAGS = {"verbose": "v", "quiet": "q"}

ENV = "environment: the name of a file in inventories/ (required)"
COMMON = {"verbose": "more detail in the log (rollout's debug records, paramiko's log)", "quiet": "errors only in the log"}


class RolloutTask(Task):
    """A Fabric task with rollout's flags: no automatic short flags but -v/-q, and the core options it takes."""

    def __init__(self, *args, core_options=(), **kwargs):
        self.core_options = frozenset(core_options)
        kwargs["auto_shortflags"] = False
        super().__init__(*args, **kwargs)

    def arg_opts(self, name, default, taken_names):
        opts = super().arg_opts(name, default, taken_names)
        if name in SHORT_FLAGS and SHORT_FLAGS[name] not in taken_names:
            opts["names"].append(SHORT_FLAGS[name])
        return opts


def _session(c, verbose: bool, quiet: bool):
    """rollout.cli.commands, set up for this command (imported here: help and argument errors need none of it).

    A fabfile that lists rollout's tasks without namespace() leaves Fabric's own handling of
    -H (the task once per host) and -R: both are refused here, before anything runs.
    """
    if isinstance(c, Connection):
        raise Exit("rollout: -H ran this task once per host: use --hosts=... after the task (or call rollout.cli.tasks.namespace() in the fabfile)", code=2)
    if c.config.run.dry:
        raise Exit("rollout: -R/--dry would only echo commands: use deploy --dry-run (or call rollout.cli.tasks.namespace() in the fabfile)", code=2)
    from rollout.cli import commands as cli

    cli.session(c, verbose, quiet)
    return cli


def task(help=None, core_options=(), **kwargs):
    """Fabric's @task with rollout's flags; --env, -v and -q get their help text wherever a task has them."""

    def decorate(body):
        params = inspect.signature(body).parameters
        common = {k: v for k, v in {"env": ENV, **COMMON}.items() if k in params}
        return fabric_task(klass=RolloutTask, help={**common, **(help or {})}, core_options=core_options, **kwargs)(body)

    return decorate


@task(
    help={
        "ref": "branch, tag or SHA to deploy (default: the environment's branch)",
        "batch": "hosts out of service at once: a count (2), a percentage (25%) or a ramp (1,10%,50%: the last repeats); default 1",
        "hosts": "only these instances: comma-separated ids, names or addresses; patterns (web-*) and exclusions (!h003)",
        "dry-run": "print the full plan and change nothing",
        "no-ssh": "with --dry-run: plan from AWS alone, contacting no host (versions unknown)",
        "yes": "do not ask for confirmation on a terminal",
        "report": "write a JSON report of the rollout to this path",
        "junit": "write a JUnit XML summary (one test case per host) to this path",
        "branch": "personal deploy: this branch's head to its developer's environment (ENV@USER)",
        "force": "redo hosts already on the target, and discard local changes in the hosts' checkouts (listed in the report) instead of refusing (exit 13)",
        "step": "stop after the first batch (exit 15) and wait for --continue or --abort, from any machine",
        "continue": "continue the run that waits at a step: its remaining hosts, same commit and batch size",
        "abort": "roll back the run that waits at a step: its updated hosts return to their previous versions",
    },
    core_options=("hosts", "dry"),
)
def deploy(c, env=None, ref=None, batch=None, hosts=None, dry_run=False, yes=False, report=None, no_ssh=False, junit=None,
           branch=None, force=False, step=False, continue_=False, abort=False, verbose=False, quiet=False):
    """Roll a commit over the environment's hosts, batch by batch, with zero downtime."""
    cli = _session(c, verbose, quiet)
    cli.deploy(env, ref=ref, batch=batch, hosts=hosts, dry_run=dry_run, yes=yes, report=report, no_ssh=no_ssh, junit=junit,
               branch=branch, force=force, step=step, resume=continue_, abort=abort)


@task(help={"fail-at": "where the chosen host fails: update (nothing runs on it) or health (judged failed after it passed); default health",
            "host": "the host that fails: a name or instance id (default: the first of the second batch)",
            "alarm": "instead of a host's failure: this rollback alarm is set to ALARM after the first batch, then set back",
            "batch": "hosts out of service at once, as for deploy", "yes": "do not ask for confirmation on a terminal",
            "report": "write the JSON report, with the drill's findings and timings, to this path",
            "junit": "write a JUnit XML summary to this path"})
def drill(c, env=None, fail_at=None, host=None, alarm=None, batch=None, yes=False, report=None, junit=None, verbose=False, quiet=False):
    """Rehearse the safety net: redeploy the current version with a failure injected, check the rollback restored every host."""
    cli = _session(c, verbose, quiet)
    cli.drill(env, fail_at=fail_at, host=host, alarm=alarm, batch=batch, yes=yes, report=report, junit=junit)


@task(help={"json": "print one JSON document instead of a table"})
def status(c, env=None, json=False, verbose=False, quiet=False):
    """Show the lock, pause, unfinished run, last deploy, and each instance's version, health and balancer state."""
    cli = _session(c, verbose, quiet)
    cli.status(env, as_json=json)


@task(help={"replace": "comma-separated instance ids to re-pin with the keys AWS shows now (after checking they were rebuilt)"})
def keys(c, env=None, replace=None, verbose=False, quiet=False):
    """Show the host keys pinned per instance against the keys AWS vouches for; pin new instances, drop stale pins."""
    cli = _session(c, verbose, quiet)
    cli.keys(env, replace=replace)


@task(help={"force": "do not wait for the dead run's lock to expire",
            "report": "write a JSON report of the recovery rollout to this path",
            "junit": "write a JUnit XML summary to this path"})
def recover(c, env=None, force=False, report=None, junit=None, verbose=False, quiet=False):
    """Restore the fleet after a rollout that died: resume, roll back, re-register, unlock."""
    cli = _session(c, verbose, quiet)
    cli.recover(env, force=force, report=report, junit=junit)


@task(help={"to": "SHA or ref to return to (default: the previous successful version)",
            "batch": "hosts out of service at once: a count, a percentage or a ramp (1,10%,50%)", "yes": "do not ask for confirmation on a terminal",
            "report": "write a JSON report to this path", "junit": "write a JUnit XML summary to this path",
            "force": "redo hosts already on the target, and discard local changes in the hosts' checkouts instead of refusing (exit 13)"})
def rollback(c, env=None, to=None, batch=None, yes=False, report=None, junit=None, force=False, verbose=False, quiet=False):
    """Deploy the last successful version before the current one, through the same rolling path."""
    cli = _session(c, verbose, quiet)
    cli.rollback(env, to=to, batch=batch, yes=yes, report=report, junit=junit, force=force)


@task(help={"limit": "how many rollouts (default 20)", "json": "print JSON"})
def history(c, env=None, limit=None, json=False, verbose=False, quiet=False):
    """List the environment's recent rollouts: who, ref, SHA, start, result."""
    cli = _session(c, verbose, quiet)
    cli.history(env, limit=limit, as_json=json)


@task(help={"force": "required: remove the lock whoever holds it"})
def unlock(c, env=None, force=False, verbose=False, quiet=False):
    """Remove an environment's deploy lock (after checking its holder is dead)."""
    cli = _session(c, verbose, quiet)
    cli.unlock(env, force=force)


@task(help={"reason": "why; shown to anyone who tries to deploy"})
def pause(c, env=None, reason="", verbose=False, quiet=False):
    """Pause an environment: running rollouts stop after their batch, new ones are refused."""
    cli = _session(c, verbose, quiet)
    cli.pause(env, reason=reason)


@task()
def unpause(c, env=None, verbose=False, quiet=False):
    """Allow rollouts on a paused environment again."""
    cli = _session(c, verbose, quiet)
    cli.unpause(env)


@task()
def setup(c, env=None, verbose=False, quiet=False):
    """Create the shared state table (lock, journal, history) if it does not exist."""
    cli = _session(c, verbose, quiet)
    cli.setup(env)


@task()
def check(c, env=None, verbose=False, quiet=False):
    """Validate the environment's inventory offline (no AWS, no SSH): exit 0, or 3 with what is wrong."""
    cli = _session(c, verbose, quiet)
    cli.check(env)


@task(help={"ref": "branch, tag or SHA to deploy (required)",
            "id": "request id, for idempotent retries (default: a new one)",
            "wait": "wait for the worker's result and exit with the deploy's exit code",
            "timeout": "seconds to wait with --wait (default 3600)"})
def enqueue(c, env=None, ref=None, id=None, wait=False, timeout=None, verbose=False, quiet=False):
    """Queue a signed deploy request for a worker inside the network (CI needs no SSH access)."""
    cli = _session(c, verbose, quiet)
    cli.enqueue(env, ref, request_id=id, wait=wait, timeout=timeout)


@task(help={"once": "stop after one request",
            "idle-timeout": "stop after this many seconds without a request (default: never)",
            "wait": "long-poll seconds per receive, 0 to 20 (default 20)",
            "status-every": "publish the environment's status for `fab ui` every this many seconds (default 0: never)"})
def worker(c, env=None, once=False, idle_timeout=None, wait=None, status_every=None, verbose=False, quiet=False):
    """Take queued deploy requests one at a time and run them (run it inside the network)."""
    cli = _session(c, verbose, quiet)
    cli.work(env, once=once, idle_timeout=idle_timeout, wait=wait, status_every=status_every)


@task(help={"env": "environments to show, comma-separated (required)",
            "bind": "address to listen on (default 127.0.0.1)", "port": "port (default 8765; 0 picks a free one)",
            "trusted-header": "take the user from this header, set by an authenticating proxy, instead of a token"})
def ui(c, env=None, bind=None, port=None, trusted_header=None, verbose=False, quiet=False):
    """Serve the deployer's page: what runs where, live; pause, deploy and roll back through the queue."""
    cli = _session(c, verbose, quiet)
    cli.ui(env, bind=bind, port=port, trusted_header=trusted_header)


@task(help={"env": "name of the new environment: writes inventories/NAME.yml (required)",
            "region": "the environment's AWS region (required)",
            "endpoint-url": "an AWS-compatible endpoint, with its scheme", "profile": "shared-config profile for AWS",
            "stack": "find the instances through this CloudFormation stack",
            "tags": "KEY=VALUE,... carried by every instance of the environment (required without --stack)",
            "address": "instance attribute to connect to (default PrivateIpAddress)",
            "bastion-tags": "KEY=VALUE,... of the one bastion instance", "bastion-host": "the bastion's address instead",
            "bastion-address": "the bastion's attribute with --bastion-tags (default PublicIpAddress)",
            "ssh-user": "SSH user on the hosts", "ssh-key": "private key file", "known-hosts": "known_hosts file",
            "repository": "the app's git repository", "branch": "deployed without --ref (default main)",
            "path": "the app's checkout on the hosts", "pid-file": "the app's primary pid file on the hosts",
            "signal": "sent to the primary on reload: HUP, USR1 or USR2 (default HUP)",
            "reload-command": "reload command instead of a pid file", "health-port": "port of /health and /version on the hosts"})
def init(c, env=None, region=None, endpoint_url=None, profile=None, stack=None, tags=None, address=None, bastion_tags=None,
         bastion_host=None, bastion_address=None, ssh_user=None, ssh_key=None, known_hosts=None, repository=None, branch=None,
         path=None, pid_file=None, signal=None, reload_command=None, health_port=None, verbose=False, quiet=False):
    """Write a new environment's commented inventory from what AWS shows and what you answer, then check it."""
    given = {k: v for k, v in locals().items() if k not in ("c", "env", "verbose", "quiet")}
    cli = _session(c, verbose, quiet)
    cli.init(env, given)


TASKS = (deploy, drill, status, keys, recover, rollback, history, pause, unpause, unlock, setup, check, enqueue, worker, ui, init)


def namespace() -> Collection:
    """A new Collection of rollout's tasks; under `fab`, the running program also gets rollout's argument rules."""
    program.adopt()
    return Collection(*TASKS)
