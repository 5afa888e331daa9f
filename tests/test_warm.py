"""The warm command server (issue 17): every call it serves ends exactly as a cold run ends.

Each test runs a copy of the project (its code and env files may change without touching the
tree; the venv is linked, the client copied) with a runtime directory of its own, and stops the
servers it started by PID at the end. Whether a call really took the warm path is read from the
server's log (WARM_LOG=1: one "call" line per call it forked), never guessed from timing. The
rest of the suite runs cold (tests/conftest.py sets WARM=false) unless WARM=true is set.

What is proven here:
- a corpus of calls (exit codes 0, 1, 2, 3, 64, 78; stdout and stderr compared byte for byte;
  KUBECONFIG differing per call, relative to the call's own working directory; env files edited
  between two calls) gives the same result warm and cold;
- the call's process looks as a cold run's (cwd, umask, argv, environment in order, sys.path, the
  standard streams, signal dispositions and mask, time zone, __main__), and ends as one ends
  (a traceback with the same frames, KeyboardInterrupt, SystemExit's forms, atexit, threads,
  unflushed output), proven by a probe planted in the copy;
- a change in the cluster shows in the very next warm check (nothing of it is cached);
- the socket directory is private (0700, ours, not a symlink, in a base nobody else can swap it
  in; one ever opened is refused), another user cannot connect nor listen in our place (it
  receives nothing), and an unusable directory means a cold run with no server;
- a server is replaced when the code or the Python changes (also while it starts), exits after
  WARM_IDLE (its lock file gone), keeps its memory flat and is started once for concurrent first
  calls; an import warning a cold run shows means no server, and no restart for BACKOFF; one it
  hides does not matter;
- WARM=false (every false spelling) contacts no server;
- a stalled server costs a bounded wait and never runs the call; a client ended by SIGTERM,
  SIGINT or SIGKILL ends its forked child and the child's process group (grandchildren too);
  a server killed during a call leaves the call its cold result, and its signals;
- the child's ending never unwinds into the server's code; the housekeeping signals only a
  process holding the lock it was found by.
The bundle's warm path in a busybox-only root as uid 1000 is in tests/test_bundle.py.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from octopod_control import frozen, warm
from octopod_dev import warm_client
from tests.conftest import ROOT, without_helm
from tests.test_check import add_pod, app_labels, deploy_status

CHART = str(ROOT / "tests" / "charts" / "workloads")
SYSTEM_PYTHON = "/usr/bin/python3"  # readable by every user (the venv's Python lives under /root)


# -- fixtures and helpers
@pytest.fixture(scope="session")
def client() -> Path:
    try:
        return warm_client.build()
    except warm_client.BuildError as exc:
        pytest.fail(f"the warm client does not build: {exc}")


@pytest.fixture
def project(tmp_path: Path, client: Path) -> Path:
    """A copy of the project: the product, env/ and scripts/; the venv linked, the client copied."""
    root = tmp_path / "project"
    for part in ("octopod_control", "env", "scripts"):
        shutil.copytree(ROOT / part, root / part)
    (root / ".venv").symlink_to(ROOT / ".venv")
    (root / "build" / "warm").mkdir(parents=True)
    shutil.copy2(client, root / "build" / "warm" / "octopod-warm")
    return root


@pytest.fixture
def runtime() -> Iterator[Path]:
    """XDG_RUNTIME_DIR of the test's own: short, since a socket's path has 108 bytes at most."""
    base = Path(tempfile.mkdtemp(prefix="ow-", dir="/tmp"))
    try:
        yield base
    finally:
        warm_client.stop_servers(warm_client.socket_dir(base))
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def env(octopod_env: dict[str, str], runtime: Path) -> dict[str, str]:
    return {**octopod_env, "XDG_RUNTIME_DIR": str(runtime), "WARM": "true", "WARM_LOG": "1",
            "KUBE_TIMEOUT": "10"}


class Servers:
    """What the servers of one runtime directory wrote: their log lines, their PIDs."""

    def __init__(self, runtime: Path) -> None:
        self.dir = warm_client.socket_dir(runtime)

    def log(self) -> list[str]:
        return [line for path in sorted(self.dir.glob("*.log")) for line in path.read_text().splitlines()]

    def calls(self) -> int:
        return sum(" call pid=" in line for line in self.log())

    def pids(self) -> list[int]:
        return warm_client.server_pids(self.dir)

    def sockets(self) -> list[Path]:
        return sorted(self.dir.glob("*.sock")) if self.dir.is_dir() else []

    def wait_serving(self, count: int = 1, timeout: float = 30) -> list[int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            serving = [line for line in self.log() if " serving " in line]
            if len(serving) >= count and self.sockets() and self.pids():
                return self.pids()
            time.sleep(0.05)
        raise AssertionError(f"no warm server started: {self.log()}")


@pytest.fixture
def servers(runtime: Path) -> Servers:
    return Servers(runtime)


def run(project: Path, script: str, *args: str, env: dict[str, str], cwd: str | Path = "/",
        timeout: float = 60) -> subprocess.CompletedProcess:
    """scripts/<script> of the copy by absolute path, as Octopod calls it; bytes, not text."""
    return subprocess.run([str(project / "scripts" / script), *args], env=env, cwd=cwd,
                          capture_output=True, timeout=timeout)


def start_server(project: Path, env: dict[str, str], servers: Servers) -> int:
    """The first call runs cold and starts the server; returns its PID once it serves."""
    done = run(project, "info", "--name", "prime", env={**env, "INFO_INGRESS": "false"})
    assert done.returncode == 0, done.stderr
    pid, = servers.wait_serving()
    return pid


def warm_and_cold(project: Path, servers: Servers, script: str, *args: str, env: dict[str, str],
                  cwd: str | Path = "/") -> subprocess.CompletedProcess:
    """The call cold (WARM=false), then warm; both results equal, and only the second was served."""
    before = servers.calls()
    cold = run(project, script, *args, env={**env, "WARM": "false"}, cwd=cwd)
    assert servers.calls() == before, "WARM=false reached the server"
    warmed = run(project, script, *args, env=env, cwd=cwd)
    assert servers.calls() == before + 1, f"{script} {args}: not served warm: {servers.log()[-3:]}"
    assert (warmed.returncode, warmed.stdout, warmed.stderr) == (cold.returncode, cold.stdout, cold.stderr), \
        (script, args)
    return warmed


def create(project: Path, name: str, *args: str, env: dict[str, str], tag: str = "v1") -> None:
    done = run(project, "create", "--name", name, "--tag", tag, *args,
               env={**env, "HELM_WAIT": "false", "CHART": CHART}, timeout=180)
    assert done.returncode == 0, done.stderr


def kubeconfig_for(path: Path, port: int) -> Path:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    return path


def alive(pid: int) -> bool:
    return warm_client._alive(pid)


def group_members(pgid: int) -> list[int]:
    """Live processes of a process group, from /proc."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry))
    return members


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def needs_root(what: str) -> None:
    if os.geteuid() != 0:
        why = f"{what} needs root (this run is uid {os.geteuid()})"
        if os.environ.get("OCTOPOD_TESTS_AS_ROOT"):  # .ci/run sets it: CI must run these, not skip them
            pytest.fail(f"{why}; OCTOPOD_TESTS_AS_ROOT is set, so this is an error, not a skip")
        pytest.skip(f"{why}; CI runs it as root")


# -- the same result, warm and cold
@pytest.mark.parametrize("helm_bin", ["helm4"], indirect=True)
def test_a_corpus_of_calls_gives_the_same_bytes_warm_and_cold(cluster, namespace, project, env, servers,
                                                            dead_kubeconfig, tmp_path):
    create(project, "web", env=env)
    create(project, "part", "--deployment-override", "replicas=3", env=env)
    cluster.ready(namespace)
    deploy_status(cluster, namespace, "part-d0", want=3, available=1)
    crash = {"name": "app", "image": "registry.example.com/example/app:v1", "restartCount": 5,
             "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}},
             "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}
    add_pod(cluster, namespace, "part-d0-1", app_labels("part"), crash)
    here = tmp_path / "here"
    here.mkdir()
    shutil.copyfile(env["KUBECONFIG"], here / "kc")  # KUBECONFIG=kc: relative to the call's cwd
    start_server(project, env, servers)
    corpus = [
        ("check", ["--name", "web", "--tag", "v1"], {}, "/", 0),
        ("check", ["--name", "web", "--tag", "v2"], {}, "/", 3),
        ("check", ["--name", "part"], {}, "/", 2),
        ("check", ["--name", "nope"], {}, "/", 1),
        ("check", ["--name", "web"], {"KUBECONFIG": dead_kubeconfig}, "/", 1),
        ("check", ["--name", "web"], {"KUBECONFIG": "kc"}, here, 0),
        ("check", ["--name", "web"], {"KUBECONFIG": "kc"}, "/", None),
        ("check", ["--name", "web", "--bogus"], {}, "/", 64),
        ("check", ["--name", "web", "--name", "web"], {}, "/", 64),
        ("check", ["--name", "web"], {"KUBE_TIMEOUT": "abc"}, "/", 78),
        ("check", ["--name", "web"], {"OCTOPOD_ENV": "nope"}, "/", 78),
        ("check", ["--help"], {}, "/", 0),
        ("info", ["--name", "web"], {}, "/", 0),
        ("info", ["--name", "web"], {"INFO_URLS": "a=https://{name}.{base_domain}/é b=x://{tag}"}, "/", 0),
        ("info", ["--name", "Bad_Name"], {}, "/", 64),
        ("tag_check", ["--name", "web", "--tag", "v1"], {}, "/", 0),
        ("tag_check", ["--name", "web"], {}, "/", 64),
        ("tag_check", ["--name", "web", "--tag", "v1"],
         {"REGISTRY_IMAGES": "127.0.0.1:9/team/app", "REGISTRY_INSECURE": "true", "REGISTRY_TIMEOUT": "2"},
         "/", 1),
        ("archive_check", ["--name", "web"], {}, "/", 1),
        ("archive_check", ["--name", "nope"], {}, "/", 0),
    ]
    codes = set()
    for script, args, extra, cwd, expected in corpus:
        done = warm_and_cold(project, servers, script, *args, env={**env, **extra}, cwd=cwd)
        if expected is not None:
            assert done.returncode == expected, (script, args, done.stderr)
        codes.add(done.returncode)
    assert {0, 1, 2, 3, 64, 78} <= codes


@without_helm
def test_env_files_are_read_afresh_by_every_call(project, env, servers):
    env = {**env, "INFO_INGRESS": "false", "BASE_DOMAIN": "b.example"}
    env.pop("INFO_URLS", None)
    start_server(project, env, servers)
    dotenv = project / ".env"
    for word in ("one", "two"):
        dotenv.write_text(f"INFO_URLS=a=https://{word}.{{base_domain}}\n")
        done = warm_and_cold(project, servers, "info", "--name", "w", env=env)
        assert done.stdout == f"a,https://{word}.b.example\n".encode()
    (project / "env" / "t.env").write_text("INFO_URLS='p=https://profile.{base_domain}'\n")  # dotenv's syntax
    done = warm_and_cold(project, servers, "info", "--name", "w", env={**env, "OCTOPOD_ENV": "t"})
    assert done.stdout == b"a,https://two.b.example\n"  # .env wins over the profile
    dotenv.unlink()
    done = warm_and_cold(project, servers, "info", "--name", "w", env={**env, "OCTOPOD_ENV": "t"})
    assert done.stdout == b"p,https://profile.b.example\n"


@without_helm
def test_ways_of_calling_a_wrapper_are_served_warm(project, env, servers, tmp_path):
    env = {**env, "INFO_INGRESS": "false", "BASE_DOMAIN": "b.example"}
    start_server(project, env, servers)
    link = tmp_path / "info-link"
    link.symlink_to(project / "scripts" / "info")
    ways = [(project / "scripts", ["./info"]), (project, ["scripts/info"]),
            (project / "env", ["../scripts/info"]), (tmp_path, [str(link)])]
    # ../scripts/info names the project as .../env/..: another root string (sys.path, argv[0]),
    # so another server, started by its first call; every second call is served warm.
    for attempt in range(2):
        for cwd, argv in ways:
            before = servers.calls()
            done = subprocess.run([*argv, "--name", "w"], cwd=cwd, env=env, capture_output=True, timeout=60)
            assert (done.returncode, done.stdout, done.stderr) == (0, b"app,https://w.b.example\n", b""), argv
            if attempt:
                assert servers.calls() == before + 1, argv
        if not attempt:
            servers.wait_serving(count=2)


@pytest.mark.parametrize("helm_bin", ["helm4"], indirect=True)
def test_a_change_in_the_cluster_shows_in_the_very_next_warm_check(cluster, namespace, project, env, servers):
    create(project, "live", "--deployment-override", "replicas=2", env=env)
    start_server(project, env, servers)
    steps = [(None, 1), ((2, 1), 2), ((2, 2), 0), ((2, 0), 1)]
    for status, code in steps:
        if status:
            deploy_status(cluster, namespace, "live-d0", want=status[0], available=status[1])
        before = servers.calls()
        done = run(project, "check", "--name", "live", "--tag", "v1", env=env)
        assert servers.calls() == before + 1
        assert done.returncode == code, (status, done.stderr)
    create(project, "live", "--deployment-override", "replicas=2", env=env, tag="v2")
    assert run(project, "check", "--name", "live", "--tag", "v1", env=env).returncode == 3
    deploy_status(cluster, namespace, "live-d0", want=2, available=2)
    assert run(project, "check", "--name", "live", "--tag", "v2", env=env).returncode == 0


@without_helm
def test_an_interpreter_variable_read_at_import_is_answered_cold(project, env, servers):
    """INVOKE_DEBUG is read by Invoke when it is imported: such a call runs cold, whole."""
    env = {**env, "INFO_INGRESS": "false", "BASE_DOMAIN": "b.example"}
    start_server(project, env, servers)
    before = servers.calls()
    done = run(project, "info", "--name", "w", env={**env, "INVOKE_DEBUG": "1"})
    assert done.returncode == 0 and done.stdout == b"app,https://w.b.example\n"
    assert b"invoke" in done.stderr  # Invoke's debug log: a cold interpreter imported it with the flag
    assert servers.calls() == before
    assert any("a variable read at import is set" in line for line in servers.log())


@without_helm
def test_a_start_up_variable_keys_another_server(project, env, servers):
    """LANG is read when the interpreter starts: a call with another LANG meets another server."""
    env = {**env, "INFO_INGRESS": "false", "BASE_DOMAIN": "b.example", "LANG": "C.UTF-8"}
    first = start_server(project, env, servers)
    other = {**env, "LANG": "C"}
    run(project, "info", "--name", "w", env=other)
    pids = servers.wait_serving(count=2)
    assert len(pids) == 2 and first in pids and len(servers.sockets()) == 2
    done = warm_and_cold(project, servers, "info", "--name", "w", env=other)
    assert done.stdout == b"app,https://w.b.example\n"


# -- safe: private, one per key, replaced, idle, bounded
@without_helm
def test_the_socket_directory_is_private(project, env, servers, runtime):
    """The client makes it 0700, its files are 0600; one that was ever open to others is refused
    (what another user planted in it meanwhile would still be there), never tightened."""
    env = {**env, "INFO_INGRESS": "false", "BASE_DOMAIN": "b.example"}
    start_server(project, env, servers)
    directory = servers.dir
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for path in directory.iterdir():
        info = path.lstat()
        assert info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) == 0o600, path
    sock, = servers.sockets()
    assert stat.S_ISSOCK(sock.lstat().st_mode)
    warm_client.stop_servers(directory)
    wait_until(lambda: not servers.sockets(), 10, "the server did not retire")
    directory.chmod(0o755)
    assert_cold_without_server(project, env, runtime)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o755  # left as it was: refused


def assert_cold_without_server(project: Path, env: dict[str, str], runtime: Path) -> None:
    """Two calls succeed, cold, and no server runs anywhere under the runtime directory."""
    for _ in range(2):
        done = run(project, "info", "--name", "w", env=env)
        assert (done.returncode, done.stdout, done.stderr) == (0, b"app,https://w.b.example\n", b"")
    time.sleep(1)
    assert [p for p in runtime.rglob("*") if p.is_socket()] == []
    assert warm_client.server_pids(warm_client.socket_dir(runtime)) == []


@without_helm
@pytest.mark.parametrize("how", ["symlink", "a file", "missing base", "not a directory base",
                                 "base open to others", "base of another user"])
def test_an_unusable_socket_directory_means_cold_runs(project, env, runtime, how):
    env = {**env, "INFO_INGRESS": "false", "BASE_DOMAIN": "b.example"}
    directory = warm_client.socket_dir(runtime)
    if how == "symlink":  # a directory of ours, reached through a link another user could have planted
        (runtime / "elsewhere").mkdir(mode=0o700)
        directory.symlink_to(runtime / "elsewhere")
    elif how == "a file":
        directory.write_text("")
    elif how == "missing base":
        env["XDG_RUNTIME_DIR"] = str(runtime / "absent")
    elif how == "not a directory base":
        (runtime / "file").write_text("")
        env["XDG_RUNTIME_DIR"] = str(runtime / "file")
    elif how == "base open to others":  # writable by all, not sticky: our directory could be swapped
        runtime.chmod(0o777)
    else:
        needs_root("chowning the runtime base to another user")
        os.chown(runtime, 1000, 1000)
    assert_cold_without_server(project, env, runtime)


@without_helm
def test_a_socket_directory_of_another_user_is_refused(project, env, runtime):
    needs_root("chowning the socket directory to another user")
    directory = warm_client.socket_dir(runtime)
    directory.mkdir(mode=0o700)
    os.chown(directory, 1000, 1000)
    env = {**env, "INFO_INGRESS": "false", "BASE_DOMAIN": "b.example"}
    assert_cold_without_server(project, env, runtime)
    assert list(directory.iterdir()) == []


CONNECT = """
import socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
try:
    s.connect(sys.argv[1])
except OSError as exc:
    print("connect:", type(exc).__name__); sys.exit()
try:
    s.sendall(b"OCW\\x01" + struct.pack("<I", 60) + b"0" * 60)
    answer = s.recv(16)
except OSError:  # reset: the server closed the connection on us
    answer = b""
print("answer:", answer)
"""


@without_helm
def test_another_user_cannot_connect(project, env, servers):
    needs_root("running a client as uid 1000 (setpriv)")
    start_server(project, env, servers)
    sock, = servers.sockets()
    as_1000 = ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", SYSTEM_PYTHON, "-c", CONNECT,
               str(sock)]
    done = subprocess.run(as_1000, capture_output=True, text=True, timeout=30)
    assert done.stdout == "connect: PermissionError\n", done.stderr  # the 0700 directory
    # Opened up by hand: the server itself still refuses another uid (SO_PEERCRED).
    runtime = servers.dir.parent
    for path, mode in ((runtime, 0o711), (servers.dir, 0o711), (sock, 0o666)):
        path.chmod(mode)
    try:
        done = subprocess.run(as_1000, capture_output=True, text=True, timeout=30)
    finally:
        for path in (runtime, servers.dir, sock):
            path.chmod(0o600 if path == sock else 0o700)
    assert done.stdout == "answer: b''\n", done.stderr
    assert any("refused connection" in line and "uid=1000" in line for line in servers.log())


LISTENER = """
import json, os, select, socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o777)
s.listen(8)
print("listening", flush=True)
connections, received = 0, b""
while True:
    ready, _, _ = select.select([s, sys.stdin], [], [], 0.2)
    if sys.stdin in ready:
        break
    if s in ready:
        conn, _ = s.accept()
        connections += 1
        conn.settimeout(1)
        try:
            while chunk := conn.recv(65536):
                received += chunk
        except OSError:
            pass
print(json.dumps({"connections": connections, "received": received.decode("latin-1")}))
"""


@without_helm
def test_a_listener_of_another_user_gets_nothing(project, env, servers, runtime):
    """uid 1000 binds the socket's name while the directory is open to it: whatever happens to the
    directory next (still open; closed again with their socket in it; their socket file made
    ours), the call runs cold and their listener receives not one byte (the call carries the
    environment: secrets)."""
    needs_root("a listener as uid 1000 (setpriv)")
    env = {**env, "INFO_INGRESS": "false", "BASE_DOMAIN": "b.example", "REGISTRY_PASSWORD": "SECRET-x"}
    start_server(project, env, servers)
    path, = servers.sockets()
    warm_client.stop_servers(servers.dir)
    wait_until(lambda: not servers.sockets(), 10, "the server did not retire")
    runtime.chmod(0o711)
    servers.dir.chmod(0o777)
    listener = subprocess.Popen(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", SYSTEM_PYTHON,
                                 "-c", LISTENER, str(path)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline() == "listening\n"
        serving = sum(" serving " in line for line in servers.log())
        for step in ("open directory", "their socket file", "our socket file, their listener"):
            if step == "their socket file":
                servers.dir.chmod(0o700)
            elif step.startswith("our socket file"):
                os.chown(path, os.getuid(), os.getgid())
            done = run(project, "info", "--name", "w", env=env)
            assert (done.returncode, done.stdout, done.stderr) == (0, b"app,https://w.b.example\n", b""), step
    finally:
        out, _ = listener.communicate("", timeout=30)
    heard = json.loads(out)
    assert heard["received"] == "", heard
    assert "SECRET" not in out
    time.sleep(0.5)
    assert sum(" serving " in line for line in servers.log()) == serving and servers.pids() == []


@without_helm
def test_the_server_is_replaced_when_the_code_changes(project, env, servers):
    env = {**env, "INFO_INGRESS": "false", "BASE_DOMAIN": "b.example"}
    first = start_server(project, env, servers)
    module = project / "octopod_control" / "actions" / "info.py"
    module.write_text(module.read_text().replace('warn(f"info: {key} skipped', 'warn(f"info: {key} left out'))
    done = run(project, "info", "--name", "w", env={**env, "BASE_DOMAIN": ""})  # stale: cold, new code
    assert done.stderr == b"warning: info: app left out: {base_domain} has no value\n"
    wait_until(lambda: not alive(first), 10, "the stale server did not exit")
    assert any("retire: code changed" in line for line in servers.log())
    second, = servers.wait_serving(count=2)
    assert second != first
    done = warm_and_cold(project, servers, "info", "--name", "w", env={**env, "BASE_DOMAIN": ""})
    assert done.stderr == b"warning: info: app left out: {base_domain} has no value\n"


@without_helm
def test_the_server_is_replaced_when_the_python_changes(project, env, servers):
    """The copy gets a venv of its own whose interpreter is a copied file; replacing that file
    (a Python upgraded in place) makes the next call stale."""
    venv = project / ".venv"
    venv.unlink()
    (venv / "bin").mkdir(parents=True)
    (venv / "lib").symlink_to(ROOT / ".venv" / "lib")
    (venv / "pyvenv.cfg").write_text((ROOT / ".venv" / "pyvenv.cfg").read_text())
    real = os.path.realpath(ROOT / ".venv" / "bin" / "python")
    shutil.copy2(real, venv / "bin" / "python")
    env = {**env, "INFO_INGRESS": "false", "BASE_DOMAIN": "b.example"}
    first = start_server(project, env, servers)
    warm_and_cold(project, servers, "info", "--name", "w", env=env)
    replacement = venv / "bin" / "python.new"
    shutil.copy2(real, replacement)
    replacement.rename(venv / "bin" / "python")
    assert run(project, "info", "--name", "w", env=env).returncode == 0
    wait_until(lambda: not alive(first), 10, "the stale server did not exit")
    assert any("retire: code changed" in line for line in servers.log())
    second, = servers.wait_serving(count=2)
    assert second != first
    warm_and_cold(project, servers, "info", "--name", "w", env=env)


def plant(module: Path, code: str) -> None:
    """Code run when the copy's module is imported."""
    module.write_text(module.read_text() + "\n" + code + "\n")


@without_helm
def test_a_module_changed_while_the_server_starts_is_not_served_stale(project, env, servers, tmp_path):
    """info.py changed after the starting server imported it, before it took its signature: that
    server must not serve (it would run the old code for a file whose stat is the new one)."""
    preloading = tmp_path / "preloading"
    plant(project / "octopod_control" / "actions" / "archive_check.py",  # preloaded after actions.info
          "import os as _os, pathlib as _pathlib, time as _time\n"
          f"if _os.environ.get({warm.SERVER_VARIABLE!r}):  # in the server only\n"
          f"    _pathlib.Path({str(preloading)!r}).touch()\n"
          "    _time.sleep(2)")
    env = {**env, "INFO_INGRESS": "false", "BASE_DOMAIN": ""}
    assert run(project, "info", "--name", "w", env=env).returncode == 0  # cold; starts the server
    wait_until(preloading.exists, 30, "the server did not start its preload")
    module = project / "octopod_control" / "actions" / "info.py"
    module.write_text(module.read_text().replace('warn(f"info: {key} skipped', 'warn(f"info: {key} left out'))
    wait_until(lambda: any(" serving " in line or "not serving" in line for line in servers.log()), 30,
               "the server neither served nor gave up")
    new = b"warning: info: app left out: {base_domain} has no value\n"
    assert run(project, "info", "--name", "w", env=env).stderr == new
    assert any("info.py changed while the server started" in line for line in servers.log())
    servers.wait_serving()  # the next server imports the new code, and serves it
    assert warm_and_cold(project, servers, "info", "--name", "w", env=env).stderr == new


@without_helm
def test_a_warning_a_cold_run_does_not_show_does_not_stop_serving(project, env, servers):
    """A DeprecationWarning at import is hidden by a cold run's filters: the server serves."""
    plant(project / "octopod_control" / "registry.py",
          "import warnings as _warnings\n_warnings.warn('planted', DeprecationWarning)")
    env = {**env, "INFO_INGRESS": "false", "BASE_DOMAIN": "b.example"}
    start_server(project, env, servers)
    assert warm_and_cold(project, servers, "info", "--name", "w", env=env).stderr == b""


@without_helm
def test_a_warning_a_cold_run_shows_means_no_server_and_no_restart(project, env, servers):
    """A UserWarning when errors.py is imported (the server imports it first of all, reading its
    own settings): a cold run prints it, so no server may serve; the one that found out leaves
    <key>.failed, and the calls after it start none (BACKOFF), every one of them cold."""
    plant(project / "octopod_control" / "errors.py", "import warnings as _warnings\n_warnings.warn('planted')")
    env = {**env, "INFO_INGRESS": "false", "BASE_DOMAIN": "b.example"}
    first = run(project, "info", "--name", "w", env=env)
    assert first.returncode == 0 and b"UserWarning: planted" in first.stderr
    wait_until(lambda: any("not serving" in line for line in servers.log()), 30, "no server tried")
    assert any("importing warned: UserWarning: planted" in line for line in servers.log())
    failed, = servers.dir.glob("*.failed")
    for _ in range(3):
        done = run(project, "info", "--name", "w", env=env)
        assert (done.returncode, done.stdout, done.stderr) == (first.returncode, first.stdout, first.stderr)
    time.sleep(1)
    assert sum("not serving" in line for line in servers.log()) == 1, servers.log()
    assert servers.calls() == 0 and servers.pids() == [] and failed.exists()
    assert list(servers.dir.glob("*.lock")) == []


@without_helm
def test_the_server_exits_after_warm_idle(project, env, servers):
    env = {**env, "INFO_INGRESS": "false", "WARM_IDLE": "2"}
    pid = start_server(project, env, servers)
    assert any(line.endswith("idle=2") for line in servers.log())
    wait_until(lambda: not alive(pid), 10, "the server outlived WARM_IDLE")
    assert servers.sockets() == []
    assert any("retire: idle" in line for line in servers.log())
    assert list(servers.dir.glob("*.lock")) == []  # a key's files go with its server


def test_the_log_is_capped(tmp_path):
    """WARM_LOG's file moves aside at its cap: two files at most, whatever the number of calls."""
    path = tmp_path / "k.log"
    log = warm.Log(str(path), cap=1000)
    for i in range(100):
        log(f"call {i}")
    log.close()
    assert path.stat().st_size <= 1000 + 100 and (tmp_path / "k.log.1").stat().st_size <= 1000 + 100
    assert "call 99" in path.read_text() and sorted(p.name for p in tmp_path.iterdir()) == ["k.log", "k.log.1"]


@without_helm
def test_a_bad_warm_idle_means_the_default(project, env, servers):
    start_server(project, {**env, "INFO_INGRESS": "false", "WARM_IDLE": "soon"}, servers)
    assert any(line.endswith("idle=600") for line in servers.log())


def rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1))


@without_helm
def test_the_servers_memory_stays_flat(project, env, servers):
    env = {**env, "INFO_INGRESS": "false", "BASE_DOMAIN": "b.example"}
    pid = start_server(project, env, servers)
    for _ in range(20):
        assert run(project, "info", "--name", "w", env=env).returncode == 0
    settled = rss_kb(pid)
    before = servers.calls()
    for _ in range(150):
        assert run(project, "info", "--name", "w", env=env).returncode == 0
    assert servers.calls() == before + 150
    assert rss_kb(pid) - settled < 2048, (settled, rss_kb(pid))
    assert sorted(int(p) for p in os.listdir(f"/proc/{pid}/task")) == [pid]  # one thread
    wait_until(lambda: len(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()) <= 1, 10,
               "children left behind")  # only the spare, waiting for the next call


@without_helm
def test_concurrent_first_calls_start_one_server(project, env, servers):
    env = {**env, "INFO_INGRESS": "false", "BASE_DOMAIN": "b.example"}
    results: list[subprocess.CompletedProcess] = []
    threads = [threading.Thread(target=lambda: results.append(run(project, "info", "--name", "w", env=env)))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert [(r.returncode, r.stdout) for r in results] == [(0, b"app,https://w.b.example\n")] * 8
    servers.wait_serving()
    time.sleep(1.5)  # any second server would have given up on the lock by now
    assert len(servers.pids()) == 1 and len(servers.sockets()) == 1
    assert sum(" serving " in line for line in servers.log()) == 1


HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, sys.argv[2].encode() + b"\\n")  # a stale PID: the previous holder's, say
print("held", flush=True)
time.sleep(60)
"""


def test_servers_are_found_by_their_lock_and_signalled_only_while_they_hold_it(tmp_path):
    """The housekeeping (tests, benchmarks) finds a server by who holds its key's lock, not by the
    PID in the file, and signals a process only while it holds the lock it was found by; the
    test session's own clean-up takes only this checkout's servers."""
    bystander = subprocess.Popen(["sleep", "60"])
    lock = tmp_path / "k.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock), str(bystander.pid)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        found = warm_client.servers(tmp_path)
        assert found == [warm_client.Held(lock, holder.pid)]
        assert warm_client.this_checkouts(holder.pid) == sys.executable.startswith(f"{ROOT}/")
        assert not warm_client.this_checkouts(bystander.pid)
        assert warm_client.stop([warm_client.Held(lock, bystander.pid)], timeout=1) == []
        assert warm_client.stop(found) == [holder.pid]
        assert holder.wait(10) == -signal.SIGTERM
        assert bystander.poll() is None  # never signalled
    finally:
        for proc in (bystander, holder):
            proc.kill()
            proc.wait()


# -- WARM=false, and a server that does not answer
@without_helm
def test_warm_false_contacts_no_server(project, env, servers):
    """A listener of the test's own takes the server's socket: it sees every client that connects."""
    env = {**env, "INFO_INGRESS": "false", "BASE_DOMAIN": "b.example"}
    start_server(project, env, servers)
    path, = servers.sockets()
    warm_client.stop_servers(servers.dir)
    wait_until(lambda: not servers.sockets(), 10, "the server did not retire")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        listener.listen(8)
        listener.settimeout(0.3)

        def contacted() -> bool:
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                return False
            conn.close()  # no answer: the client runs the call cold
            return True

        for spelling in ("false", "0", "no", "off", "", "FALSE", " Off ", "maybe"):
            done = run(project, "info", "--name", "w", env={**env, "WARM": spelling})
            assert (done.returncode, done.stdout, done.stderr) == (0, b"app,https://w.b.example\n", b"")
            assert not contacted(), f"WARM={spelling!r} contacted the server"
        for spelling in ("true", "1", "yes", "on", " TRUE "):
            done = run(project, "info", "--name", "w", env={**env, "WARM": spelling})
            assert (done.returncode, done.stdout, done.stderr) == (0, b"app,https://w.b.example\n", b"")
            assert contacted(), f"WARM={spelling!r} did not try the server"
        env.pop("WARM")  # unset: on
        assert run(project, "info", "--name", "w", env=env).returncode == 0
        assert contacted()
        # Tasks that are not warm ones never connect.
        assert run(project, "create", "--name", "w", "--bogus", env=env).returncode == 64
        assert not contacted()


@without_helm
def test_a_stalled_server_costs_a_bounded_wait_and_never_runs_the_call(project, env, servers):
    env = {**env, "INFO_INGRESS": "false", "BASE_DOMAIN": "b.example"}
    pid = start_server(project, env, servers)
    before = servers.calls()
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        done = run(project, "info", "--name", "w", env=env)
        elapsed = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"app,https://w.b.example\n", b"")
    assert elapsed < 5, elapsed
    time.sleep(0.5)  # the server, running again, finds the call abandoned before its commit
    assert servers.calls() == before
    warm_and_cold(project, servers, "info", "--name", "w", env=env)


# -- interrupted calls end their child
class SilentApi:
    """An API server that accepts connections and never answers (check hangs in its first
    request); it counts the connections, so a test knows when a call is inside that request."""

    def __init__(self, directory: Path) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.kubeconfig = str(kubeconfig_for(directory / "silent.yaml", self.sock.getsockname()[1]))
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def silent_api(tmp_path: Path) -> Iterator[SilentApi]:
    api = SilentApi(tmp_path)
    try:
        yield api
    finally:
        api.close()


def hanging_check(project: Path, env: dict[str, str], servers: Servers | None,
                  api: SilentApi) -> tuple[subprocess.Popen, int]:
    """A check waiting on the silent API: the client's Popen, and the child serving it (warm)."""
    before, connections = (servers.log() if servers else []), len(api.held)
    proc = subprocess.Popen([str(project / "scripts" / "check"), "--name", "web"], env=env, cwd="/",
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child = 0
    if servers:
        def forked() -> bool:
            nonlocal child
            found = [re.search(r"child=(\d+)", line) for line in servers.log()[len(before):]
                     if " call pid=" in line]
            child = int(found[0].group(1)) if found else 0
            return bool(child)
        wait_until(forked, 20, "the call was not forked")
    wait_until(lambda: len(api.held) > connections, 60, "the check never reached the API")
    time.sleep(0.2)  # now reading the answer that never comes
    return proc, child


@without_helm
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signalled_client_ends_as_a_cold_run_would_and_so_does_its_child(project, env, servers, silent_api,
                                                                          sig):
    env = {**env, "KUBECONFIG": silent_api.kubeconfig, "KUBE_TIMEOUT": "60"}
    start_server(project, env, servers)
    results = {}
    for mode in ("false", "true"):
        proc, child = hanging_check(project, {**env, "WARM": mode}, servers if mode == "true" else None,
                                    silent_api)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=15)
        results[mode] = (proc.returncode, out, err)
        if child:
            wait_until(lambda: not group_members(child), 10, "the forked call's group outlived its client")
    assert results["true"] == results["false"]
    if sig == signal.SIGINT:
        assert results["true"] == (130, b"", b"error: interrupted\n")
    else:
        assert results["true"][0] == -sig


@without_helm
def test_a_killed_client_ends_its_forked_child(project, env, servers, silent_api):
    env = {**env, "KUBECONFIG": silent_api.kubeconfig, "KUBE_TIMEOUT": "60"}
    start_server(project, env, servers)
    proc, child = hanging_check(project, env, servers, silent_api)
    assert child and group_members(child) == [child]  # the call has a process group of its own
    proc.kill()
    proc.communicate(timeout=15)
    wait_until(lambda: not group_members(child), warm.GRACE + 5, "the forked call outlived its killed client")
    assert any(f"client gone: child={child}" in line for line in servers.log())


@without_helm
def test_a_call_whose_server_dies_ends_as_a_cold_run(project, env, servers, silent_api):
    """The server SIGKILLed while the call waits on the API: the call still ends, and with the cold
    run's exit code and bytes (the child sends its status to the client itself)."""
    env = {**env, "KUBECONFIG": silent_api.kubeconfig, "KUBE_TIMEOUT": "3"}
    pid = start_server(project, env, servers)
    cold = run(project, "check", "--name", "web", env={**env, "WARM": "false"})
    assert cold.returncode == 1, cold.stderr
    proc, child = hanging_check(project, env, servers, silent_api)
    os.kill(pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=30)
    assert (proc.returncode, out, err) == (cold.returncode, cold.stdout, cold.stderr)


@without_helm
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_after_the_server_died_still_ends_the_call(project, env, servers, silent_api, sig):
    """With the server gone, the client itself gives the signal to the call's process group (it was
    told the child's PID and given its pidfd): the call ends as a cold run would have."""
    env = {**env, "KUBECONFIG": silent_api.kubeconfig, "KUBE_TIMEOUT": "60"}
    pid = start_server(project, env, servers)
    results = {}
    for mode in ("false", "true"):
        proc, child = hanging_check(project, {**env, "WARM": mode}, servers if mode == "true" else None,
                                    silent_api)
        if child:
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: not alive(pid), 10, "the server outlived SIGKILL")
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=15)
        results[mode] = (proc.returncode, out, err)
        if child:
            wait_until(lambda: not group_members(child), 10, "the call outlived its signalled client")
    assert results["true"] == results["false"]


# -- the process a call sees, and how it ends
PROBE = '''"""Planted in a copy of the project by tests/test_warm.py: what a call's process looks like, and
ends that escape the task wrappers."""
import atexit
import json
import os
import signal
import sys
import threading
import time


def state():
    streams = {name: {a: getattr(stream, a, None) for a in ("encoding", "errors", "line_buffering",
                                                          "write_through", "mode", "name")}
               | {"isatty": stream.isatty(), "buffer": type(stream.buffer).__name__,
                  "raw": type(getattr(stream.buffer, "raw", stream.buffer)).__name__,
                  "fd": stream.fileno()}
               for name, stream in (("stdin", sys.stdin), ("stdout", sys.stdout), ("stderr", sys.stderr))}
    print(json.dumps({
        "cwd": os.getcwd(), "umask": os.umask(0o022), "argv": sys.argv, "orig_argv": sys.orig_argv[1:],
        "environ": list(os.environ.items()), "path": sys.path, "streams": streams,
        "main": getattr(sys.modules["__main__"], "__file__", None),
        "signals": {int(s): repr(signal.getsignal(s)) for s in signal.valid_signals()
                    if s not in (signal.SIGKILL, signal.SIGSTOP)},
        "blocked": sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])),
        "tzname": time.tzname, "dont_write_bytecode": sys.dont_write_bytecode,
        "flags": repr(sys.flags), "executable": sys.executable, "frozen": hasattr(sys, "frozen"),
        "same_group": os.getpgrp() == os.getpid(),
    }, sort_keys=True))


def run(mode):
    if mode == "state":
        state()
    elif mode == "raise":
        print("partial output", end="")
        raise RuntimeError("nothing caught this")
    elif mode == "interrupt":
        raise KeyboardInterrupt
    elif mode == "text":
        sys.exit("a message for stderr")
    elif mode == "code":
        sys.exit(300)
    elif mode == "atexit":
        atexit.register(lambda: print("at exit", flush=True))
        sys.exit(5)
    elif mode == "thread":
        threading.Thread(target=lambda: (time.sleep(0.3), print("thread done"))).start()
        sys.exit(0)
    elif mode == "unflushed":
        sys.stdout.write("no newline, never flushed")
        sys.stderr.write("nor here")
        sys.exit(0)
    elif mode == "badhook":
        def hook(kind, value, tb):
            raise ValueError("the hook failed")
        sys.excepthook = hook
        raise RuntimeError("nothing caught this")
    elif mode == "grandchild":
        import subprocess
        grandchild = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL,  # ignoring SIGTERM from its exec on
                                      preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN))
        print(grandchild.pid, flush=True)
        time.sleep(60)
'''


@pytest.fixture
def probed(project: Path) -> Path:
    """The copy, with program.main running tests' probe when WARM_TEST_PROBE names a mode."""
    (project / "octopod_control" / "_probe.py").write_text(PROBE)
    program = project / "octopod_control" / "program.py"
    program.write_text(program.read_text().replace(
        "def main() -> None:\n",
        "def main() -> None:\n"
        "    if os.environ.get('WARM_TEST_PROBE'):\n"
        "        from . import _probe\n\n"
        "        _probe.run(os.environ['WARM_TEST_PROBE'])\n"
        "        return\n"))
    return project


def ignoring_int_blocking_usr1() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})


@without_helm
def test_the_call_sees_the_process_a_cold_run_sees(probed, env, servers, tmp_path):
    """cwd, umask, argv, environment (order too), sys.path, the standard streams as the interpreter
    makes them, signal dispositions and mask (the caller's ignored and blocked ones kept), the time
    zone, __main__: all as in a cold run. What differs by design (docs/warm.md): its process group
    (compared here), its session and terminal, fds 3 and up, /proc/<pid>/cmdline."""
    start_server(probed, env, servers)
    cwd = tmp_path / "somewhere"
    cwd.mkdir()
    extra = {**env, "WARM_TEST_PROBE": "state", "TZ": "Asia/Kolkata", "ZZ_LAST": "1", "AA_FIRST": "é"}
    results = []
    for mode in ("false", "true"):
        before = servers.calls()
        done = subprocess.run([str(probed / "scripts" / "check"), "--name", "w", "ü"], cwd=cwd,
                              env={**extra, "WARM": mode}, capture_output=True, timeout=60,
                              preexec_fn=lambda: (os.umask(0o027), ignoring_int_blocking_usr1()))
        assert done.returncode == 0, done.stderr
        assert servers.calls() == before + (mode == "true")
        results.append(json.loads(done.stdout))
    cold, hot = results
    assert cold.pop("same_group") is False and hot.pop("same_group") is True
    for name in cold:
        cold_value, hot_value = cold[name], hot[name]
        if name == "environ":  # WARM itself differs, and only it
            cold_value = [kv for kv in cold_value if kv[0] != "WARM"]
            hot_value = [kv for kv in hot_value if kv[0] != "WARM"]
        assert hot_value == cold_value, name
    assert cold["umask"] == 0o027 and cold["cwd"] == str(cwd)
    assert cold["signals"][str(int(signal.SIGINT))] == "<Handlers.SIG_IGN: 1>"
    assert cold["blocked"] == [int(signal.SIGUSR1)]


@without_helm
@pytest.mark.parametrize("mode", ["raise", "interrupt", "text", "code", "atexit", "thread", "unflushed",
                                  "badhook"])
def test_a_call_ends_as_the_interpreter_ends_a_cold_run(probed, env, servers, mode):
    """What escapes every task wrapper: a traceback (the same frames), KeyboardInterrupt (a death
    by SIGINT), SystemExit with a message or a code over 255, atexit, a non-daemon thread still
    running, output never flushed, a sys.excepthook that raises itself."""
    start_server(probed, env, servers)
    done = warm_and_cold(probed, servers, "check", "--name", "w", env={**env, "WARM_TEST_PROBE": mode})
    expected = {"raise": 1, "interrupt": -signal.SIGINT, "text": 1, "code": 300 & 0xFF, "atexit": 5,
                "thread": 0, "unflushed": 0, "badhook": 1}[mode]
    assert done.returncode == expected, done.stderr
    if mode == "raise":
        assert done.stdout == b"partial output"
        assert done.stderr.startswith(b"Traceback (most recent call last):\n  File \"<frozen runpy>\"")
        assert done.stderr.endswith(b"RuntimeError: nothing caught this\n")
    if mode == "thread":
        assert done.stdout == b"thread done\n"
    if mode == "unflushed":
        assert (done.stdout, done.stderr) == (b"no newline, never flushed", b"nor here")
    if mode == "badhook":
        assert done.stderr.startswith(b"Error in sys.excepthook:\n") and b"warm.py" not in done.stderr


ENDING = """
import os, socket, struct
from octopod_control import warm
ours, theirs = socket.socketpair()
pid = os.fork()
if pid == 0:
    ours.close()
    reader, writer = os.pipe()
    os.close(reader)
    os.dup2(writer, 2)  # stderr: a pipe nobody reads any more (EPIPE)
    call = warm.Call.__new__(warm.Call)
    call.conn = theirs.detach()
    child = warm.Child(call, {}, frozen=True)
    def entry():
        raise RuntimeError("nothing caught this")
    child.entry = entry
    try:
        child.run()
    finally:
        print("unwound into the caller", flush=True)
theirs.close()
told = ours.recv(16)
_, status = os.waitpid(pid, 0)
print(told, os.waitstatus_to_exitcode(status))
"""


def test_the_childs_end_never_unwinds_into_its_caller():
    """The frozen child's report of an uncaught exception with stderr a broken pipe fails: it still
    ends there, told to the client (X), with the status Py_RunMain gives (120: the traceback
    stays in stderr's buffer, whose last flush fails); in the server it would otherwise unwind
    into the forked copy of the server's loop."""
    done = subprocess.run([sys.executable, "-P", "-c", ENDING], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert done.stdout == f"{warm.STATUS.pack(b'X', 120 << 8)!r} 120\n", (done.stdout, done.stderr)


@without_helm
@pytest.mark.parametrize("how", ["client killed", "SIGTERM to the client"])
def test_the_calls_group_is_killed_even_after_its_child_ended(probed, env, servers, how):
    """The call's child ends on SIGTERM; a grandchild in its group ignores SIGTERM: the group is
    SIGKILLed after the grace all the same, as promised."""
    start_server(probed, env, servers)
    before = len(servers.log())
    proc = subprocess.Popen([str(probed / "scripts" / "check"), "--name", "w"], cwd="/", stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**env, "WARM_TEST_PROBE": "grandchild"})
    grandchild = int(proc.stdout.readline())
    try:
        child, = [int(re.search(r"child=(\d+)", line).group(1)) for line in servers.log()[before:]
                  if " call pid=" in line]
        if how == "client killed":
            proc.kill()
        else:
            proc.terminate()
        proc.communicate(timeout=15)
        wait_until(lambda: not alive(child), 10, "the call's child outlived SIGTERM")
        assert alive(grandchild)  # it ignores SIGTERM
        wait_until(lambda: not alive(grandchild), warm.GRACE + 5, "the call's process group outlived the grace")
    finally:
        if alive(grandchild):
            os.kill(grandchild, signal.SIGKILL)


# -- what the two sides share
def test_the_frozen_entry_is_the_bundles_entry_script():
    assert warm.FROZEN_ENTRY == (ROOT / "bundle" / "entry.py").read_text()
    assert frozen._WARM_SERVER == warm.SERVER_VARIABLE
    assert warm.SERVER_VARIABLE.startswith(frozen._PLUMBING_PREFIXES)  # never reaches a child


def test_the_client_takes_its_lists_from_python():
    from octopod_control.settings import FALSE_WORDS, TRUE_WORDS

    defined = " ".join(warm_client.defines())
    for word in [*FALSE_WORDS, *TRUE_WORDS, *warm.WARM_TASKS, *warm.STARTUP_PREFIXES]:
        assert json.dumps(word) in defined
    for number in (f"-DWARM_PROTOCOL={warm.PROTOCOL}", f"-DWARM_GRACE_MS={int(warm.GRACE * 1000)}",
                   f"-DWARM_BACKOFF_S={int(warm.BACKOFF)}"):
        assert number in warm_client.defines()
    source = warm_client.SOURCE.read_text()
    assert '"check"' not in source and '"false"' not in source  # no second copy in C
    assert "#define WARM_PROTOCOL" not in source and "#define WARM_GRACE" not in source


SPY = """
import builtins, os, sys, warnings
read, opened = set(), []

class Spy(type(os.environ)):
    def __getitem__(self, key):
        read.add(key)
        return super().__getitem__(key)

os.environ.__class__ = Spy
real_open = builtins.open
def spy_open(file, *a, **kw):
    opened.append(str(file))
    return real_open(file, *a, **kw)
builtins.open = spy_open
warnings.simplefilter("error")
from octopod_control import warm
warm.preload()
print(sorted(read))
print([f for f in opened if f.endswith(".env")])
"""


def test_importing_what_the_server_preloads_reads_no_call_state():
    """Module imports read no environment variable a call sets (only the interpreter's and
    Invoke's INVOKE_DEBUG, which sends a call cold), no env file, and warn nothing."""
    done = subprocess.run([sys.executable, "-P", "-c", SPY], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "KUBECONFIG": "/x"})
    assert done.returncode == 0, done.stderr
    read, opened = done.stdout.splitlines()
    names = eval(read)  # noqa: S307 - our own subprocess's repr of a list of str
    assert [n for n in names if not warm.is_startup_variable(n)
            and n.encode() not in warm.COLD_ONLY] == [], names
    assert opened == "[]"
