"""A JUnit XML summary of a rollout, so that CI servers show each host as a test case."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

from rollout.core.report import Report, short
from rollout.core.vocabulary import HostResult

_PASSED = {HostResult.UPDATED}
_SKIPPED = {HostResult.PENDING}


def render(report: Report) -> str:
    """One <testsuite> for the rollout, one <testcase> per host; failures carry the host's error."""
    cases = []
    failures = skipped = 0
    for h in report.hosts:
        case = ET.Element("testcase", classname=f"rollout.{report.env}", name=h.name or h.instance_id,
                          time=f"{sum(s.seconds for s in h.steps):.3f}")
        if h.result in _SKIPPED:
            skipped += 1
            ET.SubElement(case, "skipped", message=f"not deployed ({report.result})")
        elif h.result not in _PASSED:
            failures += 1
            failure = ET.SubElement(case, "failure", message=f"{h.result}: {h.error}".rstrip(": "))
            failure.text = "\n".join(f"{s.step} {'ok' if s.ok else 'FAILED'} {s.seconds:.3f}s {s.detail}".rstrip() for s in h.steps)
        ET.SubElement(case, "system-out").text = (f"instance {h.instance_id} address {h.address} batch {h.batch}"
                                                   f" old {h.old_version or '-'} new {h.new_version or '-'}")
        cases.append(case)
    suite = ET.Element("testsuite", name=f"rollout {report.env} {short(report.sha)}", tests=str(len(cases)),
                       failures=str(failures), errors="0", skipped=str(skipped),
                       time=f"{report.duration_seconds or 0:.3f}", timestamp=report.started)
    props = ET.SubElement(suite, "properties")
    for key in ("env", "ref", "sha", "run_id", "who", "result", "exit_code"):
        ET.SubElement(props, "property", name=key, value=str(getattr(report, key)))
    suite.extend(cases)
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def write(report: Report, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(report))
