"""The container app's remote scripts, exactly as they reach the host's shell, with hostile names and paths."""

from rollout.apps import container

D1 = "sha256:" + "1" * 64
NAME = "app; reboot"  # a hostile container name: one quoted word
N = "'app; reboot'"


def spec(**kw) -> container.Spec:
    base = dict(cli="podman", image="reg.example:5000/team/app", registry="reg.example:5000", name=NAME)
    return container.Spec(**{**base, **kw})


def test_state_script():
    assert container.state_script(spec()) == f"echo \"after $(podman container inspect -f '{{{{.Id}}}} {{{{.Image}}}} {{{{.State.Status}}}}' {N})\"\n"


def test_logs_script():
    assert container.logs_script(spec(cli="docker $(id)"), lines=7) == f"'docker $(id)' logs --tail 7 {N} 2>&1 | sed 's/^/log /'\n"


def test_run_arguments_are_each_one_quoted_word():
    args = container.run_args(spec(env_file="/etc/app env", ports=("8080:8080",), volumes=("/srv/my data:/data",),
                                   options=("--restart=unless-stopped; reboot",), digest_env="APP_VERSION"), D1, '"$tmp/env"')
    assert args == [
        "run", "-d", "--name", N, "--label", f"rollout.digest={D1}", "--init", "--stop-timeout", "10",
        "--env-file", "'/etc/app env'", "--env-file", '"$tmp/env"', "-e", f"APP_VERSION={D1}",
        "-p", "8080:8080", "-v", "'/srv/my data:/data'", "'--restart=unless-stopped; reboot'",
        f"reg.example:5000/team/app@{D1}",
    ]
