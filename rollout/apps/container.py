"""The container app strategy's remote scripts (docker or podman) and pure parsers of their output.

Scripts travel on the SSH channel's stdin (`sh -s`), never in a command line: they
carry environment values and registry passwords, which must not show in `ps` or a log.
Every value in them goes through shlex.quote, or sits in a quoted here-document.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from shlex import quote
from typing import Optional

from rollout.core import marks

LABEL = "rollout.digest"
COMMAND = "sh -s"


@dataclass(frozen=True)
class Spec:
    """Everything a host needs to run the app's container; env values are secrets."""

    cli: str
    image: str
    registry: str
    name: str
    env: dict[str, str] = field(default_factory=dict)
    env_file: Optional[str] = None
    ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    init: bool = True
    stop_timeout: int = 10
    digest_env: Optional[str] = None
    creds: Optional[tuple[str, str]] = None

    def ref(self, digest: str) -> str:
        return f"{self.image}@{digest}"


@dataclass(frozen=True)
class Update:
    """What the update script reported."""

    before: Optional[str]
    container: Optional[str]
    image: Optional[str]
    status: Optional[str]
    want: Optional[str]
    seconds: dict[str, float]


@dataclass(frozen=True)
class Running:
    """The app's container as the version script saw it."""

    present: bool
    image: Optional[str] = None
    status: Optional[str] = None
    label: Optional[str] = None
    repo_digests: tuple[str, ...] = ()


def _prelude(spec: Spec) -> list[str]:
    c = quote(spec.cli)
    lines = [
        "set -e",
        "umask 077",
        f"command -v {c} >/dev/null 2>&1 || {{ echo {quote(spec.cli + ': command not found on this host; install it or set app.cli')} >&2; exit 127; }}",
        'tmp=${tmp:-$(mktemp -d)}; trap \'rm -rf "$tmp"\' EXIT',  # scripts may be joined: one temp dir
        marks.FUNCTION,
    ]
    if spec.creds:
        user, password = spec.creds
        reg = quote(spec.registry)
        # printf is a shell builtin: the password reaches `login` on a pipe, never in an argv.
        if spec.cli == "podman":
            lines.append(f"printf '%s' {quote(password)} | {c} login --authfile \"$tmp/auth.json\" --username {quote(user)}"
                         f" --password-stdin {reg} >/dev/null")
        else:
            lines.append(f"printf '%s' {quote(password)} | {c} --config \"$tmp\" login --username {quote(user)}"
                         f" --password-stdin {reg} >/dev/null")
    return lines


def _pull(spec: Spec, digest: str) -> str:
    c, ref = quote(spec.cli), quote(spec.ref(digest))
    if spec.creds and spec.cli == "podman":
        pull = f'{c} pull -q --authfile "$tmp/auth.json" {ref}'
    elif spec.creds:
        pull = f'{c} --config "$tmp" pull -q {ref}'
    else:
        pull = f"{c} pull -q {ref}"
    return f"{c} image inspect {ref} >/dev/null 2>&1 || {pull} >/dev/null"


def version_script(spec: Spec) -> str:
    """Print the container's image id, state and digest label, then its image's repo digests."""
    c, n = quote(spec.cli), quote(spec.name)
    fmt = quote('{{.Image}} {{.State.Status}} {{index .Config.Labels "' + LABEL + '"}}')
    return "\n".join(_prelude(replace(spec, env={}, creds=None)) + [
        f'{c} version >/dev/null 2>"$tmp/err" || {{ echo "{spec.cli} does not work on this host: $(tail -n 1 "$tmp/err")" >&2; exit 1; }}',
        f"if line=$({c} container inspect -f {fmt} {n} 2>/dev/null); then",
        '  echo "container $line"; set -- $line',
        f"  {c} image inspect -f {quote('{{range .RepoDigests}}{{println .}}{{end}}')} \"$1\" | sed 's/^/repodigest /'",
        "else echo absent; fi",
    ]) + "\n"


def parse_running(output: str) -> Running:
    present, image, status, label, digests = False, None, None, None, []
    for line in output.splitlines():
        word, _, rest = line.partition(" ")
        if word == "container":
            parts = rest.split()
            present = True
            image = _id(parts[0]) if parts else None
            status = parts[1] if len(parts) > 1 else None
            label = parts[2] if len(parts) > 2 and parts[2].startswith("sha256:") else None
        elif word == "repodigest" and rest.strip():
            digests.append(rest.strip())
    return Running(present, image, status, label, tuple(digests))


def current_digest(running: Running, image: str) -> Optional[str]:
    """The digest the container runs: our label if its image carries it, else the image's only digest of `image`."""
    if not running.present:
        return None
    ours = [d.partition("@")[2] for d in running.repo_digests if d.partition("@")[0] == image]
    if running.label and running.label in ours:
        return running.label
    return ours[0] if len(set(ours)) == 1 else None


def prefetch_script(spec: Spec, digests: set[str]) -> str:
    """Pull each digest unless the host has it; change nothing that runs."""
    return "\n".join(_prelude(spec) + [_pull(spec, d) for d in sorted(digests)]) + "\n"


def env_lines(env: dict[str, str]) -> list[str]:
    """KEY=VALUE lines of an --env-file; values are taken literally by docker and podman."""
    for key, value in env.items():
        if "\n" in value or "\r" in value:
            raise ValueError(f"app.env.{key}: a value with a line break cannot be passed to a container")
    return [f"{k}={v}" for k, v in env.items()]


def run_args(spec: Spec, digest: str, env_path: Optional[str]) -> list[str]:
    """`run` arguments after the CLI (quoted); env_path is the temporary env file's shell expression."""
    args = ["run", "-d", "--name", quote(spec.name), "--label", quote(f"{LABEL}={digest}")]
    if spec.init:
        args.append("--init")
    if spec.stop_timeout is not None:
        args += ["--stop-timeout", str(int(spec.stop_timeout))]
    if spec.env_file:
        args += ["--env-file", quote(spec.env_file)]
    if env_path:
        args += ["--env-file", env_path]
    if spec.digest_env:
        args += ["-e", quote(f"{spec.digest_env}={digest}")]
    for p in spec.ports:
        args += ["-p", quote(p)]
    for v in spec.volumes:
        args += ["-v", quote(v)]
    args += [quote(o) for o in spec.options]
    return args + [quote(spec.ref(digest))]


def update_script(spec: Spec, digest: str) -> str:
    """Pull (if missing), stop and remove the old container, run the new one under the same name.

    Prints `before ID`, `after ID IMAGE STATUS`, `want IMAGE` and a `mark NAME EPOCH` per phase.
    """
    c, n, ref = quote(spec.cli), quote(spec.name), quote(spec.ref(digest))
    lines = _prelude(spec) + [
        "mark start",
        f'echo "before $({c} container inspect -f {quote("{{.Id}}")} {n} 2>/dev/null || echo -)"',
        _pull(spec, digest),
        f'echo "want $({c} image inspect -f {quote("{{.Id}}")} {ref})"',
        "mark pull",
        f"if {c} container inspect {n} >/dev/null 2>&1; then {c} stop -t {int(spec.stop_timeout)} {n} >/dev/null;"
        f" {c} rm -f {n} >/dev/null; fi",
        "mark stop",
    ]
    env_path = None
    if spec.env:
        end = f"ROLLOUT_ENV_{secrets.token_hex(8)}"
        lines += [f"cat > \"$tmp/env\" <<'{end}'", *env_lines(spec.env), end]
        env_path = '"$tmp/env"'
    lines += [
        " ".join([c] + run_args(spec, digest, env_path)) + " >/dev/null",
        state_script(spec).rstrip("\n"),
        "mark run",
    ]
    return "\n".join(lines) + "\n"


def parse_update(output: str) -> Update:
    before = container = image = status = want = None
    for line in output.splitlines():
        word, _, rest = line.partition(" ")
        parts = rest.split()
        if word == "before":
            before = parts[0] if parts and parts[0] != "-" else None
        elif word == "after" and len(parts) >= 3:
            container, image, status = parts[0], _id(parts[1]), parts[2]
        elif word == "want" and parts:
            want = _id(parts[0])
    return Update(before, container, image, status, want, marks.seconds(output))


def is_new(update: Update) -> tuple[bool, str]:
    """Whether the update left a new, running container of the wanted image; with the reason if not."""
    if update.container is None:
        return False, "no container after the run"
    if update.before and update.container == update.before:
        return False, f"container {update.container[:12]} is the old one"
    if update.want is None or update.image != update.want:
        return False, f"container runs image {(update.image or 'nothing')[:12]}, expected {(update.want or 'nothing')[:12]}"
    if update.status != "running":
        return False, f"container {update.container[:12]} is {update.status}"
    return True, ""


def state_script(spec: Spec) -> str:
    """Print `after ID IMAGE STATUS` of the app's container (for health re-checks)."""
    fmt = quote("{{.Id}} {{.Image}} {{.State.Status}}")
    return f'echo "after $({quote(spec.cli)} container inspect -f {fmt} {quote(spec.name)})"\n'


def logs_script(spec: Spec, lines: int = 5) -> str:
    """Print the container's last output lines, each as `log LINE`."""
    return f"{quote(spec.cli)} logs --tail {int(lines)} {quote(spec.name)} 2>&1 | sed 's/^/log /'\n"


def _id(value: str) -> str:
    return value.removeprefix("sha256:")
