"""rollout's tasks (from rollout.cli.tasks), plus the sandbox's for this repository; `fab -l` lists them."""

from invoke import Collection
from invoke.exceptions import Exit

from rollout.cli.tasks import namespace, task
from rollout.config.args import whole
from rollout.core.errors import UsageError


def count(value, flag: str, default: int, **bounds) -> int:
    """A sandbox task's number option, or one line and exit 2."""
    try:
        return whole(value, flag, default, **bounds)
    except UsageError as exc:
        raise Exit(f"rollout: {exc}", code=exc.exit_code) from None


@task(name="up", help={"hosts": "number of application hosts (default 4, up to 100)",
                       "personal": "comma-separated developers who each get a personal host (Deployment=dev-USER)",
                       "app": "git (default), or container: also run the app as a podman container on every host"})
def sandbox_up(c, hosts=None, personal="", app="git"):
    """Bring up (or repair) the local sandbox fleet: bastion, hosts, HAProxy, moto (and registry + containers)."""
    from sandbox import tasks

    tasks.up(count(hosts, "--hosts", 4, minimum=1, maximum=100), personal, app)


@task(name="down")
def sandbox_down(c):
    """Remove every namespace, process and file of the local sandbox."""
    from sandbox import tasks

    tasks.down()


@task(name="scale", help={"add": "launch this many new hosts (new instances, namespaces and host keys), booted through"
                                  " examples/boot/user-data.sh",
                           "remove": "terminate this many of the last hosts"})
def sandbox_scale(c, add=None, remove=None):
    """Scale the sandbox out or in as its Auto Scaling group would (new hosts boot the desired version)."""
    from sandbox import tasks

    tasks.scale(count(add, "--add", 0), count(remove, "--remove", 0))


@task(name="status")
def sandbox_status(c):
    """Show the sandbox's servers and each host's state."""
    from sandbox import tasks

    tasks.status()


ns = namespace()
ns.add_collection(Collection("sandbox", sandbox_up, sandbox_down, sandbox_scale, sandbox_status))
