"""--report and --junit paths: refused up front when they cannot be written; a late failure is one warning."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rollout.core.errors import UsageError
from rollout.adapters.reportfiles import ReportFiles
from rollout.core.report import Report


def cases(tmp: Path):
    (tmp / "a-dir").mkdir()
    (tmp / "a-file").write_text("")
    ro = tmp / "read-only"
    ro.mkdir()
    ro.chmod(0o500)
    return [
        # report path, junit path, words of the error (None: accepted)
        ("/dev/null/r.json", None, "--report=/dev/null/r.json cannot be written: /dev/null is not a directory"),
        (None, "/dev/null/j.xml", "--junit=/dev/null/j.xml cannot be written"),
        (str(tmp / "a-dir"), None, "it is a directory"),
        (str(tmp / "a-file" / "r.json"), None, "a-file is not a directory"),
        (str(ro / "r.json"), None, "Permission denied" if os.geteuid() != 0 else None),
        (str(tmp / "new" / "deep" / "r.json"), str(tmp / "j.xml"), None),
        (str(tmp / "a-file"), None, None),  # an existing file is replaced
    ]


def test_report_paths_are_checked_before_anything(tmp_path):
    for report, junit, words in cases(tmp_path):
        files = ReportFiles.of(report, junit)
        if words is None:
            files.check()
            assert not [p for p in tmp_path.rglob("*.probe")]
        else:
            with pytest.raises(UsageError, match=words.replace("(", r"\(")) as caught:
                files.check()
            assert "\n" not in str(caught.value)


def test_a_write_that_fails_at_the_end_is_one_warning_and_the_other_file_is_still_written(tmp_path):
    report = Report(env="sandbox", ref="main", sha="a" * 40, result="rolled_back", exit_code=9)
    warnings = []
    ReportFiles.of("/dev/null/r.json", str(tmp_path / "j.xml")).write(report, warnings.append)
    assert len(warnings) == 1 and "--report=/dev/null/r.json" in warnings[0] and "exit 9" in warnings[0]
    assert (tmp_path / "j.xml").read_text().startswith("<?xml")
