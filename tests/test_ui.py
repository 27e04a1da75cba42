"""The deployer's page (`fab ui`) in a real browser (Debian's chromium, driven by Selenium), against the sandbox.

The page reaches no host: a worker started here publishes the status and carries out every action.
Screenshots of the main views go to $ROLLOUT_TEST_ARTIFACTS (default tests/artifacts/).
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests import fleetctl as f

pytestmark = [pytest.mark.fleet, pytest.mark.slow]
SECRET = {"ROLLOUT_QUEUE_SECRET": "queue-secret-for-ui-tests", "ROLLOUT_USER": "ana"}
ARTIFACTS = Path(os.environ.get("ROLLOUT_TEST_ARTIFACTS") or f.ROOT / "tests" / "artifacts")


def _start(inventories: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([f.FAB, *args], cwd=f.ROOT, env=f.fab_env(SECRET, inventories), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stop(proc: subprocess.Popen) -> str:
    """Stop a process this test started; an idle worker or page that does not exit soon is killed."""
    proc.terminate()
    try:
        out, err = proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=10)
    return out + err


@pytest.fixture
def page(request, healthy_fleet, new_commit, tmp_path):
    """(address, token) of the page; its worker and server are stopped afterwards.

    The app's install step takes a second per host (or the seconds given as the fixture's
    parameter), as a real one would, so that a rollout lasts long enough to be watched
    (the page reads the state every second).
    """
    install = int(getattr(request, "param", 1))
    inventories = f.write_inventory(tmp_path, lambda d: d["app"].update(install=f"sleep {install}"))
    worker = _start(inventories, "worker", "--env=sandbox", "--wait=1", "--status-every=2", "--idle-timeout=600")
    ui = _start(inventories, "ui", "--env=sandbox", "--port=0")
    try:
        first = ui.stdout.readline()
        m = re.search(r"(http://127\.0\.0\.1:\d+/)\?token=(\S+)", first)
        assert m, first + _stop(ui)
        yield m.group(1), m.group(2)
    finally:
        ui_out, worker_out = _stop(ui), _stop(worker)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "ui-worker.log").write_text(worker_out)
        (ARTIFACTS / "ui-server.log").write_text(ui_out)
    assert m.group(2) not in ui_out, "the token was printed again (the access log must not show it)"


@pytest.fixture
def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1100",
                "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
                "--disable-default-apps", "--disable-domain-reliability", "--disable-features=OptimizationHints,MediaRouter"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"ui-{name}.png"))


def until(driver, condition, timeout: float, what: str):
    """Wait for `condition(driver)`; the live section is replaced as events arrive, so stale reads are retried."""
    return WebDriverWait(driver, timeout, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: condition(d), message=what)


def text(driver, css: str) -> str:
    """The text of the first element matching `css` ('' if none), read in one step in the page."""
    return driver.execute_script("var e = document.querySelector(arguments[0]); return e ? e.innerText : '';", css)


def host_versions(driver) -> dict[str, str]:
    """Host name -> version shown, read in one step in the page."""
    return driver.execute_script("""
        var out = {};
        document.querySelectorAll('#hosts tr.host').forEach(function (r) {
            out[r.cells[0].innerText] = r.querySelector('.version').innerText; });
        return out;""")


def post(url: str, data: dict, cookies: dict | None = None) -> int:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    req = urllib.request.Request(url, data=urllib.parse.urlencode(data).encode(), method="POST")
    if cookies:
        req.add_header("Cookie", "; ".join(f"{k}={v}" for k, v in cookies.items()))
    try:
        return opener.open(req, timeout=10).status
    except urllib.error.HTTPError as exc:
        return exc.code


def get_status(url: str) -> int:
    try:
        return urllib.request.urlopen(url, timeout=10).status
    except urllib.error.HTTPError as exc:
        return exc.code


def actions() -> list[dict]:
    items = f.aws("dynamodb").query(TableName="rollout-state", ConsistentRead=True,
                                    KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
                                    ExpressionAttributeValues={":pk": {"S": "env#sandbox"}, ":p": {"S": "action#"}})["Items"]
    return [json.loads(i["data"]["S"]) for i in items]


def test_the_page_shows_the_fleet_pauses_deploys_and_rolls_back_through_the_worker(page, browser, new_commit):
    base, token = page
    # Without the token: nothing, not even the page's static files.
    assert get_status(base) == 401 and get_status(base + "env/sandbox") == 401 and get_status(base + "static/ui.js") == 401
    assert get_status(base + "?token=wrong") == 401
    runs = json.loads(f.fab("history", "--env=sandbox", "--json", "--limit=50").stdout)
    before = f.checked_out("h001")
    if not any(r["result"] == "succeeded" and r["sha"] == before for r in runs):
        # The rollback below needs an earlier successful run to return to (--force: the fleet already serves it).
        assert f.fab("deploy", "--env=sandbox", f"--ref={before}", "--yes", "--force").returncode == 0

    browser.get(f"{base}?token={token}")
    assert "token" not in browser.current_url
    want = {n: f.checked_out(n)[:12] for n in f.host_names()}
    until(browser, lambda d: host_versions(d) == want, 30, f"the 4 hosts with their versions {want}")
    assert token not in browser.page_source and SECRET["ROLLOUT_QUEUE_SECRET"] not in browser.page_source
    shot(browser, "hosts")

    # A forged form (no anti-forgery token, with the session cookie) is refused and changes nothing.
    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    logged = len(actions())
    assert post(base + "env/sandbox/pause", {"reason": "forged"}, cookies) == 403
    assert post(base + "pause-all", {"reason": "forged"}, cookies) == 403

    browser.find_element(By.ID, "pause-reason").send_keys("incident 42")
    browser.find_element(By.ID, "pause").click()
    until(browser, lambda d: "PAUSED" in text(d, "#pause-state"), 30, "the page showing the pause")
    assert "incident 42" in text(browser, "#pause-state") and "ana (ui) via queue" in text(browser, "#pause-state")
    shot(browser, "paused")
    refused = f.fab("deploy", "--env=sandbox", "--yes")
    assert refused.returncode == 11 and "paused by ana (ui) via queue" in refused.stderr and "incident 42" in refused.stderr, refused.stderr
    assert [a["action"] for a in actions()][logged:] == ["pause"]  # the forged requests never reached the worker

    browser.find_element(By.ID, "unpause").click()
    until(browser, lambda d: text(d, "#pause-state") == "not paused", 30, "the page showing no pause")
    assert f.state("pause") is None

    Select(browser.find_element(By.ID, "build")).select_by_value(new_commit)
    browser.find_element(By.ID, "deploy").click()
    until(browser, lambda d: text(d, "#run-headline").startswith("run ") and d.execute_script(
          "return document.querySelectorAll('#live-timeline rect').length") >= 2,
          60, "the run in progress on the page")
    shot(browser, "rollout")
    until(browser, lambda d: "succeeded" in text(d, "#last-run") and new_commit[:12] in text(d, "#last-run")
          and "no run in progress" in text(d, "#run-headline"), 120, "the run's success on the page")
    f.assert_fleet_serves(new_commit)
    until(browser, lambda d: set(host_versions(d).values()) == {new_commit[:12]}, 30, "every host on the new version")
    browser.refresh()
    shot(browser, "deployed")

    row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "#history tr.run-row")
               if before[:12] in r.text and r.find_elements(By.CSS_SELECTOR, ".rollback-button"))
    row.find_element(By.CSS_SELECTOR, ".rollback-button").click()
    until(browser, lambda d: "succeeded" in text(d, "#last-run") and before[:12] in text(d, "#last-run"), 120, "the rollback's success")
    f.assert_fleet_serves(before)

    history = json.loads(f.fab("history", "--env=sandbox", "--json", "--limit=2").stdout)
    assert [(r["sha"], r["who"], r["result"]) for r in history] == [
        (before, "ana (ui) via queue", "succeeded"), (new_commit, "ana (ui) via queue", "succeeded")]
    assert [a["action"] for a in actions()][logged:] == ["pause", "unpause", "deploy", "rollback"]
    browser.refresh()
    browser.find_element(By.CSS_SELECTOR, f"#history tr[data-run='{history[1]['run_id']}'] a").click()
    until(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#timeline rect.oos")) == 4, 10, "one window per host")
    shot(browser, "run")


@pytest.mark.parametrize("page", [3], indirect=True)  # 3 s a host: the pause arrives before the last batch
def test_pause_all_stops_a_running_rollout_with_every_host_serving(page, browser, new_commit):
    base, token = page
    before = f.checked_out("h001")
    browser.get(f"{base}?token={token}")
    Select(browser.find_element(By.ID, "build")).select_by_value(new_commit)
    browser.find_element(By.ID, "deploy").click()
    until(browser, lambda d: text(d, "#run-headline").startswith("run "), 60, "the run in progress on the page")
    browser.find_element(By.CSS_SELECTOR, ".pause-all input[name=reason]").send_keys("stop everything")
    browser.find_element(By.ID, "pause-all").click()
    until(browser, lambda d: "paused" in text(d, "#last-run") and "no run in progress" in text(d, "#run-headline"), 60,
          "the run stopped by the pause")
    last = json.loads(f.fab("history", "--env=sandbox", "--json", "--limit=1").stdout)[0]
    assert (last["sha"], last["result"], last["who"]) == (new_commit, "paused", "ana (ui) via queue")
    assert f.state("pause")["reason"] == {"S": "stop everything"}
    # Stopped before its last batch (how many batches ran depends on when the pause arrived).
    versions = {n: f.checked_out(n) for n in f.host_names()}
    assert set(versions.values()) <= {before, new_commit} and versions["h004"] == before, versions
    ids = f.instances()
    assert f.haproxy_states() == {a: "UP" for a in ids.values()} and f.elb_members() == {i: "InService" for i in ids}
    browser.find_element(By.ID, "unpause").click()
    until(browser, lambda d: text(d, "#pause-state") == "not paused", 30, "the page showing no pause")
