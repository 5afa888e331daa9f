"""Remote cleanup over SSH (fabric) against a real sshd on 127.0.0.1, after a real scripts/init.

The sshd runs on this machine, so a test checks the remote side's filesystem directly.
"""
from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import ROOT, run_script
from tests.support.ports import refused_port
from tests.support.sshd import Sshd, keygen
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
    argv = [sys.executable, "-m", "octopod_control", "remote-cleanup", "--name", name, *args]
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
    with refused_port() as port:
        closed = host(sshd, port)
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
        # Every other bound far away: only the 1 s connect timeout can end this soon.
        result = remote_cleanup({**env, "REMOTE_CONNECT_TIMEOUT": "1", "REMOTE_COMMAND_TIMEOUT": "300",
                                 "REMOTE_CLEANUP_HOSTS": f"127.0.0.1:{silent.getsockname()[1]}"})
        elapsed = time.monotonic() - started
    assert result.returncode == 1 and "could not connect" in result.stderr
    assert elapsed < 15, elapsed  # about 1.2 s; the 1 s timeout plus a loaded machine's slack
    assert (srv / NAME).exists()


def test_a_hanging_command_is_bounded_and_the_next_command_still_runs(
        env: dict[str, str], tmp_path: Path) -> None:
    marker, stop = tmp_path / "after", tmp_path / "stop"
    # Hangs until the test ends (the remote side is not killed when we give up on it; this way it
    # does not outlive the test), so only REMOTE_COMMAND_TIMEOUT can end it.
    hang = tmp_path / "hang.sh"
    hang.write_text(f"until [ -e {shlex.quote(str(stop))} ]; do sleep 0.1; done\n")
    commands = f"sh {hang}\ntouch {shlex.quote(str(marker))}"
    try:
        started = time.monotonic()
        result = remote_cleanup({**env, "REMOTE_COMMAND_TIMEOUT": "1", "REMOTE_CLEANUP_COMMANDS": commands})
        elapsed = time.monotonic() - started
    finally:
        stop.touch()
    assert elapsed < 20, elapsed  # about 1.4 s: the 1 s timeout plus slack; without it, forever
    assert result.returncode == 1
    assert f"`sh {hang}` timed out after 1s" in result.stderr
    assert marker.exists()


def _measured(env: dict[str, str], limit: float = 180) -> tuple[subprocess.CompletedProcess, float, int]:
    """remote_cleanup, with its wall time and peak RSS (KiB, from wait4: this child alone)."""
    argv = [sys.executable, "-m", "octopod_control", "remote-cleanup", "--name", NAME]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(argv, env=env, cwd="/", stdout=out, stderr=err)
        watchdog = threading.Timer(limit, proc.kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            watchdog.cancel()
        elapsed = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        result = subprocess.CompletedProcess(argv, proc.returncode, out.read().decode(),
                                             err.read().decode(errors="replace"))
    return result, elapsed, usage.ru_maxrss


def test_megabytes_of_remote_output_keep_memory_and_time_bounded_and_report_the_tail(
        env: dict[str, str], sshd: Sshd) -> None:
    secret = "tail-secret-0123456789"
    env = {**env, "REGISTRY_PASSWORD": secret, "REMOTE_COMMAND_TIMEOUT": "120"}
    small, _, baseline = _measured({**env, "REMOTE_CLEANUP_COMMANDS": "seq 1 3"})
    assert small.returncode == 0, small.stderr
    # About 21 MB of output, then a secret and a marker: the tail.
    result, elapsed, peak = _measured({**env, "REMOTE_CLEANUP_COMMANDS":
                                       f"seq 1 3000000; echo {secret}; echo done-marker"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert elapsed < 30, f"{elapsed:.1f}s for 21 MB of output"
    assert peak - baseline < 12 * 1024, f"peak RSS {peak} KiB against {baseline} KiB for 3 lines"
    assert len(result.stderr) < 512 * 1024  # 64 KiB of short lines, each with the host prefix
    prefix = f"[{host(sshd)}] "
    remote = [line[len(prefix):] for line in result.stderr.splitlines() if line.startswith(prefix)]
    assert remote[-3:] == ["3000000", "***", "done-marker"]  # the tail, redacted
    assert "1" not in remote and sum(len(line) + 1 for line in remote) <= 64 * 1024
    assert "earlier bytes of output not shown" in result.stderr
    assert secret not in result.stderr


def test_the_tail_keeps_the_last_bytes_from_a_whole_line() -> None:
    from octopod_control.remote import Tail

    tail = Tail(limit=10)
    for _ in range(1000):
        tail.add(b"line\n")
        assert len(tail.data) <= 2 * 10 + 5
    assert tail.text() == ("line\nline\n", 5000 - 10)  # kept from a line's start: shown whole
    tail.add(b"ab\n")  # the kept bytes now begin inside a line: that part is not shown
    assert tail.text() == ("line\nab\n", 5003 - 8)
    one_line = Tail(limit=10)
    one_line.add(b"x" * 100)  # no whole line left: nothing of it is shown
    assert one_line.text() == ("", 100)
    assert Tail(limit=10).text() == ("", 0)


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


def test_by_default_an_unknown_key_is_refused_even_without_known_hosts(
        env: dict[str, str], srv: Path) -> None:
    (Path(env["HOME"]) / ".ssh" / "known_hosts").unlink()
    result = remote_cleanup({k: v for k, v in env.items() if k != "SSH_KNOWN_HOSTS"})
    assert result.returncode == 1
    assert "is not in" in result.stderr and "(missing); refused" in result.stderr
    assert (srv / NAME).exists(), "a command ran on a host whose key was not verified"
    assert not (Path(env["HOME"]) / ".ssh" / "known_hosts").exists()  # nothing learnt


@pytest.mark.parametrize("setting", ["auto", "false"])
def test_auto_or_false_without_known_hosts_accepts_an_unknown_key_with_a_warning(
        env: dict[str, str], srv: Path, setting: str) -> None:
    (Path(env["HOME"]) / ".ssh" / "known_hosts").unlink()
    result = remote_cleanup({k: v for k, v in env.items() if k != "SSH_KNOWN_HOSTS"}
                            | {"REMOTE_STRICT_HOST_KEYS": setting})
    assert result.returncode == 0, result.stderr
    assert "accepting unverified host key" in result.stderr
    assert not (srv / NAME).exists()


# Each injection would create a file in the remote command's working directory.
PROJECT = """it's a "demo"; touch p1 $(touch p2) `touch p3` | touch p4 && touch p5 \\ {x} * ~ > p6"""


def _commands_in(work: Path) -> str:
    return (f"cd {shlex.quote(str(work))} && printf '%s\\n' {{project_name}} {{name}} {{namespace}} "
            f"{{base_domain}} > out\n"
            f"cd {shlex.quote(str(work))} && mkdir -- {{project_name}}")


def test_values_reach_the_command_as_one_argument_each(env: dict[str, str], tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    result = remote_cleanup({**env, "REMOTE_CLEANUP_COMMANDS": _commands_in(work)},
                            "--project-name", "Shop_2.b-x", "--namespace", "ns-1",
                            "--base-domain", "stage.example.com")
    assert result.returncode == 0, result.stderr
    assert (work / "out").read_text() == f"Shop_2.b-x\n{NAME}\nns-1\nstage.example.com\n"
    assert sorted(p.name for p in work.iterdir()) == ["Shop_2.b-x", "out"]  # and nothing else ran


@pytest.mark.parametrize("flag,value", [
    ("--project-name", PROJECT), ("--project-name", ".."), ("--project-name", "-rf"),
    ("--project-name", "a b"), ("--project-name", "café"), ("--base-domain", "example.com:8443"),
])
def test_an_unsafe_project_name_or_domain_is_refused_before_any_connection(
        env: dict[str, str], sshd: Sshd, tmp_path: Path, flag: str, value: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    before = sshd.log.read_text().count("Connection from")
    flags = {"--base-domain": "stage.example.com", flag: value}
    result = remote_cleanup({**env, "REMOTE_CLEANUP_COMMANDS": _commands_in(work)},
                            *[word for pair in flags.items() for word in pair])
    assert result.returncode == 64, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: {flag}:") and "letters, digits" in error, error
    assert list(work.iterdir()) == [] and sshd.log.read_text().count("Connection from") == before


@pytest.mark.parametrize("template,placeholder", [
    ("rm -rf -- /srv/stagings/{project_name}", "{project_name}"),
    ("dropdb --if-exists staging_{base_domain}", "{base_domain}"),
])
def test_an_empty_value_is_refused_before_any_connection(
        env: dict[str, str], sshd: Sshd, template: str, placeholder: str) -> None:
    before = sshd.log.read_text().count("Connection from")
    result = remote_cleanup({**env, "PROJECT_NAME": "", "BASE_DOMAIN": "",
                             "REMOTE_CLEANUP_COMMANDS": f"true\n{template}"})
    assert result.returncode == 64, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert template in error and f"needs {placeholder}" in error, error
    assert sshd.log.read_text().count("Connection from") == before


@pytest.mark.parametrize("template", [
    "rm -rf '/srv/stagings/{name}'",
    'rm -rf "/srv/stagings/{name}"',
    "echo \"it's {name}\"",
    "echo 'a' \"b {namespace} c\"",
    "echo \\{name}",
    "echo ${name}",
])
def test_a_placeholder_inside_quotes_is_a_config_error(env: dict[str, str], sshd: Sshd,
                                                        template: str) -> None:
    before = sshd.log.read_text().count("Connection from")
    result = remote_cleanup({**env, "REMOTE_CLEANUP_COMMANDS": f"true\n{template}"})
    assert result.returncode == 78, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert "REMOTE_CLEANUP_COMMANDS" in error and template in error, error
    assert sshd.log.read_text().count("Connection from") == before


def test_render_commands_quotes_and_checks_only_what_a_template_uses() -> None:
    from octopod_control import remote

    fields = {"name": "demo-1", "namespace": "ns", "project_name": PROJECT, "base_domain": ""}
    # Neither {project_name} nor {base_domain} is used: their values do not matter.
    raw = "echo 'a {{name}} b' {name} \"$HOME\" {namespace}\n# echo {project_name}\n\n"
    assert remote.render_commands(raw, fields) == ["echo 'a {name} b' demo-1 \"$HOME\" ns"]
    assert remote.render_commands('echo \\" {name} \\"', fields) == ['echo \\" demo-1 \\"']


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
