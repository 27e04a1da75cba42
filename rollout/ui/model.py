"""Pure views of the state for the page: ETA, per-host timelines, what is desired, where builds stand."""

from __future__ import annotations

import math
from typing import Optional

from rollout.core.vocabulary import Kind, Phase, Result

# Journal records that close the out-of-service window of the batch before them.
_WINDOW_ENDS = (Kind.DEREGISTERED, Kind.REGISTERED, Kind.STOPPED, Kind.END, Kind.RESUMED, Kind.ALARMS_ENABLED)


def batches_started(records: list[dict]) -> list[dict]:
    """The deregistered records of a run, in order: one per batch started."""
    return [r for r in records if r.get("type") == Kind.DEREGISTERED]


def eta(records: list[dict], now: float) -> dict:
    """{done, total, seconds} for a running deploy: batches finished, batches planned, seconds left (None if unknown)."""
    start = next((r for r in records if r.get("type") == Kind.START), None)
    if start is None:
        return {"done": 0, "total": 0, "seconds": None}
    size = max(1, int(start["data"].get("batch_size") or 1))
    total = math.ceil(len(start["data"].get("hosts", [])) / size)
    started = [r for r in batches_started(records) if r["data"].get("phase", Phase.DEPLOY) == Phase.DEPLOY]
    done = max(0, len(started) - 1)
    if len(started) < 2:
        return {"done": done, "total": total, "seconds": None}
    per_batch = (started[-1]["at"] - started[0]["at"]) / done
    left = per_batch * (total - done) - (now - started[-1]["at"])
    return {"done": done, "total": total, "seconds": max(0.0, round(left, 1))}


def timeline(records: list[dict], details: Optional[list[dict]] = None, now: Optional[float] = None,
             width: int = 640) -> dict:
    """Each planned host's out-of-service windows, scaled to `width` pixels over the run.

    A window starts at its batch's deregistered record and ends after the host's recorded
    out-of-service time (finished runs), else at the next record, else `now` (a running batch).
    Returns {seconds, rows: [{label, windows: [{x, w, start, seconds, phase}]}], ticks: [{x, label}]}.
    """
    start = next((r for r in records if r.get("type") == Kind.START), None)
    if start is None:
        return {"seconds": 0, "rows": [], "ticks": []}
    t0 = start["at"]
    t1 = max([r["at"] for r in records] + ([now] if now is not None else []))
    span = max(t1 - t0, 1e-3)
    oos = {d["instance_id"]: d.get("out_of_service_seconds") for d in details or []}
    hosts = start["data"].get("hosts", [])
    windows: dict[str, list] = {h["instance_id"]: [] for h in hosts}
    deregs = batches_started(records)
    for i, r in enumerate(records):
        if r.get("type") != Kind.DEREGISTERED:
            continue
        nxt = next((n["at"] for n in records[i + 1:] if n.get("type") in _WINDOW_ENDS), None)
        for iid in r["data"].get("hosts", []):
            end = nxt if nxt is not None else (now if now is not None else t1)
            if oos.get(iid) is not None and _only_window(deregs, iid):
                end = r["at"] + float(oos[iid])  # measured by the run itself
            windows.setdefault(iid, []).append((r["at"], max(end, r["at"]), r["data"].get("phase", Phase.DEPLOY.value)))
    rows = []
    for h in hosts:
        iid = h["instance_id"]
        rows.append({"label": h.get("name") or iid, "instance_id": iid, "windows": [
            {"x": round((a - t0) / span * width, 1), "w": max(2.0, round((b - a) / span * width, 1)), "start": round(a - t0, 2),
             "seconds": round(b - a, 2), "phase": phase} for a, b, phase in windows.get(iid, [])]})
    step = _tick_step(span)
    ticks = [{"x": round(k * step / span * width, 1), "label": f"{k * step:g}s"} for k in range(int(span // step) + 1)]
    return {"seconds": round(span, 2), "rows": rows, "ticks": ticks}


def _only_window(deregs: list[dict], iid: str) -> bool:
    return sum(iid in d["data"].get("hosts", []) for d in deregs) == 1


def _tick_step(span: float) -> float:
    """A round tick interval giving at most about 8 ticks over `span` seconds."""
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600):
        if span / step <= 8:
            return step
    return 7200


def desired(history: list[dict], active_start: Optional[dict]) -> Optional[str]:
    """The version the environment should run: the running run's target, else the newest successful run's."""
    if active_start is not None:
        return active_start["data"].get("sha")
    return next((r.get("sha") for r in history if r.get("result") == Result.SUCCEEDED), None)


def builds(refs: dict[str, str], limit: int = 30) -> list[dict]:
    """Deployable builds from `git ls-remote` refs: branch heads, then tags (newest-looking names first)."""
    heads = sorted((n.removeprefix("refs/heads/"), s) for n, s in refs.items() if n.startswith("refs/heads/"))
    tags = sorted(((n.removeprefix("refs/tags/"), s) for n, s in refs.items() if n.startswith("refs/tags/")), reverse=True)
    return [{"name": n, "sha": s} for n, s in (heads + tags)[:limit]]


def deployed_builds(history: list[dict], limit: int = 30) -> list[dict]:
    """Builds the history has deployed (newest first, each SHA or digest once): for apps without a git repository."""
    seen: dict[str, str] = {}
    for r in history:
        if r.get("sha") and r["sha"] not in seen and not str(r.get("ref", "")).startswith("recover "):
            seen[r["sha"]] = r.get("ref") or r["sha"]
    return [{"name": name, "sha": sha} for sha, name in list(seen.items())[:limit]]


def standing(builds_: list[dict], histories: dict[str, list[dict]]) -> list[dict]:
    """Each build with, per environment, the result of the newest run of its SHA there ('' if never run)."""
    out = []
    for b in builds_:
        where = {env: next((r.get("result", "") for r in runs if r.get("sha") == b["sha"]), "") for env, runs in histories.items()}
        out.append({**b, "envs": where})
    return out


def duration(started: Optional[str], ended: Optional[str]) -> str:
    """A run's wall time from its ISO 8601 start and end, as '12.3s' or '4min 05s'."""
    from datetime import datetime

    if not started or not ended:
        return "-"
    s = (datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds()
    return f"{s:.1f}s" if s < 120 else f"{int(s // 60)}min {int(s % 60):02d}s"
