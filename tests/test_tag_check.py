"""tag_check against real registries (docker-registry 2.8: open, htpasswd Basic, token mode).

End-to-end cases call scripts/tag_check by absolute path as Octopod does; the
round-trip budget and the parsing rules are checked in-process.
"""
from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Iterator

import pytest

from octopod_control import registry as reg
from octopod_control.deadline import Deadline
from octopod_control.errors import ConfigError, OctopodError
from tests.conftest import run_script
from tests.support.ports import refused_port
from tests.support.registry import PASSWORD, TAGS, USER, FakeRegistry, Registries, TokenServer, \
    bearer_challenge, start_registries

ARGV = ("--project-name", "demo", "--base-domain", "staging.example.com", "--namespace", "octopod",
        "--name", "feature-1")
CREDS = {"REGISTRY_USERNAME": USER, "REGISTRY_PASSWORD": PASSWORD}


@pytest.fixture(scope="module")
def registries(tmp_path_factory) -> Iterator[Registries]:
    started = start_registries(tmp_path_factory.mktemp("registries"))
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Octopod's environment, minus anything registry-related the developer's shell may hold."""
    home = tmp_path / "home"
    home.mkdir()
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("REGISTRY_", "OCTOPOD_", "DOCKER_"))}
    return {**base, "HOME": str(home), "REGISTRY_INSECURE": "true"}


def tag_check(env: dict[str, str], tag: str | None = "oci", **extra: str):
    args = ARGV + (("--tag", tag) if tag is not None else ())
    return run_script("tag_check", *args, env={**env, **extra}, timeout=60)


def assert_fails(result, *phrases: str) -> str:
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr
    return result.stderr


def write_docker_config(directory: Path, config: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def helper_bin(tmp_path: Path, name: str, body: str) -> str:
    """A docker-credential-<name> on a private PATH entry; returns the new PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / f"docker-credential-{name}"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return f"{bin_dir}:{os.environ['PATH']}"


# -- present / missing ---------------------------------------------------------------------

@pytest.mark.parametrize("tag", sorted(TAGS))
def test_each_manifest_kind_is_present(registries, env, tag):
    result = tag_check(env, tag, REGISTRY_IMAGES=f"{registries.basic.host}/team/app", **CREDS)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert f"team/app:{tag} present ({TAGS[tag]})" in result.stderr


def test_missing_tag_names_image_and_tag(registries, env):
    image = f"{registries.basic.host}/team/app"
    result = tag_check(env, "v9.9.9", REGISTRY_IMAGES=image, **CREDS)
    assert_fails(result, f"tag not found: {image}:v9.9.9")


def test_every_image_must_have_the_tag(registries, env):
    present, absent = f"{registries.open.host}/team/app", f"{registries.basic.host}/team/nothing"
    result = tag_check(env, "multi", REGISTRY_IMAGES=f"{present}, {absent}",
                       REGISTRY_AUTH_HOST=registries.basic.host, **CREDS)
    assert_fails(result, f"tag not found: {absent}:multi")
    assert f"{present}:multi present" in result.stderr


def test_anonymous_registry(registries, env):
    result = tag_check(env, "docker", REGISTRY_IMAGES=f"{registries.open.host}/public/app")
    assert result.returncode == 0, result.stderr


# -- credentials ---------------------------------------------------------------------------

def test_wrong_credentials_are_an_auth_failure_not_missing(registries, env):
    result = tag_check(env, REGISTRY_IMAGES=f"{registries.basic.host}/team/app",
                       REGISTRY_USERNAME=USER, REGISTRY_PASSWORD="wrong-password")
    stderr = assert_fails(result, "authentication failed", "REGISTRY_USERNAME/REGISTRY_PASSWORD")
    assert "not found" not in stderr


def test_no_credentials_for_basic_registry(registries, env):
    result = tag_check(env, REGISTRY_IMAGES=f"{registries.basic.host}/team/app")
    assert_fails(result, "requires credentials")


def test_half_set_env_credentials_is_a_config_error(registries, env):
    result = tag_check(env, REGISTRY_IMAGES=f"{registries.basic.host}/team/app", REGISTRY_USERNAME=USER)
    assert result.returncode == 78 and "set both or neither" in result.stderr


@pytest.mark.parametrize("form", ["auth", "username-password", "url-key"])
def test_credentials_from_docker_config(registries, env, tmp_path, form):
    host = registries.basic.host
    if form == "auth":
        entry = {host: {"auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}}
    elif form == "username-password":
        entry = {host: {"username": USER, "password": PASSWORD}}
    else:
        entry = {f"http://{host}/v2/": {"auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}}
    directory = write_docker_config(tmp_path / "docker", {"auths": entry})
    result = tag_check(env, REGISTRY_IMAGES=f"{host}/team/app", DOCKER_CONFIG=str(directory))
    assert result.returncode == 0, result.stderr


def test_credentials_from_home_docker_config(registries, env):
    host = registries.basic.host
    write_docker_config(Path(env["HOME"]) / ".docker",
                        {"auths": {host: {"username": USER, "password": PASSWORD}}})
    result = tag_check(env, REGISTRY_IMAGES=f"{host}/team/app")
    assert result.returncode == 0, result.stderr


def test_env_credentials_win_over_docker_config(registries, env, tmp_path):
    host = registries.basic.host
    directory = write_docker_config(tmp_path / "docker",
                                    {"auths": {host: {"username": USER, "password": "stale"}}})
    result = tag_check(env, REGISTRY_IMAGES=f"{host}/team/app", DOCKER_CONFIG=str(directory), **CREDS)
    assert result.returncode == 0, result.stderr


def test_cred_helper_and_creds_store(registries, env, tmp_path):
    host = registries.basic.host
    reply = json.dumps({"ServerURL": host, "Username": USER, "Secret": PASSWORD})
    path = helper_bin(tmp_path, "octo", f"read server; [ \"$server\" = '{host}' ] || exit 1\n"
                                        f"echo '{reply}'")
    for config in ({"credHelpers": {host: "octo"}}, {"credsStore": "octo", "auths": {host: {}}}):
        directory = write_docker_config(tmp_path / "docker", config)
        result = tag_check(env, REGISTRY_IMAGES=f"{host}/team/app", DOCKER_CONFIG=str(directory),
                           PATH=path)
        assert result.returncode == 0, (config, result.stderr)


def test_cred_helper_is_bounded_by_the_timeout(registries, env, tmp_path):
    host = registries.basic.host
    path = helper_bin(tmp_path, "slow", "exec sleep 300")  # exec: the helper is the sleep we kill
    directory = write_docker_config(tmp_path / "docker", {"credHelpers": {host: "slow"}})
    started = time.monotonic()
    result = tag_check(env, REGISTRY_IMAGES=f"{host}/team/app", DOCKER_CONFIG=str(directory),
                       PATH=path, REGISTRY_TIMEOUT="1")
    elapsed = time.monotonic() - started
    assert_fails(result, "docker-credential-slow", "timed out")
    assert elapsed < 15, elapsed  # about 1.2 s: the 1 s timeout plus slack; without it, 300 s


def test_identity_token_from_docker_config(registries, env, tmp_path):
    host = registries.token.host
    directory = write_docker_config(tmp_path / "docker", {"auths": {host: {
        "auth": base64.b64encode(b"octo:").decode(), "identitytoken": TokenServer.identity_token}}})
    seen = registries.token_server.watch()
    result = tag_check(env, "multi", REGISTRY_IMAGES=f"{host}/team/app", DOCKER_CONFIG=str(directory))
    assert result.returncode == 0, result.stderr
    assert ("POST", "/token") in seen.requests  # this run's refresh-token grant, not another test's


# -- token flow ----------------------------------------------------------------------------

def test_token_flow_anonymous(registries, env):
    result = tag_check(env, "multi", REGISTRY_IMAGES=f"{registries.token.host}/public/app")
    assert result.returncode == 0, result.stderr


def test_token_flow_with_credentials(registries, env):
    result = tag_check(env, "docker", REGISTRY_IMAGES=f"{registries.token.host}/team/app", **CREDS)
    assert result.returncode == 0, result.stderr


def test_token_flow_missing_tag(registries, env):
    image = f"{registries.token.host}/team/app"
    assert_fails(tag_check(env, "nope", REGISTRY_IMAGES=image, **CREDS), f"tag not found: {image}:nope")


def test_token_flow_anonymous_refused_is_not_missing(registries, env):
    result = tag_check(env, REGISTRY_IMAGES=f"{registries.token.host}/team/app")
    stderr = assert_fails(result, "authentication failed", "anonymous access refused")
    assert "not found" not in stderr


def test_token_flow_wrong_credentials(registries, env):
    result = tag_check(env, REGISTRY_IMAGES=f"{registries.token.host}/team/app",
                       REGISTRY_USERNAME=USER, REGISTRY_PASSWORD="wrong-password")
    assert_fails(result, "authentication failed at token server")


# -- a registry that cannot answer ---------------------------------------------------------

def test_unreachable_port_fails_fast(env):
    with refused_port() as port:
        started = time.monotonic()
        # A refusal ends the run at once (about 0.3 s); waiting for the 300 s timeout would not.
        result = tag_check(env, REGISTRY_IMAGES=f"127.0.0.1:{port}/team/app", REGISTRY_TIMEOUT="300")
        elapsed = time.monotonic() - started
    assert_fails(result, "unreachable: connection refused")
    assert elapsed < 15, elapsed


def test_silent_registry_times_out(env):
    fake = FakeRegistry(silent=True)
    try:
        started = time.monotonic()
        result = tag_check(env, REGISTRY_IMAGES=f"{fake.host}/team/app", REGISTRY_TIMEOUT="1")
        elapsed = time.monotonic() - started
        assert_fails(result, "did not answer within 1s (REGISTRY_TIMEOUT)")
        assert elapsed < 15, elapsed  # about 1.1 s: the 1 s timeout plus slack; without it, forever
    finally:
        fake.stop()


def test_server_error_is_retried_once(env):
    fake = FakeRegistry(lambda method, path: (503, {}))
    try:
        result = tag_check(env, REGISTRY_IMAGES=f"{fake.host}/team/app")
        stderr = assert_fails(result, "HTTP 503 (after one retry)")
        assert "not found" not in stderr
        assert len(fake.requests) == 2
    finally:
        fake.stop()


def test_5xx_then_success(env):
    answers = iter([(502, {}), (200, {"Content-Type": reg.ACCEPT.split(",")[0]})])
    fake = FakeRegistry(lambda method, path: next(answers))
    try:
        result = tag_check(env, REGISTRY_IMAGES=f"{fake.host}/team/app")
        assert result.returncode == 0, result.stderr
    finally:
        fake.stop()


def test_rate_limit(env):
    fake = FakeRegistry(lambda method, path: (429, {"Retry-After": "60"}))
    try:
        result = tag_check(env, REGISTRY_IMAGES=f"{fake.host}/team/app")
        assert_fails(result, "rate limited", "HTTP 429, retry after 60s")
        assert len(fake.requests) == 1
    finally:
        fake.stop()


def test_https_to_a_plain_http_registry_says_insecure(registries, env):
    result = tag_check(env, REGISTRY_IMAGES=f"{registries.open.host}/team/app", REGISTRY_INSECURE="false")
    assert_fails(result, "TLS with registry", "REGISTRY_INSECURE")


# -- configuration and argv ----------------------------------------------------------------

def test_nothing_configured_exits_zero(env):
    result = tag_check(env)
    assert result.returncode == 0 and result.stdout == ""
    assert "nothing configured" in result.stderr


def test_tag_is_required(env):
    result = tag_check(env, None, REGISTRY_IMAGES="nginx")
    assert result.returncode == 64 and "--tag" in result.stderr


def test_image_with_a_tag_is_a_config_error(env):
    result = tag_check(env, REGISTRY_IMAGES="nginx:latest")
    assert result.returncode == 78 and "without a tag" in result.stderr


def test_secrets_never_printed(registries, env, tmp_path):
    basic, token = registries.basic.host, registries.token.host
    encoded = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    directory = write_docker_config(tmp_path / "docker", {"auths": {
        basic: {"auth": encoded}, token: {"identitytoken": TokenServer.identity_token}}})
    runs = [
        tag_check(env, REGISTRY_IMAGES=f"{basic}/team/app,{basic}/team/nope", **CREDS),
        tag_check(env, REGISTRY_IMAGES=f"{basic}/team/app", REGISTRY_USERNAME=USER,
                  REGISTRY_PASSWORD=PASSWORD + "x"),
        tag_check(env, "nope", REGISTRY_IMAGES=f"{basic}/team/app,{token}/team/app",
                  DOCKER_CONFIG=str(directory)),
        tag_check(env, REGISTRY_IMAGES=f"{token}/team/app", OCTOPOD_DEBUG="1", **CREDS),
    ]
    for result in runs:
        for secret in (PASSWORD, encoded, TokenServer.identity_token, "Bearer ", "Basic "):
            assert secret not in result.stdout + result.stderr


# -- round trips (in-process, against the real registries) ---------------------------------

def _trips(host: str, repos: list[str], tag: str, creds: reg.Credentials | None) -> list[int]:
    images = [reg.parse_reference(f"{host}/{repo}") for repo in repos]
    results = reg.check_images(images, tag, timeout=10, insecure=True, credentials=lambda r, t: creds)
    assert all(r.error is None for r in results), [str(r.error) for r in results]
    return [r.round_trips for r in results]


def test_round_trips(registries):
    creds = reg.Credentials("test", USER, PASSWORD)
    repos = ["team/app", "public/app"]
    assert _trips(registries.open.host, repos, "oci", None) == [1, 1]
    # first image: 401 then the retry; the next one sends Basic at once
    assert _trips(registries.basic.host, repos, "oci", creds) == [2, 1]
    # first image: 401, token, retry; the next one fetches its token at once
    assert _trips(registries.token.host, repos, "oci", creds) == [3, 2]


# -- units ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, registry, repository", [
    ("nginx", "docker.io", "library/nginx"),
    ("user/app", "docker.io", "user/app"),
    ("docker.io/nginx", "docker.io", "library/nginx"),
    ("index.docker.io/user/app", "docker.io", "user/app"),
    ("registry-1.docker.io/library/nginx", "docker.io", "library/nginx"),
    ("ghcr.io/org/worker", "ghcr.io", "org/worker"),
    ("registry.example.com/team/app", "registry.example.com", "team/app"),
    ("localhost/app", "localhost", "app"),
    ("localhost:5000/a/b/c", "localhost:5000", "a/b/c"),
    ("127.0.0.1:5001/team/app", "127.0.0.1:5001", "team/app"),
    ("[::1]:5000/app", "[::1]:5000", "app"),
    (" Registry.Example.com/my_app.x-y ", "registry.example.com", "my_app.x-y"),
])
def test_parse_reference(text, registry, repository):
    ref = reg.parse_reference(text)
    assert (ref.registry, ref.repository) == (registry, repository)
    assert ref.api_host == ("registry-1.docker.io" if registry == "docker.io" else registry)


@pytest.mark.parametrize("text", ["nginx:1.2", "ghcr.io/org/app:v1", "nginx@sha256:abc", "Upper/app",
                                  "https://ghcr.io/org/app", "ghcr.io/org//app", "a/-b", ""])
def test_parse_reference_rejects(text):
    with pytest.raises(ConfigError):
        reg.parse_reference(text)


def test_parse_images_dedups():
    images = reg.parse_images("nginx, docker.io/library/nginx,,ghcr.io/o/w")
    assert [(i.registry, i.repository) for i in images] == [("docker.io", "library/nginx"),
                                                            ("ghcr.io", "o/w")]


def test_parse_challenge():
    c = reg.parse_challenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                            'scope="repository:library/nginx:pull,push"')
    assert c == reg.Challenge("bearer", {"realm": "https://auth.docker.io/token",
                                         "service": "registry.docker.io",
                                         "scope": "repository:library/nginx:pull,push"})
    assert reg.parse_challenge('Basic realm="Registry Realm"').scheme == "basic"
    assert reg.parse_challenge("Negotiate") is None


def test_insecure_hosts():
    assert reg.insecure_hosts("true") is True
    assert reg.insecure_hosts("") == set()
    assert reg.insecure_hosts("a:5000, B") == {"a:5000", "b"}


def test_config_credentials(tmp_path):
    def read(config: dict, registry: str) -> reg.Credentials | None:
        write_docker_config(tmp_path, config)
        return reg.config_credentials(registry, {"DOCKER_CONFIG": str(tmp_path)}, 5)

    hub = {"auths": {"https://index.docker.io/v1/": {"auth": base64.b64encode(b"u:p:w").decode()}}}
    assert (read(hub, "docker.io").username, read(hub, "docker.io").password) == ("u", "p:w")
    assert read(hub, "ghcr.io") is None
    token = read({"auths": {"ghcr.io": {"identitytoken": "t0k"}}}, "ghcr.io")
    assert token.identity_token == "t0k" and not token.password
    assert read({"auths": {"ghcr.io": {}}}, "ghcr.io") is None
    assert "t0k" not in repr(token)
    assert reg.config_credentials("ghcr.io", {"DOCKER_CONFIG": str(tmp_path / "none")}, 5) is None
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        reg.config_credentials("ghcr.io", {"DOCKER_CONFIG": str(tmp_path)}, 5)
    home = reg.docker_config_path({"HOME": "/home/octopod"})
    assert home == Path("/home/octopod/.docker/config.json")


def test_redirect_is_reported_not_followed(env):
    fake = FakeRegistry(lambda method, path: (301, {"Location": f"https://example.test{path}"}))
    try:
        result = tag_check(env, REGISTRY_IMAGES=f"{fake.host}/team/app")
        assert_fails(result, "redirects (HTTP 301) to https://example.test", "REGISTRY_INSECURE")
    finally:
        fake.stop()


def test_env_credentials_go_to_one_registry_only(registries, env):
    """The pair is for the first image's registry; a public image elsewhere is asked anonymously."""
    private = f"{registries.basic.host}/team/app"
    public = f"{registries.token.host}/public/app"
    seen = registries.token_server.watch()
    result = tag_check(env, REGISTRY_IMAGES=f"{private},{public}", **CREDS)
    assert result.returncode == 0, result.stderr
    assert PASSWORD not in result.stderr
    assert seen.with_credentials == [False]  # the token realm got none
    # Named explicitly, the pair goes to the token registry instead: the basic one then lacks it.
    result = tag_check(env, REGISTRY_IMAGES=f"{private},{public}", REGISTRY_AUTH_HOST=registries.token.host,
                       **CREDS)
    assert_fails(result, private)


# -- token realms: whose token, and who gets the credentials --------------------------------

def _check_one(host: str, repository: str, tokens: reg.TokenCache,
               creds: reg.Credentials | None) -> reg.Result:
    """One image through one Registry sharing `tokens`, as check_images shares them in a run."""
    registry = reg.Registry(host, "http", Deadline(10, "REGISTRY_TIMEOUT"), lambda: creds, tokens)
    image = reg.parse_reference(f"{host}/{repository}")
    try:
        return reg.Result(image, kind=registry.check(image, "oci"))
    except OctopodError as exc:
        return reg.Result(image, error=exc)
    finally:
        registry.http.close()


def test_a_token_is_never_given_to_another_registry_naming_the_same_realm(registries):
    """A hostile registry copying the real one's realm and service gets a token of its own."""
    tokens: reg.TokenCache = {}
    assert _check_one(registries.token.host, "public/app", tokens, None).error is None
    theirs = {f"Bearer {token}" for token in tokens.values()}
    hostile = FakeRegistry(bearer_challenge(registries.token_server.url))
    try:
        result = _check_one(hostile.host, "public/app", tokens, None)
    finally:
        hostile.stop()
    assert "anonymous access refused" in str(result.error)
    sent = [a for a in hostile.authorizations if a]
    assert sent and not theirs & set(sent), "the hostile registry received the other's token"


def test_a_token_realm_on_another_host_gets_no_credentials(registries):
    """The realm is the real token server, reached as `localhost` from a registry on 127.0.0.1."""
    server = registries.token_server
    realm = server.url.replace("127.0.0.1", "localhost")
    creds = reg.Credentials("REGISTRY_USERNAME/REGISTRY_PASSWORD", USER, PASSWORD)
    for url, sent in ((realm, False), (server.url, True)):  # another host; the same host, another port
        fake = FakeRegistry(bearer_challenge(url))
        seen = server.watch()
        try:
            result = _check_one(fake.host, "team/app", {}, creds)
        finally:
            fake.stop()
        assert seen.with_credentials == [sent], url
        message = str(result.error)
        assert ("anonymous access refused" in message) != sent, message
        assert PASSWORD not in message


@pytest.mark.parametrize("registry, realm, trusted", [
    ("registry.example.com", "registry.example.com", True),
    ("registry.example.com:5000", "registry.example.com", True),  # ports do not matter
    ("registry-1.docker.io", "auth.docker.io", True),  # Docker Hub's published realm
    ("registry.gitlab.com", "gitlab.com", True),  # gitlab.com's
    ("registry.example.com", "auth.example.com", False),  # a sibling host: only when listed
    ("a.azurecr.io", "b.azurecr.io", False),  # another account's registry under one domain
    ("registry.example.com", "example.org", False),
    ("registry.example.com", "auth.example.com.evil.io", False),
    ("example.co.uk", "evil.co.uk", False),
    ("127.0.0.1:5000", "127.0.0.1", True),
    ("127.0.0.1:5000", "127.0.0.2", False),  # addresses: the same one only
    ("[::1]:5000", "[::1]:8443", True),
    ("localhost:5000", "127.0.0.1", False),
])
def test_realm_trusted(registry, realm, trusted):
    assert reg.realm_trusted(registry, realm) is trusted


def test_registry_token_realms_lists_the_pairs_an_operator_trusts():
    realms = reg.parse_realms(" registry.example.com=gitlab.example.com, r.example.com:5000=auth.example.com ")
    assert reg.realm_trusted("registry.example.com", "gitlab.example.com", realms)
    assert reg.realm_trusted("r.example.com:5000", "auth.example.com:443", realms)
    assert not reg.realm_trusted("other.example.com", "gitlab.example.com", realms)
    with pytest.raises(reg.ConfigError, match="REGISTRY_TOKEN_REALMS: 'nonsense' is not registry=realm-host"):
        reg.parse_realms("nonsense")
