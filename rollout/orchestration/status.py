"""`status`: each instance's address, served version, health and balancer state; the group's processes."""

from __future__ import annotations

import time
from typing import Optional

from rich.console import Console
from rich.table import Table

from rollout.adapters import health
from rollout.adapters import desired as desired_ssm
from rollout.core.convergence import differs
from rollout.core.errors import ConnectError, HostKeyError
from rollout.core.report import short
from rollout.orchestration.environment import Environment


def collect(env: Environment) -> dict:
    """The environment's state as one JSON-ready document."""
    inv = env.inventory
    hosts = env.discover()
    reach: dict[str, ConnectError] = {}  # instance id -> why SSH failed
    try:
        env.fleet.open_bastion()
        bastion_ok = True
    except ConnectError as exc:
        bastion_ok, bastion_error = False, str(exc)

    def probe(address: str) -> health.Observation:
        return health.probe(lambda: env.fleet.host_channel(address, inv.health.port), inv.health)

    if bastion_ok:
        outcome = env.fleet.each([h.address for h in hosts], probe)
        reach = {h.instance_id: outcome.failed[h.address] for h in hosts if h.address in outcome.failed}
        seen = {h.instance_id: outcome.succeeded[h.address] if h.address in outcome.succeeded
                else health.Observation(None, None, "ssh unreachable") for h in hosts}
    else:
        seen = {h.instance_id: health.Observation(None, None, "bastion unreachable") for h in hosts}
    lb_states = {f"{lb.kind}:{lb.name}": lb.members() for lb in env.balancers}
    want = desired_ssm.read(env.aws, inv.desired_version.parameter) if inv.desired_version else None
    doc = {
        "env": inv.name,
        "desired": None if want is None else {"version": want.version, "run_id": want.run_id, "ref": want.ref},
        "bastion": {"address": env.fleet.bastion.host, "reachable": bastion_ok, **({} if bastion_ok else {"error": bastion_error})},
        "hosts": [
            {
                "instance_id": h.instance_id,
                "name": h.name,
                "address": h.address,
                **_ssh(bastion_ok, reach.get(h.instance_id)),
                "version": seen[h.instance_id].version,
                "health": seen[h.instance_id].status,
                "balancers": {name: states.get(h.instance_id, "not registered") for name, states in lb_states.items()},
                "differs_from_desired": differs(seen[h.instance_id].version, want.version if want else None),
            }
            for h in hosts
        ],
        "autoscaling_group": None,
    }
    if env.group is not None:
        doc["autoscaling_group"] = {"name": env.group.name, "suspended_processes": sorted(env.group.suspended())}
    return doc


def _ssh(bastion_ok: bool, error: Optional[ConnectError]) -> dict:
    """A host's SSH state for status: ok, unreachable, or host key refused (a possible interception), with the reason."""
    if not bastion_ok:
        return {"ssh": "unreachable"}
    if error is None:
        return {"ssh": "ok"}
    return {"ssh": "host key refused" if isinstance(error, HostKeyError) else "unreachable", "ssh_error": str(error)}


def _iso(epoch) -> Optional[str]:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(epoch))) if epoch is not None else None


def state(lock: Optional[dict], pause: Optional[dict], unfinished: Optional[str], last: Optional[dict],
          stepped: Optional[dict] = None) -> dict:
    """What blocks or tells about a deploy, from the state table's items, as JSON-ready fields.

    `stepped` is the unfinished run's `stepped` record when it waits at a step (--step).
    """
    return {
        "lock": None if not lock else {"who": lock.get("who"), "host": lock.get("host"), "run_id": lock.get("run_id"),
                                       "ref": lock.get("ref"), "since": _iso(lock.get("since")), "ttl": lock.get("ttl")},
        "pause": None if not pause else {"who": pause.get("who"), "reason": pause.get("reason"), "since": _iso(pause.get("since"))},
        "unfinished_run": unfinished,
        "stepped": None if not stepped else {"run_id": unfinished, "after_batch": stepped.get("after_batch"),
                                             "who": stepped.get("who"), "started": stepped.get("started"),
                                             "done": len(stepped.get("done") or [])},
        "last_deploy": None if not last else {k: last.get(k) for k in ("run_id", "who", "ref", "sha", "started", "ended", "result", "exit_code")},
    }


def state_lines(doc: dict) -> list[str]:
    """The state section of the table view, one line per item."""
    st = doc.get("state") or {}
    if "error" in st:
        return [f"state table: {st['error']}"]
    lock, pause, last = st.get("lock"), st.get("pause"), st.get("last_deploy")
    env = doc["env"]
    ttl = f"{float(lock['ttl']):g}s (its ttl)" if lock and lock.get("ttl") is not None else "a ttl"
    return [
        f"lock: held by {lock['who']} on {lock['host']} (run {lock['run_id']}, ref {lock['ref']}) since {lock['since']} by its clock;"
        f" judged stale only after {ttl} without renewal"
        if lock else "lock: free",
        f"pause: paused by {pause['who']} since {pause['since']}: {pause['reason']}" if pause else "pause: not paused",
        (f"stepped run: {st['unfinished_run']} by {st['stepped']['who']} waits after batch {st['stepped']['after_batch']}"
         f" ({st['stepped']['done']} host(s) updated, every host serving): fab deploy --continue --env={env}, or"
         f" fab deploy --abort --env={env}") if st.get("stepped") else
        f"unfinished run: {st['unfinished_run']}; restore the fleet with: fab recover --env={env}" if st.get("unfinished_run") else "unfinished run: none",
        f"last deploy: {last['result']} {short(last['sha'], 'nothing')} ({last['ref']}) by {last['who']}, {last['started']} to {last['ended']} (run {last['run_id']})"
        if last else "last deploy: none recorded",
    ]


def desired_lines(doc: dict) -> list[str]:
    """The desired version, and the hosts that serve another one (what an instance launched now would not match)."""
    want = doc.get("desired")
    if not want:
        return []
    off = [h for h in doc["hosts"] if h.get("differs_from_desired")]
    return [f"desired version: {short(want['version'])} ({want['ref']}, run {want['run_id']})",
            f"hosts not on the desired version: {', '.join(h['name'] or h['instance_id'] for h in off)}" if off
            else "hosts not on the desired version: none"]


def render(doc: dict, console: Console) -> None:
    t = Table(title=f"{doc['env']}: {len(doc['hosts'])} instances", title_justify="left")
    lbs = list(doc["hosts"][0]["balancers"]) if doc["hosts"] else []
    for col in ["instance", "name", "address", "ssh", "version", "health", *lbs]:
        t.add_column(col)
    for h in doc["hosts"]:
        version = (short(h["version"]) if h["version"] else "-") + (" (not desired)" if h.get("differs_from_desired") else "")
        t.add_row(h["instance_id"], h["name"], h["address"], h["ssh"], version, str(h["health"] or "-"),
                  *[h["balancers"][lb] for lb in lbs])
    for line in state_lines(doc) + desired_lines(doc):
        console.print(line, markup=False, highlight=False)
    console.print(t)
    g = doc["autoscaling_group"]
    if g:
        console.print(f"Auto Scaling group {g['name']}: suspended processes: {', '.join(g['suspended_processes']) or 'none'}")
    for h in doc["hosts"]:
        if h.get("ssh_error"):
            console.print(f"{h['name'] or h['instance_id']}: {h['ssh_error']}", markup=False, highlight=False)
    if not doc["bastion"]["reachable"]:
        console.print(f"[red]bastion unreachable[/]: {doc['bastion']['error']}")
