"""The Slack messages of a run, built from its plan and report: text only, sent by rollout.adapters.slack."""

from __future__ import annotations


from rollout.core import policy
from rollout.core.report import Report, short
from rollout.core.vocabulary import HostResult


def started(plan, who: str) -> str:
    """The start message, which the progress messages repeat as their first line."""
    n = len(plan.hosts)
    sizes = ", ".join(str(policy.batch_size(plan.ramp, i, n)) for i in range(len(plan.ramp)))
    return f":rocket: {plan.env}: deploying {short(plan.sha)} ({plan.ref}) to {n} hosts in batches of {sizes} — {who}"


def progress(head: str, done: int, count: int, report: Report, failed_now: int) -> str:
    """After deploy batch `done` of `count`: how many hosts are updated so far, and how many failed in this batch."""
    updated = sum(1 for h in report.hosts if h.result == HostResult.UPDATED)
    return (f"{head}\nbatch {done} of {count} done: {updated} of {len(report.hosts)} hosts updated"
            + (f", {failed_now} failed in this batch" if failed_now else ""))


def rolling_back(env: str, hosts: int, why: str) -> str:
    return f":rewind: {env}: rolling back {hosts} host(s): {why}"


def finished(report: Report, failed: bool) -> str:
    """The final message: the headline, the error if the run failed, and the per-host summary."""
    rows = "\n".join("  ".join(r) for r in report.summary_rows())
    icon = ":x:" if failed else ":white_check_mark:"
    return f"{icon} {report.headline()}" + (f"\n{report.error}" if failed else "") + f"\n```{rows}```"
