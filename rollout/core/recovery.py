"""What restoring the fleet takes, from the journals of an unfinished run and its recoveries. Pure."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Optional

from rollout.core.vocabulary import Kind, Phase


@dataclass(frozen=True)
class Assessment:
    """What `recover` must undo for one unfinished run and every recovery that worked on it."""

    run_id: str
    chain: tuple[str, ...]
    direction: str
    batch_size: int
    group: Optional[str]
    resume: tuple[str, ...]
    alarms: tuple[str, ...]
    targets: dict[str, str] = field(default_factory=dict)
    last_step: str = ""
    #: (kind, name) of balancers found from membership by any run of the chain: recover uses them
    #: even when no instance is registered in them any more.
    balancers: tuple[tuple[str, str], ...] = ()

    @property
    def version(self) -> Optional[str]:
        """The version most hosts go back to."""
        counts = Counter(self.targets.values())
        return counts.most_common(1)[0][0] if counts else None


def start_record(*, run_id: str, ref: str, who: str, phase: Phase, batch_size: int, hosts: list[dict],
                 sha: Optional[str] = None, balancers: tuple = (), recovering: tuple[str, ...] = (),
                 decided: Optional[dict[str, str]] = None) -> dict:
    """A run's `start` record, as `assess` reads it back: who ran what, in which direction, the batch
    size, each host (instance_id, address, name, version, target), the balancers found from
    membership, and for a recovery the chain it joins and the version it decided per host."""
    start = {"run_id": run_id, "ref": ref}
    if sha is not None:
        start["sha"] = sha
    start.update({"who": who, "direction": phase.value, "batch_size": batch_size, "hosts": hosts})
    if balancers:  # recover must find them even once no instance is left registered
        start["balancers"] = [list(kn) for kn in balancers]
    if recovering:
        start.update(recovering=list(recovering), decided=dict(decided or {}))
    return start


def _touched(kind: str, data: dict) -> list[str]:
    return list(data["hosts"]) if kind == Kind.DEREGISTERED else [data["instance_id"]] if kind == Kind.RESTORED else []


def _nothing(kind: str, data: dict) -> list[str]:
    return []


# What each kind of record says about hosts that may be out of service or changed. Every
# kind the runner writes is here (a unit test checks it); process and alarm kinds are
# folded separately below.
READS = {
    Kind.START: _nothing,
    Kind.SUSPENDED: _nothing,
    Kind.ALARMS_DISABLED: _nothing,
    Kind.DEREGISTERED: _touched,
    Kind.REGISTERED: _nothing,
    Kind.RESTORED: _touched,
    Kind.ALARMS_ENABLED: _nothing,
    Kind.RESUMED: _nothing,
    Kind.STEPPED: _nothing,
    Kind.CONTINUED: _nothing,
    Kind.STOPPED: _nothing,
    Kind.END: _nothing,
}


def assess(chain: list[tuple[str, list[dict]]]) -> Assessment:
    """The assessment of an unfinished run from its journal and its recoveries' journals, in order.

    `chain` is [(run id, records in order)], the unfinished run first. Every host that any of
    them took out of service or changed goes back to the version the first run decided: the
    version it had when that run started (a run that was itself a recovery of an older
    format recorded its targets instead). Processes and alarm actions are those suspended or
    disabled by any of them and not resumed or re-enabled since, in the order they happened.
    """
    first_id, first = chain[0]
    start = next((r["data"] for r in first if r["type"] == Kind.START), None)
    ids = tuple(run for run, _ in chain)
    if start is None:
        return Assessment(first_id, ids, Phase.DEPLOY, 1, None, (), ())
    suspended: list[str] = []
    alarms_off: list[str] = []
    group = None
    touched: list[str] = []
    decided: dict[str, str] = {}
    balancers: list[tuple[str, str]] = []
    for _, records in chain:
        for r in records:
            kind, data = Kind(r["type"]), r["data"]
            if kind == Kind.START:
                balancers += [(k, n) for k, n in data.get("balancers", []) if (k, n) not in balancers]
            if kind == Kind.START and data.get("decided"):
                for iid, v in data["decided"].items():
                    decided.setdefault(iid, v)
            elif kind == Kind.SUSPENDED:
                group = data["group"]
                suspended += [p for p in data["processes"] if p not in suspended]
            elif kind == Kind.RESUMED:
                suspended = [p for p in suspended if p not in data["processes"]]
            elif kind == Kind.ALARMS_DISABLED:
                alarms_off += [a for a in data["names"] if a not in alarms_off]
            elif kind == Kind.ALARMS_ENABLED:
                alarms_off = [a for a in alarms_off if a not in data["names"]]
            touched += [h for h in READS[kind](kind, data) if h not in touched]
    hosts = {h["instance_id"]: h for h in start["hosts"]}
    key = "target" if start.get("direction") == Phase.RECOVER else "version"
    first_decided = {iid: h[key] for iid, h in hosts.items() if h.get(key)}
    targets = {}
    for iid in touched:
        version = first_decided.get(iid) or decided.get(iid)
        if version:
            targets[iid] = version
    last = chain[-1][1] if chain[-1][1] else first
    return Assessment(
        run_id=first_id,
        chain=ids,
        direction=start.get("direction", Phase.DEPLOY),
        batch_size=int(start.get("batch_size", 1)),
        group=group,
        resume=tuple(suspended),
        alarms=tuple(alarms_off),
        targets=targets,
        last_step=last[-1]["type"] if last else "",
        balancers=tuple(balancers),
    )


#: Balancer states of a host that takes traffic (ELB, ALB target group, HAProxy); any other, or none, is out of service.
SERVING = frozenset({"InService", "healthy", "UP"})


def out_of_service(host_ids: list[str], members: list[dict[str, str]]) -> set[str]:
    """The hosts that some balancer (id -> state, one dict per balancer) does not send traffic to."""
    return {h for h in host_ids if any(m.get(h) not in SERVING for m in members)}


def order(host_ids: list[str], out_of_service: set[str]) -> list[str]:
    """Hosts to restore, those already out of service first, each group in the given order."""
    return [h for h in host_ids if h in out_of_service] + [h for h in host_ids if h not in out_of_service]

