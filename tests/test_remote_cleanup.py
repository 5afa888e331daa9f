"""Remote cleanup over SSH (fabric) against a real sshd on 127.0.0.1, after a real scripts/init.

The sshd runs on this machine, so a test checks the remote side's filesystem directly.
"""
from __future__ import annotations

import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import ROOT, run_script
from tests.support.sshd import Sshd, free_port, keygen
from tests.test_init import clean_env

NAME = "demo-1"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory) -> Iterator[Sshd]:
    with Sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture
def srv(tmp_path: Path) -> Path:
    """The remote host's directory of stagings: one for our deployment, one that must survive."""
    for name in (NAME, "other"):
        (tmp_path / "srv" / name / "data").mkdir(parents=True)
        (tmp_path / "srv" / name / "data" / "file").write_text("x")
    return tmp_path / "srv"


def host(sshd: Sshd, port: int | None = None) -> str:
    return f"{sshd.user}@127.0.0.1:{port or sshd.port}"


@pytest.fixture
def env(tmp_path: Path, sshd: Sshd, srv: Path) -> dict[str, str]:
    """Octopod's environment after `scripts/init` wrote the key and known_hosts into HOME."""
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(home, PYTHONPATH=str(ROOT), PROJECT_NAME="demo", NAMESPACE="octopod",
                    SSH_PRIVATE_KEY=sshd.client_key.read_text(), SSH_KNOWN_HOSTS=sshd.keyscan(),
                    REMOTE_CLEANUP_HOSTS=host(sshd),
                    REMOTE_CLEANUP_COMMANDS=f"rm -rf -- {shlex.quote(str(srv))}/{{name}}\n"
                                            "echo removed {name} from {namespace}",
                    REMOTE_CONNECT_TIMEOUT="5", REMOTE_COMMAND_TIMEOUT="20")
    result = run_script("init", env=env)
    assert result.returncode == 0, result.stderr
    return env


def remote_cleanup(env: dict[str, str], *args: str, name: str = NAME) -> subprocess.CompletedProcess:
    """The remote-cleanup task as a shell or `cleanup` would call it, from an unrelated directory."""
    argv = [sys.executable, "-m", "octopod_control", "--search-root", str(ROOT), "remote-cleanup",
            "--name", name, *args]
    return subprocess.run(argv, env=env, cwd="/", capture_output=True, text=True, timeout=120)


def assert_no_secret(result: subprocess.CompletedProcess, env: dict[str, str]) -> None:
    for line in env["SSH_PRIVATE_KEY"].splitlines()[1:-1]:
        assert line not in result.stdout + result.stderr


def test_removes_the_deployments_directory_on_the_host(env: dict[str, str], srv: Path) -> None:
    result = remote_cleanup(env)
    assert result.returncode == 0, result.stderr
    assert not (srv / NAME).exists() and (srv / "other" / "data" / "file").exists()
    assert result.stdout == ""  # remote output is log: stderr
    assert f"removed {NAME} from octopod" in result.stderr
    assert_no_secret(result, env)
    again = remote_cleanup(env)  # idempotent: nothing left to remove is no failure
    assert again.returncode == 0, again.stderr


@pytest.mark.parametrize("order", ["unreachable second", "unreachable first"])
def test_an_unreachable_host_fails_the_run_but_every_host_is_tried(
        env: dict[str, str], srv: Path, sshd: Sshd, order: str) -> None:
    closed = host(sshd, free_port())
    hosts = [host(sshd), closed] if order == "unreachable second" else [closed, host(sshd)]
    result = remote_cleanup({**env, "REMOTE_CLEANUP_HOSTS": ",".join(hosts)})
    assert result.returncode == 1
    assert not (srv / NAME).exists(), "the reachable host was not cleaned"
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: remote cleanup: 1 failure(s):")
    assert f"{closed}: could not connect" in error and "rm -rf --" in error  # host and command named
    assert "Traceback" not in result.stderr


def test_a_host_that_never_answers_is_bounded_by_the_connect_timeout(
        env: dict[str, str], srv: Path) -> None:
    with socket.socket() as silent:  # accepts TCP (backlog) but never sends an SSH banner
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        started = time.monotonic()
        result = remote_cleanup({**env, "REMOTE_CONNECT_TIMEOUT": "1",
                                 "REMOTE_CLEANUP_HOSTS": f"127.0.0.1:{silent.getsockname()[1]}"})
        elapsed = time.monotonic() - started
    assert result.returncode == 1 and "could not connect" in result.stderr
    assert elapsed < 10
    assert (srv / NAME).exists()


def test_a_hanging_command_is_bounded_and_the_next_command_still_runs(
        env: dict[str, str], tmp_path: Path) -> None:
    marker = tmp_path / "after"
    commands = f"sleep 30\ntouch {shlex.quote(str(marker))}"
    started = time.monotonic()
    result = remote_cleanup({**env, "REMOTE_COMMAND_TIMEOUT": "1", "REMOTE_CLEANUP_COMMANDS": commands})
    assert time.monotonic() - started < 15
    assert result.returncode == 1
    assert "`sleep 30` timed out after 1s" in result.stderr
    assert marker.exists()


def test_a_failing_command_is_named_with_its_exit_code(env: dict[str, str]) -> None:
    result = remote_cleanup({**env, "REMOTE_CLEANUP_COMMANDS": "echo to-the-log >&2; exit 7"})
    assert result.returncode == 1
    assert "to-the-log" in result.stderr
    assert "`echo to-the-log >&2; exit 7` exited with 7" in result.stderr


@pytest.mark.parametrize("case", ["changed key", "unknown host"])
def test_a_wrong_or_unknown_host_key_is_refused(
        env: dict[str, str], srv: Path, sshd: Sshd, tmp_path: Path, case: str) -> None:
    other = keygen(tmp_path / "impostor")
    kind, key = Path(f"{other}.pub").read_text().split()[:2]
    name = f"[127.0.0.1]:{sshd.port}" if case == "changed key" else "[db.example.com]:22"
    known_hosts = Path(env["HOME"]) / ".ssh" / "known_hosts"
    known_hosts.write_text(f"{name} {kind} {key}\n")
    result = remote_cleanup(env)
    assert result.returncode == 1
    assert (srv / NAME).exists(), "a command ran on a host whose key was not verified"
    assert ("host key CHANGED" if case == "changed key" else "is not in") in result.stderr
    assert "refused" in result.stderr
    assert known_hosts.read_text() == f"{name} {kind} {key}\n"  # nothing learnt or added


def test_without_known_hosts_an_unknown_key_is_accepted_with_a_warning(
        env: dict[str, str], srv: Path) -> None:
    (Path(env["HOME"]) / ".ssh" / "known_hosts").unlink()
    result = remote_cleanup({k: v for k, v in env.items() if k != "SSH_KNOWN_HOSTS"})
    assert result.returncode == 0, result.stderr
    assert "accepting unverified host key" in result.stderr
    assert not (srv / NAME).exists()
    strict = remote_cleanup({k: v for k, v in env.items() if k != "SSH_KNOWN_HOSTS"}
                            | {"REMOTE_STRICT_HOST_KEYS": "true"})
    assert strict.returncode == 1 and "refused" in strict.stderr


# Each injection would create a file in the remote command's working directory.
PROJECT = """it's a "demo"; touch p1 $(touch p2) `touch p3` | touch p4 && touch p5 \\ {x} * ~ > p6"""


def test_values_are_shell_quoted_no_injection(env: dict[str, str], tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    commands = (f"cd {shlex.quote(str(work))} && printf '%s\\n' {{project_name}} {{name}} {{namespace}} > out\n"
                f"cd {shlex.quote(str(work))} && mkdir -- {{project_name}}")
    result = remote_cleanup({**env, "REMOTE_CLEANUP_COMMANDS": commands},
                            "--project-name", PROJECT, "--namespace", "ns-1")
    assert result.returncode == 0, result.stderr
    assert (work / "out").read_text() == f"{PROJECT}\n{NAME}\nns-1\n"  # one argument each, verbatim
    assert sorted(p.name for p in work.iterdir()) == sorted(["out", PROJECT])  # and nothing else ran


@pytest.mark.parametrize("template,message", [
    ("rm -rf /srv/{tag}", "unknown placeholder {tag}"),
    ("rm -rf /srv/{name!r}", "unknown placeholder {name}"),
    ("echo {}", "unknown placeholder {}"),
    ("echo {name", "expected '}'"),
])
def test_a_bad_template_is_a_config_error_before_any_connection(
        env: dict[str, str], sshd: Sshd, template: str, message: str) -> None:
    before = sshd.log.read_text().count("Connection from")
    result = remote_cleanup({**env, "REMOTE_CLEANUP_COMMANDS": f"true\n{template}"})
    assert result.returncode == 78
    assert message in result.stderr and "REMOTE_CLEANUP_COMMANDS" in result.stderr
    assert sshd.log.read_text().count("Connection from") == before


@pytest.mark.parametrize("hosts", ["user@@host", "host:99999", "host:22:33", "-oProxyCommand=x"])
def test_a_bad_host_list_is_a_config_error(env: dict[str, str], hosts: str) -> None:
    result = remote_cleanup({**env, "REMOTE_CLEANUP_HOSTS": f"{hosts}"})
    assert result.returncode == 78 and "REMOTE_CLEANUP_HOSTS" in result.stderr


def test_no_hosts_is_nothing_to_do(env: dict[str, str], srv: Path) -> None:
    result = remote_cleanup({**env, "REMOTE_CLEANUP_HOSTS": ""})
    assert result.returncode == 0 and result.stdout == ""
    assert (srv / NAME).exists()
