"""rollout's tasks. Each parses its arguments and calls the package; `fab -l` lists them."""

from fabric import task
from invoke import Collection

from rollout import cli


@task(
    help={
        "env": "environment: the name of a file in inventories/ (required)",
        "ref": "branch, tag or SHA to deploy (default: the environment's branch)",
        "batch": "hosts out of service at once: a count (2) or a percentage (25%); default 1",
        "hosts": "only these instances: comma-separated ids, names or addresses",
        "dry-run": "print the full plan and change nothing",
        "no-ssh": "with --dry-run: plan from AWS alone, contacting no host (versions unknown)",
        "yes": "do not ask for confirmation on a terminal",
        "report": "write a JSON report of the rollout to this path",
        "junit": "write a JUnit XML summary (one test case per host) to this path",
        "branch": "personal deploy: this branch's head to its developer's environment (ENV@USER)",
    }
)
def deploy(c, env, ref=None, batch=None, hosts=None, dry_run=False, yes=False, report=None, no_ssh=False, junit=None,
           branch=None):
    """Roll a commit over the environment's hosts, batch by batch, with zero downtime."""
    cli.deploy(env, ref=ref, batch=batch, hosts=hosts, dry_run=dry_run, yes=yes, report=report, no_ssh=no_ssh, junit=junit,
               branch=branch)


@task(help={"env": "environment name (required)", "json": "print one JSON document instead of a table"})
def status(c, env, json=False):
    """Show each instance's address, served version, health and balancer state."""
    cli.status(env, as_json=json)


@task(help={"env": "environment name (required)", "force": "do not wait for the dead run's lock to expire",
            "report": "write a JSON report of the recovery rollout to this path",
            "junit": "write a JUnit XML summary to this path"})
def recover(c, env, force=False, report=None, junit=None):
    """Restore the fleet after a rollout that died: resume, roll back, re-register, unlock."""
    cli.recover(env, force=force, report=report, junit=junit)


@task(help={"env": "environment name (required)", "to": "SHA or ref to return to (default: the previous successful version)",
            "batch": "hosts out of service at once", "yes": "do not ask for confirmation on a terminal",
            "report": "write a JSON report to this path", "junit": "write a JUnit XML summary to this path"})
def rollback(c, env, to=None, batch=None, yes=False, report=None, junit=None):
    """Deploy the last successful version before the current one, through the same rolling path."""
    cli.rollback(env, to=to, batch=batch, yes=yes, report=report, junit=junit)


@task(help={"env": "environment name (required)", "limit": "how many rollouts (default 20)", "json": "print JSON"})
def history(c, env, limit=20, json=False):
    """List the environment's recent rollouts: who, ref, SHA, start, result."""
    cli.history(env, limit=limit, as_json=json)


@task(help={"env": "environment name (required)", "force": "required: remove the lock whoever holds it"})
def unlock(c, env, force=False):
    """Remove an environment's deploy lock (after checking its holder is dead)."""
    cli.unlock(env, force=force)


@task(help={"env": "environment name (required)", "reason": "why; shown to anyone who tries to deploy"})
def pause(c, env, reason=""):
    """Pause an environment: running rollouts stop after their batch, new ones are refused."""
    cli.pause(env, reason=reason)


@task(help={"env": "environment name (required)"})
def unpause(c, env):
    """Allow rollouts on a paused environment again."""
    cli.unpause(env)


@task(help={"env": "environment name (required)"})
def setup(c, env):
    """Create the shared state table (lock, journal, history) if it does not exist."""
    cli.setup(env)


@task(help={"env": "environment name (required)", "ref": "branch, tag or SHA to deploy (required)",
            "id": "request id, for idempotent retries (default: a new one)",
            "wait": "wait for the worker's result and exit with the deploy's exit code",
            "timeout": "seconds to wait with --wait (default 3600)"})
def enqueue(c, env, ref, id=None, wait=False, timeout=3600):
    """Queue a signed deploy request for a worker inside the network (CI needs no SSH access)."""
    cli.enqueue(env, ref, request_id=id, wait=wait, timeout=timeout)


@task(help={"env": "environment name (required)", "once": "stop after one request",
            "idle-timeout": "stop after this many seconds without a request (default: never)",
            "wait": "long-poll seconds per receive (default 20)"})
def worker(c, env, once=False, idle_timeout=0, wait=20):
    """Take queued deploy requests one at a time and run them (run it inside the network)."""
    cli.work(env, once=once, idle_timeout=idle_timeout, wait=wait)


@task(name="up", help={"hosts": "number of application hosts (default 4, up to 100)",
                       "personal": "comma-separated developers who each get a personal host (Deployment=dev-USER)",
                       "app": "git (default), or container: also run the app as a podman container on every host"})
def sandbox_up(c, hosts=4, personal="", app="git"):
    """Bring up (or repair) the local sandbox fleet: bastion, hosts, HAProxy, moto (and registry + containers)."""
    from sandbox import tasks

    tasks.up(int(hosts), personal, app)


@task(name="down")
def sandbox_down(c):
    """Remove every namespace, process and file of the local sandbox."""
    from sandbox import tasks

    tasks.down()


@task(name="status")
def sandbox_status(c):
    """Show the sandbox's servers and each host's state."""
    from sandbox import tasks

    tasks.status()


ns = Collection(deploy, status, recover, rollback, history, pause, unpause, unlock, setup, enqueue, worker)
ns.add_collection(Collection("sandbox", sandbox_up, sandbox_down, sandbox_status))
