from xml.etree import ElementTree as ET

from rollout.core import junit
from rollout.core.report import HostRecord, Report, StepRecord


def test_each_host_is_a_test_case_with_its_outcome():
    r = Report(env="staging", ref="main", sha="a" * 40, run_id="r1", result="rolled_back", exit_code=9, duration_seconds=3.5)
    r.hosts = [
        HostRecord("i-1", "h001", "10.0.0.1", 1, "b" * 40, "a" * 40, result="updated", steps=[StepRecord("reload", 0.2, True)]),
        HostRecord("i-2", "h002", "10.0.0.2", 2, "b" * 40, "b" * 40, result="failed, restored", error="health: 503",
                   steps=[StepRecord("health", 20.0, False, "503")]),
        HostRecord("i-3", "h003", "10.0.0.3", 3, "b" * 40, result="pending"),
    ]
    suite = ET.fromstring(junit.render(r))
    assert suite.get("tests") == "3" and suite.get("failures") == "1" and suite.get("skipped") == "1"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["h001"].find("failure") is None and cases["h001"].find("skipped") is None
    assert cases["h002"].find("failure").get("message") == "failed, restored: health: 503"
    assert "health FAILED 20.000s 503" in cases["h002"].find("failure").text
    assert cases["h003"].find("skipped") is not None
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["result"] == "rolled_back" and props["exit_code"] == "9" and props["sha"] == "a" * 40
