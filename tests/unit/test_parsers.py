import pytest

from rollout.adapters import health
from rollout.adapters import refs
from rollout.adapters.balancers import haproxy
from rollout.apps import git as gitapp
from rollout.config.inventory import Health
from rollout.core.errors import RefError

SHA1, SHA2 = "1" * 40, "2" * 40


def test_ls_remote_peels_annotated_tags_and_prefers_branches():
    out = f"{SHA1}\tHEAD\n{SHA1}\trefs/heads/main\n{SHA2}\trefs/tags/v2\n{SHA1}\trefs/tags/v2^{{}}\n"
    table = refs.parse_ls_remote(out)
    assert refs.pick("main", table) == SHA1
    assert refs.pick("v2", table) == SHA1  # the commit, not the tag object
    assert refs.pick(SHA2, table) == SHA2
    assert refs.pick("1111111", table) == SHA1
    assert refs.pick("nope", table) is None


@pytest.mark.parametrize("ref", ["main; rm -rf /", "$(id)", "`id`", "-upload-pack=x", "a..b", "x y", "", "refs/heads/a.lock", "a'b"])
def test_hostile_or_malformed_refs_are_refused_before_any_command(ref):
    with pytest.raises(RefError):
        refs.validate(ref)


@pytest.mark.parametrize("ref", ["main", "v1.2.3", "remote-run/ben/feature-x", SHA1, "release_2026+1"])
def test_ordinary_refs_are_accepted(ref):
    assert refs.validate(ref) == ref


def test_processes_parser_and_worker_replacement():
    before = gitapp.parse_processes("100\n101\n102\n")
    assert before == gitapp.Processes(100, frozenset({101, 102}))
    assert gitapp.workers_replaced(before, gitapp.parse_processes("100\n103\n104\n"), 2) == (True, "")
    ok, why = gitapp.workers_replaced(before, gitapp.parse_processes("100\n102\n103\n"), 2)
    assert not ok and "102" in why
    ok, why = gitapp.workers_replaced(before, gitapp.parse_processes("100\n103\n"), 2)
    assert not ok and "1 workers running" in why
    assert not gitapp.workers_replaced(before, gitapp.parse_processes(""), 2)[0]


def test_version_parser_takes_only_a_full_sha():
    assert gitapp.parse_version(SHA1 + "\n") == SHA1
    assert gitapp.parse_version("fatal: not a git repository") is None


def test_health_judge_refuses_the_old_version_even_with_200():
    h = Health(port=14000)
    assert health.judge(health.Observation(200, SHA2), h, SHA2) == (True, "")
    ok, why = health.judge(health.Observation(200, SHA1), h, SHA2)
    assert not ok and "expected 222222222222" in why
    assert not health.judge(health.Observation(503, SHA2), h, SHA2)[0]
    assert not health.judge(health.Observation(None, None, "refused"), h, SHA2)[0]


SERVERS_STATE = """1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
3 app 1 h001 198.18.1.11 2 0 1 1 120 6 3 4 6 0 0 0 - 14000 - 0 0 - - 0
3 app 2 h002 198.18.1.12 0 1 1 1 3 6 3 0 6 0 0 0 - 14000 - 0 0 - - 0
3 app 3 h003 198.18.1.13 2 8 1 1 3 6 3 4 6 0 0 0 - 14000 - 0 0 - - 0
"""


def test_haproxy_servers_state_parser_and_states():
    rows = haproxy.parse_servers_state(SERVERS_STATE)
    assert [r["srv_name"] for r in rows] == ["h001", "h002", "h003"]
    assert [haproxy.describe_state(r) for r in rows] == ["UP", "MAINT", "DRAIN"]
    assert [haproxy.server_in_service(r) for r in rows] == [True, False, False]


def test_haproxy_stat_sessions_for_one_backend():
    csv = "# pxname,svname,qcur,qmax,scur,smax\nfe,FRONTEND,,,3,9\napp,h001,0,0,2,5\napp,h002,0,0,0,1\napp,BACKEND,0,0,2,6\nother,x,0,0,7,7\n"
    assert haproxy.parse_stat_sessions(csv, "app") == {"h001": 2, "h002": 0}
