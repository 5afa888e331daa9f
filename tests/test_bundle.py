"""The static /utils bundle (issue 7): built once per source hash, run in a bare chroot.

The chroot holds busybox-static and the bundle's files only (and /dev/null): no
Python, no loader under /lib64, no /etc/passwd, no /proc. Scripts run as uid 1000 with Octopod's
minimal environment, against the emulator on 127.0.0.1 (a chroot keeps the network
namespace). Tests marked `slow` build the bundle the first time (about a minute; then
cached under build/bundle/ by a hash of every input) and need root for chroot.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Iterator

import pytest

from octopod_control import frozen
from octopod_control.tasks import OCTOPOD_SCRIPTS
from octopod_dev import bundle, warm_client
from tests.conftest import tool
from tests.support.jail import (BUSYBOX, OCTOPOD_ENV, UID, add_kubeconfig, in_jail, make_root, require_root,
                                reset_home)

COMMON = ["--project-name", "demo", "--base-domain", "staging.example.com"]


# -- fast unit tests (no build)
def test_child_environ_strips_bundle_plumbing_when_frozen(monkeypatch):
    env = {"PATH": "/utils:/bin", "_PYI_ARCHIVE_FILE": "x", "_PYI_PARENT_PROCESS_LEVEL": "1",
           "_MEIPASS2": "/tmp/_MEI1", "LD_LIBRARY_PATH": "/cache/app/_internal",
           "OCTOPOD_BUNDLE_CACHE": "/c", "KUBECONFIG": "/k"}
    assert frozen.child_environ(env) == env  # not frozen: untouched
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", "/cache/app/_internal", raising=False)
    assert frozen.child_environ(env) == {"PATH": "/utils:/bin", "KUBECONFIG": "/k"}
    mine = {"LD_LIBRARY_PATH": "/cache/app/_internal", "LD_LIBRARY_PATH_ORIG": "/opt/lib"}
    assert frozen.child_environ(mine) == {"LD_LIBRARY_PATH": "/opt/lib"}
    assert frozen.child_environ({"LD_LIBRARY_PATH": "/opt/lib"}) == {"LD_LIBRARY_PATH": "/opt/lib"}


def test_tmpdir_falls_back_under_home_when_tmp_is_unwritable(tmp_path, monkeypatch):
    monkeypatch.setattr(frozen, "_usable_dir", lambda p: p.startswith(str(tmp_path)) and os.path.isdir(p))
    env = {"HOME": str(tmp_path)}
    frozen.ensure_tmpdir(env)
    assert env["TMPDIR"] == str(tmp_path / ".cache" / "octopod-control" / "tmp")
    assert stat.S_IMODE(os.stat(env["TMPDIR"]).st_mode) == 0o700


def test_elf_interp_tells_static_from_dynamic():
    assert bundle.elf_interp(BUSYBOX) is None
    assert bundle.elf_interp(Path(sys.executable).resolve()) is not None


def test_a_tool_for_another_architecture_is_refused(tmp_path):
    """amd64 helm into an arm64 bundle (or the reverse): a clear BundleError, nothing copied."""
    machine = bundle.elf_machine(BUSYBOX)
    other = 183 if machine != 183 else 62
    foreign = tmp_path / "helm"
    data = bytearray(BUSYBOX.read_bytes())
    struct.pack_into("<H", data, 18, other)
    foreign.write_bytes(bytes(data))
    assert bundle.elf_machine(foreign) == other
    with pytest.raises(bundle.BundleError, match="built for .*launcher is"):
        bundle.copy_tool(foreign, tmp_path / "out-helm", machine)
    assert not (tmp_path / "out-helm").exists()
    bundle.copy_tool(BUSYBOX, tmp_path / "out-busybox", machine)  # same machine: copied
    assert (tmp_path / "out-busybox").stat().st_mode & 0o777 == 0o755
    # assemble takes the launcher's machine as the reference
    with pytest.raises(bundle.BundleError, match="built for"):
        bundle.assemble(BUSYBOX, tmp_path / "utils", {"helm": foreign})


def test_wrapper_execs_the_program_with_the_task_name():
    text = bundle.wrapper("archive_check")
    assert text.startswith("#!/bin/sh\n")
    assert 'exec "$here/octopod-control" archive-check "$@"' in text


def test_source_key_follows_the_sources(tmp_path):
    source = tmp_path / "octopod_control" / "tasks.py"
    source.parent.mkdir()
    source.write_text("a")
    first = bundle.source_key(tmp_path)
    assert bundle.source_key(tmp_path) == first
    source.write_text("b")
    second = bundle.source_key(tmp_path)
    assert second != first
    (tmp_path / "octopod_dev").mkdir()  # development code is not an input of the bundle
    (tmp_path / "octopod_dev" / "tasks.py").write_text("c")
    (tmp_path / "tasks.py").write_text("c")
    assert bundle.source_key(tmp_path) == second


def test_only_contained_symlinks_are_packed(tmp_path):
    assert bundle.contained_link("libz.so.1.2.13") and bundle.contained_link("sub/dir/lib.so")
    for target in ("/etc/passwd", "../../x", "a/../../x", "..", ""):
        assert not bundle.contained_link(target), target
    (tmp_path / "escape").symlink_to("../../x")
    with pytest.raises(bundle.BundleError, match="symlink to '../../x'"):
        bundle.entry("app/escape", tmp_path / "escape")


# -- the launcher against crafted payloads (the format bundle.py writes; no PyInstaller, no root)
LOADER_SCRIPT = b"#!/bin/sh\necho loader-ran\n"


@pytest.fixture(scope="module")
def launcher(tmp_path_factory) -> Path:
    if not shutil.which("gcc"):
        pytest.fail("gcc missing: apt-get install gcc libc6-dev zlib1g-dev (./run does)")
    return bundle.compile_launcher(tmp_path_factory.mktemp("launcher"))


def packed(kind: bytes, name: str, raw: int, stored: bytes, mode: int = 0o644,
           stored_size: int | None = None) -> bytes:
    """One payload entry as bundle.entry() writes it; stored_size may lie about len(stored)."""
    size = len(stored) if stored_size is None else stored_size
    return bundle.ENTRY.pack(kind, mode, len(name.encode()), raw, size) + name.encode() + stored


def a_dir(name: str) -> bytes:
    return packed(b"d", name, 0, b"", 0o755)


def a_file(name: str, data: bytes, mode: int = 0o644) -> bytes:
    return packed(b"f", name, len(data), zlib.compress(data), mode)


def a_link(name: str, target: str) -> bytes:
    return packed(b"l", name, len(target.encode()), target.encode(), 0o777)


def good_entries() -> list[bytes]:
    """What the launcher runs: a 'loader' (a shell script) and a program; an in-tree symlink."""
    return [a_dir("app"), a_file("app/octopod-control", b"program"), a_link("app/alias", "octopod-control"),
            a_dir("lib"), a_file("lib/ld-linux-x86-64.so.2", LOADER_SCRIPT, 0o755)]


def run_image(image: Path, work: Path) -> subprocess.CompletedProcess:
    """The image with every cache root under work (the cache, $HOME, $TMPDIR)."""
    for name in ("cache", "home", "tmp"):
        (work / name).mkdir(exist_ok=True, mode=0o700)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work / "home"), "TMPDIR": str(work / "tmp"),
           "OCTOPOD_BUNDLE_CACHE": str(work / "cache")}
    return subprocess.run([str(image), "config"], env=env, capture_output=True, text=True, timeout=30)


def links_to(root: Path, target: str) -> list[Path]:
    return [Path(d) / n for d, dirs, files in os.walk(root) for n in dirs + files
            if os.path.islink(Path(d) / n) and os.readlink(Path(d) / n) == target]


def assert_refused(done: subprocess.CompletedProcess, *phrases: str) -> None:
    assert done.returncode == 70, (done.returncode, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: octopod-control launcher: "), done.stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]


def test_launcher_runs_a_well_formed_crafted_payload(launcher, tmp_path):
    image = tmp_path / "octopod-control"
    key = bundle.write_image(launcher, good_entries(), image)
    done = run_image(image, tmp_path)
    assert (done.returncode, done.stdout) == (0, "loader-ran\n"), done.stderr
    entry = tmp_path / "cache" / key
    assert os.readlink(entry / "app" / "alias") == "octopod-control"
    assert (entry / ".complete").read_text() == key


def test_launcher_refuses_an_entry_length_that_overflows(launcher, tmp_path):
    """len + stored wraps to 0 in 64 bits: once accepted, then read far past the mapping."""
    name = "app/big"
    overflow = packed(b"f", name, 10, zlib.compress(b"0123456789"),
                      stored_size=2 ** 64 - len(name.encode()))
    image = tmp_path / "octopod-control"
    bundle.write_image(launcher, [a_dir("app"), overflow], image)
    assert_refused(run_image(image, tmp_path), "bad payload", "out of bounds", name)
    assert list((tmp_path / "cache").iterdir()) == []  # the partial unpack is gone


def test_launcher_refuses_a_trailer_whose_offset_overflows(launcher, tmp_path):
    """offset + size + 64 == file size only modulo 2**64: the payload would start anywhere."""
    image = tmp_path / "octopod-control"
    bundle.write_image(launcher, good_entries(), image)
    data = bytearray(image.read_bytes())
    offset = 2 ** 64 - 4096
    size = (len(data) - bundle.TRAILER.size - offset) % 2 ** 64
    struct.pack_into("<QQ", data, len(data) - bundle.TRAILER.size + 8, offset, size)
    image.write_bytes(bytes(data))
    assert_refused(run_image(image, tmp_path), "payload size mismatch")


def test_launcher_refuses_an_absolute_symlink(launcher, tmp_path):
    image = tmp_path / "octopod-control"
    bundle.write_image(launcher, [*good_entries(), a_link("app/passwd", "/etc/passwd")], image)
    assert_refused(run_image(image, tmp_path), "symlink target is absolute or has '..'",
                   "app/passwd -> /etc/passwd")
    assert links_to(tmp_path, "/etc/passwd") == []
    assert list((tmp_path / "cache").iterdir()) == []


def test_launcher_refuses_a_symlink_out_of_the_cache(launcher, tmp_path):
    """`esc -> ../../x` from <cache>/<unpack dir>/ is <cache>/../x; a file through it would land there."""
    outside = tmp_path / "x"
    outside.mkdir()
    image = tmp_path / "octopod-control"
    bundle.write_image(launcher, [*good_entries(), a_link("esc", "../../x"),
                                  a_file("esc/planted", b"outside the cache")], image)
    assert_refused(run_image(image, tmp_path), "symlink target is absolute or has '..'", "esc -> ../../x")
    assert list(outside.iterdir()) == []
    assert links_to(tmp_path, "../../x") == []


# -- the built bundle in a chroot
@pytest.fixture(scope="module")
def jail(tmp_path_factory) -> Path:
    """A chroot (tests/support/jail.py): busybox, the bundle in /utils (with helm and kubectl)."""
    require_root("the chroot tests need root: chroot(2) into the jail, mknod of its /dev/null")
    root = tmp_path_factory.mktemp("jail")
    try:
        bundle.build(root / "utils", helm=Path(tool("helm4")), kubectl=Path(tool("kubectl")),
                     log=lambda line: print(line, file=sys.stderr))
    except bundle.BundleError as exc:
        pytest.fail(f"bundle build failed: {exc}")
    yield make_root(root)
    warm_client.stop_servers(jail_warm_dir(root))  # the warm servers check and info started


def jail_warm_dir(root: Path) -> Path:
    """uid 1000's warm servers in the jail: under its /tmp (no XDG_RUNTIME_DIR, no TMPDIR set)."""
    return warm_client.socket_dir(root / "tmp", UID)


@pytest.fixture
def kubeconfig(jail: Path, cluster) -> str:
    return add_kubeconfig(jail, cluster.kubeconfig)


@pytest.fixture
def writable_tmp(jail: Path) -> Iterator[None]:
    yield
    (jail / "tmp").chmod(0o1777)


@pytest.mark.slow
def test_utils_holds_only_static_plain_files(jail):
    entries = sorted(p.name for p in (jail / "utils").iterdir())
    assert entries == sorted([*OCTOPOD_SCRIPTS, "octopod-control", "helm", "kubectl"])
    for path in (jail / "utils").iterdir():
        info = path.lstat()
        assert stat.S_ISREG(info.st_mode), path
        assert stat.S_IMODE(info.st_mode) == 0o755, path
        if bundle.is_elf(path):
            assert bundle.elf_interp(path) is None, f"{path.name} is dynamically linked"
        else:
            assert path.read_text().startswith("#!/bin/sh\n"), path


@pytest.mark.slow
def test_octopod_init_container_copy_succeeds(jail):
    done = in_jail(jail, "/bin/sh", "-c", "cp /utils/* /copy/")
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(jail / "copy")) == sorted(os.listdir(jail / "utils"))


@pytest.mark.slow
def test_info_prints_octopod_csv(jail, kubeconfig):
    reset_home(jail)
    for _ in range(2):  # the first call unpacks into the cache, the second runs from it
        done = in_jail(jail, "info", *COMMON, "--namespace", "ns", "--name", "foo", env=(kubeconfig,))
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines and all("," in line for line in lines), done.stdout
        assert "app,https://foo.staging.example.com" in lines
    cache = jail / "home/octopod/.cache/octopod-control"
    keys = [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert len(keys) == 1 and (keys[0] / ".complete").is_file()


@pytest.mark.slow
def test_config_reads_the_bundled_defaults(jail):
    done = in_jail(jail, "/utils/octopod-control", "config")
    assert done.returncode == 0, done.stderr
    assert "CHART=charts/example" in done.stdout.splitlines()


@pytest.mark.slow
def test_the_bundle_lists_the_products_tasks_only(jail):
    """The bundle boots octopod_control.tasks.ns: no development task (demo, test, ...) in it."""
    from octopod_control.tasks import ns as product
    from octopod_dev.tasks import ns as development

    done = in_jail(jail, "/utils/octopod-control", "--list", "--list-format", "json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert (listed["name"], {t["name"] for t in listed["tasks"]}) == ("octopod", set(product.task_names))
    for name in development.task_names:
        done = in_jail(jail, "/utils/octopod-control", name)
        assert (done.returncode, done.stderr) == (64, f"error: unexpected argument {name!r}\n")


@pytest.mark.slow
def test_create_and_check_against_the_emulator(jail, cluster, namespace, kubeconfig, writable_tmp):
    """create with /tmp unwritable (TMPDIR falls back under $HOME); helm's env has no plumbing."""
    reset_home(jail)
    spy = jail / "bin" / "helm-spy"
    spy.write_text("#!/bin/sh\nenv > /home/octopod/helm.env\nexec /utils/helm \"$@\"\n")
    spy.chmod(0o755)
    (jail / "tmp").chmod(0o755)  # root's: not writable by uid 1000
    args = [*COMMON, "--namespace", namespace, "--name", "web"]
    with cluster.controller(namespace):
        done = in_jail(jail, "create", *args, "--tag", "v1", "--app-env-override", "A=a,b",
                       env=(kubeconfig, "HELM_BIN=/bin/helm-spy", "HELM_TIMEOUT=60"))
    assert done.returncode == 0, done.stderr
    child_env = (jail / "home/octopod/helm.env").read_text()
    for leak in ("LD_LIBRARY_PATH", "_PYI_", "_MEIPASS", "OCTOPOD_BUNDLE"):
        assert leak not in child_env, child_env
    assert "TMPDIR=/home/octopod/.cache/octopod-control/tmp" in child_env.splitlines()
    (jail / "tmp").chmod(0o1777)
    # check itself (not info): ready at the deployed tag (0), a tag mismatch at another (3).
    done = in_jail(jail, "check", *args, "--tag", "v1", env=(kubeconfig,))
    assert (done.returncode, done.stdout) == (0, ""), done.stderr
    done = in_jail(jail, "check", *args, "--tag", "v2", env=(kubeconfig,))
    assert done.returncode == 3, (done.returncode, done.stderr)
    assert "tag mismatch: release web runs tag v1 (app.tag), requested v2" in done.stderr, done.stderr


@pytest.mark.slow
def test_corrupt_or_unusable_cache_falls_back(jail):
    home = reset_home(jail)
    assert in_jail(jail, "/utils/octopod-control", "config").returncode == 0
    cache = home / ".cache/octopod-control"
    entry = next(p for p in cache.iterdir() if not p.name.startswith("."))
    (entry / ".complete").chmod(0o600)
    (entry / ".complete").write_text("garbage")
    (entry / "app/octopod-control").unlink()
    done = in_jail(jail, "/utils/octopod-control", "config")
    assert done.returncode == 0, done.stderr  # the broken entry was replaced
    assert (entry / "app/octopod-control").is_file()
    # $HOME unwritable: the cache goes to /tmp/octopod-control-<uid>.
    done = in_jail(jail, "/utils/octopod-control", "config", env=("HOME=/nonexistent",))
    assert done.returncode == 0, done.stderr
    assert (jail / f"tmp/octopod-control-{UID}").is_dir()
    shutil.rmtree(jail / f"tmp/octopod-control-{UID}")
    # No cache at all: unpacked privately for the call, removed afterwards (the warm servers'
    # socket directory, octopod-control-warm-1000, is no unpacked tree).
    done = in_jail(jail, "/utils/octopod-control", "config", env=("OCTOPOD_BUNDLE_NO_CACHE=1",))
    assert done.returncode == 0, done.stderr
    assert not [p for p in (jail / "tmp").iterdir()
                if p.name.startswith("octopod-control") and p != jail_warm_dir(jail)]


@pytest.mark.slow
def test_the_warm_path_in_the_jail_answers_as_the_cold_one(jail, cluster, namespace, kubeconfig):
    """As uid 1000 in the busybox-only root: the first call starts the warm server (the bundle
    itself, from its cache entry); every later call of the corpus is served by it (its log says
    so) and gives the cold run's exit code, stdout and stderr, byte for byte (docs/warm.md)."""
    def run(*argv: str, env: tuple[str, ...]) -> subprocess.CompletedProcess:
        command = ["chroot", f"--userspec={UID}:{UID}", str(jail), "/bin/env", "-i", *OCTOPOD_ENV,
                   "WARM_LOG=1", kubeconfig, *env, *argv]
        return subprocess.run(command, capture_output=True, timeout=180)

    def log() -> str:
        return "".join(p.read_text() for p in warm_dir.glob("*.log"))

    reset_home(jail)
    warm_dir = jail_warm_dir(jail)
    args = [*COMMON, "--namespace", namespace, "--name", "web"]
    with cluster.controller(namespace):
        done = run("create", *args, "--tag", "v1", env=("HELM_TIMEOUT=60",))
    assert done.returncode == 0, done.stderr
    assert run("info", *args, env=()).returncode == 0  # runs cold, starts the server
    deadline = time.monotonic() + 60
    while not (list(warm_dir.glob("*.sock")) and " serving " in log()):
        assert time.monotonic() < deadline, f"no warm server started in the jail: {log()}"
        time.sleep(0.1)
    assert stat.S_IMODE(warm_dir.stat().st_mode) == 0o700 and warm_dir.stat().st_uid == UID
    corpus = [(["check", "--tag", "v1"], ()), (["check", "--tag", "v2"], ()), (["check", "--bogus"], ()),
              (["info"], ()), (["tag_check", "--tag", "v1"], ()), (["archive_check"], ()),
              (["check", "--tag", "v1"], ("KUBE_TIMEOUT=abc",))]
    codes = set()
    for (script, *flags), extra in corpus:
        calls = log().count(" call pid=")
        cold = run(script, *args, *flags, env=("WARM=false", *extra))
        assert log().count(" call pid=") == calls, "WARM=false reached the server"
        warm = run(script, *args, *flags, env=extra)
        assert log().count(" call pid=") == calls + 1, (script, flags, log()[-500:])
        assert (warm.returncode, warm.stdout, warm.stderr) == (cold.returncode, cold.stdout, cold.stderr), \
            (script, flags)
        codes.add(warm.returncode)
    assert codes == {0, 1, 3, 64, 78}, codes
