"""What a sandbox instance prints to its EC2 console when it boots: cloud-init's host key blocks.

sandbox/awsgate.py serves the file as the instance's GetConsoleOutput, so rollout reads the
keys of that host's own sshd where it would on EC2.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from rollout.core.hostkeys import console_keys
from sandbox import topology as topo


def text(public_keys: list[str], hostname: str) -> str:
    """The console lines cloud-init writes at the end of a first boot (fingerprints, then the keys)."""
    prints = []
    for key in public_keys:
        out = subprocess.run(["ssh-keygen", "-lf", "-"], input=key, capture_output=True, text=True, check=True).stdout
        prints.append(f"ec2: {out.split(' ', 2)[0]} {out.split()[1]} root@{hostname} ({out.rsplit('(', 1)[-1].strip()}")
    return ("[    4.02] cloud-init[412]: Cloud-init v. 22.2.2 running 'modules:final'\n"
            "ec2: \nec2: #############################################################\n"
            "ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----\n" + "\n".join(prints) + "\n"
            "ec2: -----END SSH HOST KEY FINGERPRINTS-----\nec2: #############################################################\n"
            "-----BEGIN SSH HOST KEY KEYS-----\n" + "".join(f"{' '.join(k.split()[:2])} root@{hostname}\n" for k in public_keys)
            + "-----END SSH HOST KEY KEYS-----\n"
            f"[    4.31] cloud-init[412]: Cloud-init v. 22.2.2 finished. Datasource DataSourceEc2Local.\n")


def boot(instance_id: str, sshd_dir: Path, hostname: str) -> bool:
    """Add a boot's output to the console of `instance_id`, unless its last boot showed the same keys; True if added.

    The keys are those of the sshd whose host keys are in `sshd_dir`. A console keeps every boot,
    so an instance whose keys changed (its sshd dir was made again) shows the old block, then the new.
    """
    keys = [" ".join(p.read_text().split()[:2]) for p in sorted(sshd_dir.glob("ssh_host_*_key.pub"))]
    topo.CONSOLE_DIR.mkdir(parents=True, exist_ok=True)
    path = topo.CONSOLE_DIR / instance_id
    before = path.read_text() if path.exists() else ""
    if set(console_keys(before)) == set(keys):
        return False
    tmp = path.with_suffix(".tmp")
    tmp.write_text(before + text(keys, hostname))
    tmp.replace(path)
    return True
