"""Post-deploy hooks: the inventory's `post_deploy` commands, run on the controller after a successful rollout."""

from __future__ import annotations

import os
import subprocess
from typing import Callable, Sequence

from rollout.core.report import tail


def post_deploy(commands: Sequence[str], *, env: str, sha: str, ref: str,
                say: Callable[[str], None], warn: Callable[[str], None]) -> None:
    """Run each command in a shell with DEPLOY_ENV, DEPLOY_SHA and DEPLOY_REF set; a failure is a warning."""
    variables = {**os.environ, "DEPLOY_ENV": env, "DEPLOY_SHA": sha, "DEPLOY_REF": ref}
    for command in commands:
        done = subprocess.run(command, shell=True, env=variables, capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0:
            warn(f"post-deploy `{command}` exited {done.returncode}: {tail(done.stderr or done.stdout)}")
        else:
            say(f"post-deploy `{command}` ok")
