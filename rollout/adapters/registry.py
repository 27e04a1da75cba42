"""Resolve an image tag to its immutable digest, once, through the registry's HTTP API (OCI distribution)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from typing import Optional

import urllib3
from tenacity import Retrying, retry_if_exception, retry_if_result, stop_after_attempt, wait_random_exponential

from rollout.core.errors import PreflightError, RefError

log = logging.getLogger("rollout.registry")

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class ImageName:
    """An image repository split into the registry host and the repository path."""

    registry: str
    repository: str

    @classmethod
    def parse(cls, image: str) -> "ImageName":
        first, _, rest = image.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            return cls(first, rest)
        # Docker Hub: official images live under library/.
        return cls("docker.io", image if rest else f"library/{image}")

    def api_base(self, url: Optional[str], insecure: bool) -> str:
        if url:
            return url.rstrip("/")
        host = "registry-1.docker.io" if self.registry == "docker.io" else self.registry
        return f"{'http' if insecure else 'https'}://{host}"


def validate_ref(ref: str) -> str:
    """A tag or a sha256 digest; RefError otherwise."""
    ref = ref.removeprefix("@")
    if DIGEST.match(ref) or TAG.match(ref):
        return ref
    raise RefError(f"image ref {ref!r} is not a tag (letters, digits, '_', '.', '-') nor a digest (sha256:<64 hex>)")


def credentials(env_name: Optional[str]) -> Optional[tuple[str, str]]:
    """(user, password) from the environment variable named in the inventory ("user:password"), if any."""
    if not env_name:
        return None
    value = os.environ.get(env_name, "")
    user, sep, password = value.partition(":")
    if not sep or not user:
        raise PreflightError(f"registry credentials: set ${env_name} to USER:PASSWORD (it is empty or has no ':'),"
                             f" or remove registry.credentials_env to use the hosts' own login")
    return user, password


def resolve(image: str, ref: str, *, url: Optional[str] = None, insecure: bool = False,
            creds: Optional[tuple[str, str]] = None, timeout: float = 10) -> str:
    """The digest `ref` (a tag or a digest, checked already: apps.validate_ref) names for `image`, checked against the registry."""
    name = ImageName.parse(image)
    base = name.api_base(url, insecure)
    where = f"{base}/v2/{name.repository}/manifests/{ref}"
    # urllib3 only follows redirects; retries go through tenacity (_request).
    http = urllib3.PoolManager(timeout=urllib3.Timeout(total=timeout),
                               retries=urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=5))
    headers = {"Accept": _ACCEPT, "User-Agent": "rollout"}
    try:
        resp = _request(http, "HEAD", where, headers)
        if resp.status == 401:
            headers["Authorization"] = _authorization(http, resp.headers.get("WWW-Authenticate", ""), creds, image)
            resp = _request(http, "HEAD", where, headers)
        digest = resp.headers.get("Docker-Content-Digest", "")
        if resp.status == 200 and not DIGEST.match(digest):
            # Some registries omit the header on HEAD: the digest is the manifest's own sha256.
            got = _request(http, "GET", where, headers)
            digest = "sha256:" + hashlib.sha256(got.data).hexdigest() if got.status == 200 else ""
    except urllib3.exceptions.HTTPError as exc:
        raise PreflightError(f"registry {base} does not answer ({type(exc).__name__}: {_reason(exc)}); check the network,"
                             f" or app.registry.url / insecure in the inventory") from None
    if resp.status == 404:
        sep = "@" if DIGEST.match(ref) else ":"
        raise RefError(f"image {image}{sep}{ref} not found in {base}; check app.image and --ref")
    if resp.status in (401, 403):
        raise PreflightError(f"registry {base} refused access to {name.repository} (HTTP {resp.status});"
                             f" check the credentials in app.registry.credentials_env")
    if resp.status != 200 or not DIGEST.match(digest):
        raise PreflightError(f"registry {base} answered HTTP {resp.status} for {image}:{ref} without a usable digest")
    if DIGEST.match(ref) and digest != ref:
        raise RefError(f"registry {base} serves {digest} for {image}@{ref}; refusing a mismatched digest")
    return digest


def _transient(exc: BaseException) -> bool:
    # A refused connection is an answer (nothing listens); timeouts and cut connections may pass.
    return isinstance(exc, (urllib3.exceptions.TimeoutError, urllib3.exceptions.ProtocolError)) or (
        isinstance(exc, urllib3.exceptions.MaxRetryError) and not isinstance(exc.reason, urllib3.exceptions.NewConnectionError))


def _request(http, method: str, url: str, headers: dict, fields: Optional[dict] = None):
    """One registry request; timeouts, cut connections and 502/503/504 are retried (3 attempts, jittered backoff)."""
    def before_sleep(state) -> None:
        why = state.outcome.exception() or f"HTTP {state.outcome.result().status}"
        log.warning("registry %s %s: %s; retrying (attempt %d of 3)", method, url.split("/v2/")[0], why, state.attempt_number + 1)

    retrying = Retrying(retry=retry_if_exception(_transient) | retry_if_result(lambda r: r.status in (502, 503, 504)),
                        stop=stop_after_attempt(3), wait=wait_random_exponential(multiplier=0.2, max=2),
                        before_sleep=before_sleep, retry_error_callback=lambda state: state.outcome.result(), reraise=True)
    return retrying(http.request, method, url, headers=headers, fields=fields, redirect=True)


def _authorization(http, challenge: str, creds: Optional[tuple[str, str]], image: str) -> str:
    """The Authorization header answering a 401 challenge (Basic, or a Bearer token from the realm)."""
    scheme, _, params = challenge.partition(" ")
    basic = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode() if creds else None
    if scheme.lower() == "basic":
        if basic is None:
            raise PreflightError(f"the registry of {image} wants credentials: set app.registry.credentials_env")
        return basic
    if scheme.lower() != "bearer":
        raise PreflightError(f"the registry of {image} asks for unsupported authentication {scheme!r}")
    fields = dict(_CHALLENGE.findall(params))
    if "realm" not in fields:
        raise PreflightError(f"the registry of {image} sent a Bearer challenge without a realm")
    query = {k: v for k, v in fields.items() if k in ("service", "scope")}
    resp = _request(http, "GET", fields["realm"], {"Authorization": basic} if basic else {}, fields=query)
    if resp.status != 200:
        raise PreflightError(f"token service {fields['realm']} refused a token (HTTP {resp.status}); check the registry credentials")
    body = json.loads(resp.data or b"{}")
    token = body.get("token") or body.get("access_token")
    if not token:
        raise PreflightError(f"token service {fields['realm']} returned no token")
    return f"Bearer {token}"


def _reason(exc: Exception) -> str:
    inner = getattr(exc, "reason", None)
    return str(inner or exc).split(": ", 1)[-1][:200]
