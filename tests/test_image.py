"""The image Octopod pulls (issue 16): the real Dockerfile built, pushed, pulled back and run.

Fast tests hold `octopod_dev/image.py` (`invoke image`) to its contract without building:
which builder, exit 69 without one, the argv it runs (build args, pull policy, TLS, no
credential anywhere), sizes, labels from git.

The slow tests (root; `slow`) do what a platform team and Octopod do, with no Docker engine
and no Docker Hub:
1. the base images the Dockerfile names, made locally (tests/support/image_store.py: debootstrap
   for debian:12, busybox-static for busybox:1.36.1) and cached in a buildah store under
   /var/lib/octopod-control-test, keyed by their inputs;
2. the unchanged Dockerfile built by `image.make` (what `invoke image --push` runs) with buildah,
   `--pull=never`, chroot isolation, the layer cache of the last build kept and older ones pruned;
3. pushed with buildah to a real `docker-registry` that demands htpasswd credentials, which
   buildah reads from a REGISTRY_AUTH_FILE written for the test;
4. pulled back by hand over the registry API (tests/support/oci.py: another client than the
   pusher), unpacked layer by layer, its config and files checked;
5. Octopod's init container command `sh -c 'cp /utils/* /copy/'` run in the unpacked image as
   uid 1000, then the copied files run in a separate busybox-only root (no Python, no loader,
   as Octopod's server image): `info`, `create` and `check` against the API emulator, `helm version`.
"""
from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import http.server
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from octopod_control.errors import UsageError
from octopod_control.tasks import OCTOPOD_SCRIPTS
from octopod_dev import bundle, image
from tests.conftest import ROOT
from tests.support import image_store, oci
from tests.support.jail import UID, add_kubeconfig, in_jail, make_root, require_root
from tests.support.registry import PASSWORD, USER, basic_auth, htpasswd_file, start_registry

UTILS = sorted([*OCTOPOD_SCRIPTS, "octopod-control", "helm", "kubectl"])
REPOSITORY = "team/octopod-utils"
COMMON = ["--project-name", "demo", "--base-domain", "staging.example.com"]
LABEL = "org.opencontainers.image."


# -- fast: octopod_dev/image.py ----------------------------------------------------------------

def spec(**kw) -> image.BuildSpec:
    labels = image.Labels("v1.2.0-3-gabc1234", "abc1234" * 5 + "abcde", "https://git.example.com/o/c")
    return image.BuildSpec(kw.pop("reference", "registry.example.com/team/octopod-utils:1.2.0"),
                           labels, **kw)


def test_no_builder_is_exit_69_naming_what_is_missing():
    with pytest.raises(image.ImageError) as raised:
        image.find_builder(which=lambda name: None)
    assert raised.value.exit_code == image.EX_UNAVAILABLE == 69
    message = str(raised.value)
    assert "docker is not installed and buildah is not installed" in message
    assert "apt-get install buildah" in message


def test_a_docker_client_without_its_engine_is_no_builder():
    which = {"docker": "/usr/bin/docker"}.get
    with pytest.raises(image.ImageError) as raised:
        image.find_builder(which=which, answers=lambda path: (False, "docker info failed: no daemon"))
    assert raised.value.exit_code == 69
    assert "docker's engine does not answer (docker info failed: no daemon)" in str(raised.value)
    which = {"docker": "/usr/bin/docker", "buildah": "/usr/bin/buildah"}.get
    builder = image.find_builder(which=which, answers=lambda path: (False, "no daemon"))
    assert builder == image.Builder("buildah", "/usr/bin/buildah")


def test_a_working_docker_comes_first():
    which = {"docker": "/usr/bin/docker", "buildah": "/usr/bin/buildah"}.get
    assert image.find_builder(which=which, answers=lambda path: (True, "28.2.2")).name == "docker"


def test_docker_info_without_a_server_version_is_a_no(tmp_path):
    fake = tmp_path / "docker"
    for answer in ("", "<no value>"):
        fake.write_text(f"#!/bin/sh\necho '{answer}'\n")
        fake.chmod(0o755)
        assert image.docker_answers(str(fake)) == (False, "docker info gave no server version")
    fake.write_text("#!/bin/sh\necho 28.2.2\n")
    assert image.docker_answers(str(fake)) == (True, "28.2.2")


def test_docker_info_that_hangs_is_a_clear_no(tmp_path):
    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\nexec sleep 30\n")
    fake.chmod(0o755)
    started = time.monotonic()
    ok, why = image.docker_answers(str(fake), timeout=0.5)
    assert (ok, why) == (False, "docker info timed out after 0.5 s")
    assert time.monotonic() - started < 5


def test_the_task_without_a_builder_exits_69_with_one_line(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(shutil.which("git"))
    done = subprocess.run([sys.executable, "-m", "invoke", "image", "--tag", "localhost/utils:t"],
                          cwd=ROOT, env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 69, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: image: no image builder: docker is not installed"), done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_buildah_argv_passes_labels_as_build_args_and_never_pulls_when_told():
    builder = image.Builder("buildah", "/usr/bin/buildah", ("--root", "/s", "--storage-driver", "vfs"))
    argv = image.build_argv(builder, spec(pull="never", isolation="chroot", helm="helm4",
                                          extra_args=(("DEBIAN_IMAGE", "mirror.example.com/debian:12"),)))
    assert argv[:6] == ["/usr/bin/buildah", "--root", "/s", "--storage-driver", "vfs", "bud"]
    assert {"--layers", "--force-rm", "--pull=never"} <= set(argv)
    assert argv[argv.index("--isolation") + 1] == "chroot"
    build_args = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--build-arg"]
    assert build_args == ["VERSION=v1.2.0-3-gabc1234", f"REVISION={'abc1234' * 5}abcde",
                          "SOURCE=https://git.example.com/o/c", "HELM=helm4",
                          "DEBIAN_IMAGE=mirror.example.com/debian:12"]
    labels = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--label"]  # buildah's cache: below
    assert labels == ["org.opencontainers.image.version=v1.2.0-3-gabc1234",
                      f"org.opencontainers.image.revision={'abc1234' * 5}abcde",
                      "org.opencontainers.image.source=https://git.example.com/o/c"]
    assert argv[argv.index("--tag") + 1] == "registry.example.com/team/octopod-utils:1.2.0"
    assert argv[argv.index("--file") + 1] == str(ROOT / "Dockerfile") and argv[-1] == str(ROOT)
    # docker's default: use a present base image, pull a missing one (buildah spells it false)
    assert "--pull=false" in image.build_argv(builder, spec())


def test_buildah_isolation_is_chroot_unless_asked_otherwise():
    # buildah's own default (oci) needs cgroups CI containers do not give: chroot unless told
    assert image.buildah_isolation(None, {}) == "chroot"
    assert image.buildah_isolation(None, {"BUILDAH_ISOLATION": "oci"}) is None  # buildah reads it
    assert image.buildah_isolation("rootless", {"BUILDAH_ISOLATION": "oci"}) == "rootless"


def test_an_unknown_isolation_is_a_usage_error(tmp_path):
    assert [image.check_isolation(name) for name in ("chroot", "oci", "rootless")] == ["chroot", "oci", "rootless"]
    with pytest.raises(UsageError, match="--isolation: expected one of chroot, oci, rootless"):
        image.buildah_isolation("bogus", {})
    done = subprocess.run([sys.executable, "-m", "invoke", "image", "--tag", "localhost/utils:t",
                           "--isolation", "oic"],  # checked before any builder is looked for
                          cwd=ROOT, env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 64, done.stderr
    assert "--isolation: expected one of chroot, oci, rootless, got 'oic'" in done.stderr


def test_docker_argv_is_a_plain_docker_build():
    builder = image.Builder("docker", "/usr/bin/docker")
    argv = image.build_argv(builder, spec())
    assert argv[:2] == ["/usr/bin/docker", "build"] and "--pull" not in argv
    assert "--pull" in image.build_argv(builder, spec(pull="always"))
    assert "--isolation" not in image.build_argv(builder, spec(isolation="chroot"))


def test_push_argv_carries_tls_choice(monkeypatch):
    reference = "127.0.0.1:5000/team/octopod-utils:t"
    buildah = image.Builder("buildah", "buildah")
    argv = image.push_argv(buildah, reference, tls_verify=False, digestfile=Path("/tmp/d"))
    assert argv == ["buildah", "push", "--tls-verify=false", "--digestfile", "/tmp/d", reference,
                    f"docker://{reference}"]
    assert "--tls-verify=true" in image.push_argv(buildah, reference, tls_verify=True)
    assert image.push_argv(image.Builder("docker", "docker"), reference, False) == ["docker", "push", reference]


def test_credentials_reach_the_builder_only_through_its_environment(tmp_path, monkeypatch):
    """image.make with a fake buildah that records what it was given: the auth file reaches it
    through REGISTRY_AUTH_FILE, and neither that file's name nor the secret is in any argv."""
    auth = tmp_path / "secret-auth.json"
    secret = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    auth.write_text(json.dumps({"auths": {"127.0.0.1:5000": {"auth": secret}}}))
    calls = tmp_path / "calls"
    fake = tmp_path / "buildah"
    fake.write_text(f"""#!/bin/sh
printf '%s\\n' "argv: $*" "auth: $REGISTRY_AUTH_FILE" >>{calls}
case "$1" in
  inspect) echo '{{"layers": [{{"size": 5}}]}}' ;;
  push) while [ "$1" != --digestfile ]; do shift; done; echo sha256:{'b' * 64} >"$2" ;;
esac
""")
    fake.chmod(0o755)
    monkeypatch.setattr(image, "manifest_argv", lambda *args, **kw: None)  # no skopeo call
    reference = "127.0.0.1:5000/team/octopod-utils:t"
    with (tmp_path / "out").open("w") as output:
        report = image.make(spec(reference=reference), image.Builder("buildah", str(fake)), push_it=True,
                            tls_verify=False, output=output,
                            env={**os.environ, "REGISTRY_AUTH_FILE": str(auth)})
    assert (report.size, report.digest) == (5, "sha256:" + "b" * 64)
    recorded = calls.read_text().splitlines()
    argvs = [line for line in recorded if line.startswith("argv: ")]
    assert [argv.split()[1] for argv in argvs] == ["bud", "inspect", "push"]
    assert f"auth: {auth}" in recorded  # the builder reads the credentials itself
    for leak in (PASSWORD, secret, str(auth), "creds"):
        assert not any(leak in argv for argv in argvs), leak


def test_the_pushed_manifest_is_read_with_tls_as_chosen_or_not_at_all():
    reference = "r.example.com/t/u:1"
    assert image.manifest_argv(image.Builder("docker", "docker"), reference, False) == [
        "docker", "manifest", "inspect", "--insecure", reference]
    buildah = image.Builder("buildah", "buildah")
    assert image.manifest_argv(buildah, reference, True, which=lambda name: None) is None
    assert image.manifest_argv(buildah, reference, False, which={"skopeo": "/usr/bin/skopeo"}.get) == [
        "/usr/bin/skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{reference}"]


def test_sizes_are_read_and_printed_in_decimal_units():
    manifest = json.dumps({"config": {"size": 900}, "layers": [{"size": 2_130_000}, {"size": 139_000_000}]})
    assert image.layers_size(manifest) == 141_130_000
    assert image.layers_size(json.dumps({"manifests": []})) is None and image.layers_size("<html>") is None
    assert image.parse_size(image.Builder("buildah", "b"), manifest) == 141_130_000
    assert image.parse_size(image.Builder("docker", "d"), "141130000\n") == 141_130_000
    for name, output in (("buildah", "{}"), ("docker", "<no value>")):
        with pytest.raises(image.ImageError, match=f"{name} gave no image size"):
            image.parse_size(image.Builder(name, name), output)
    assert [image.human_size(n) for n in (141_130_000, 2_130_000, 1_500, 12, 3_200_000_000)] == [
        "141.1 MB", "2.1 MB", "1.5 kB", "12 B", "3.2 GB"]
    report = image.Report("r.example.com/t/u:1", "buildah", 141_130_000, pushed=True,
                          digest="sha256:" + "a" * 64, pushed_size=60_100_000)
    assert report.lines() == ["image: r.example.com/t/u:1 (built with buildah)",
                              "size: 141.1 MB uncompressed",
                              f"pushed: r.example.com/t/u@sha256:{'a' * 64} (60.1 MB compressed)"]


@pytest.mark.parametrize("reference", ["octopod-utils:1", "registry.example.com/team/octopod-utils:1.0.0",
                                       "127.0.0.1:5000/team/octopod-utils:test", "a/b_c/d--e:v1.2-rc_1",
                                       "localhost/octopod-utils:t", "registry:5000/utils:t"])
def test_valid_references(reference):
    assert image.check_reference(reference) == reference


@pytest.mark.parametrize("reference", ["octopod-utils", "-q:1", "Team/utils:1", "r.example.com/utils:",
                                       "utils:1 --push", "utils@sha256:" + "a" * 64, "utils:-x"])
def test_invalid_references_are_usage_errors(reference):
    with pytest.raises(UsageError, match="--tag"):
        image.check_reference(reference)


def test_tls_verify_takes_true_or_false():
    assert image.parse_bool("--tls-verify", "false") is False and image.parse_bool("--tls-verify", "TRUE")
    with pytest.raises(UsageError, match="--tls-verify: expected true or false"):
        image.parse_bool("--tls-verify", "no")


@pytest.mark.parametrize("remote, url", [
    ("git@github.com:team/octopod-control.git", "https://github.com/team/octopod-control"),
    ("https://user:ghp_t0ken@github.com/team/octopod-control.git", "https://github.com/team/octopod-control"),
    ("ssh://git@git.example.com/platform/octopod-control", "https://git.example.com/platform/octopod-control"),
    ("ssh://git@git.example.com:2222/platform/octopod-control.git", "https://git.example.com/platform/octopod-control"),
    ("git://git.example.com:9418/platform/octopod-control", "https://git.example.com/platform/octopod-control"),
    ("https://git.example.com:8443/platform/octopod-control", "https://git.example.com:8443/platform/octopod-control"),
    ("https://git.example.com/platform/octopod-control/", "https://git.example.com/platform/octopod-control"),
    ("/work/main", None),  # a clone of a local clone (CI's): nothing anyone else can open
    ("file:///srv/git/octopod-control.git", None),
])
def test_the_source_label_is_a_public_url(remote, url):
    assert image.public_url(remote) == url


# -- fast: the hand-made puller's unpacker and checks (tests/support/oci.py) ----------------------

def layer(path: Path, *entries: tuple[str, str, object]) -> Path:
    """A layer tar of (type, name, content or link target) entries: file, dir, sym, lnk, chr."""
    with tarfile.open(path, "w") as tar:
        for kind, name, value in entries:
            info = tarfile.TarInfo(name)
            info.mode = 0o755
            data = None
            if kind == "file":
                data = value.encode()
                info.size, info.mode = len(data), 0o4755 if name.endswith("suid") else 0o644
            elif kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, value
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, value
            elif kind == "lnk":
                info.type, info.linkname = tarfile.LNKTYPE, value
            elif kind == "chr":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def test_a_directory_over_a_lower_symlink_replaces_it(tmp_path):
    """chmod/mkdir through a lower layer's symlink would change a directory outside the root."""
    outside, root = tmp_path / "outside", tmp_path / "root"
    outside.mkdir(mode=0o700)
    root.mkdir()
    oci.unpack_layer(layer(tmp_path / "l0", ("sym", "etc", str(outside))), root)
    oci.unpack_layer(layer(tmp_path / "l1", ("dir", "etc", 0o777), ("file", "etc/passwd", "x")), root)
    assert stat.S_IMODE(outside.stat().st_mode) == 0o700 and not list(outside.iterdir())
    assert (root / "etc").is_dir() and not (root / "etc").is_symlink()
    assert (root / "etc/passwd").read_text() == "x"


def test_a_hard_link_to_a_symlink_is_refused(tmp_path):
    """os.link follows a symlink: the link (and the chmod after it) would reach outside the root."""
    secret, root = tmp_path / "secret", tmp_path / "root"
    secret.write_text("s")
    secret.chmod(0o600)
    root.mkdir()
    oci.unpack_layer(layer(tmp_path / "l0", ("sym", "s", str(secret))), root)
    with pytest.raises(oci.PullError, match="hard link to the symlink"):
        oci.unpack_layer(layer(tmp_path / "l1", ("lnk", "h", "s")), root)
    with pytest.raises(oci.PullError, match="hard link to the symlink"):  # the symlink in the same layer
        oci.unpack_layer(layer(tmp_path / "l2", ("sym", "t", str(secret)), ("lnk", "k", "t")), tmp_path / "r2")
    assert secret.stat().st_nlink == 1 and stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert not (root / "h").exists()
    with pytest.raises(oci.PullError, match="leaves the root"):
        oci.unpack_layer(layer(tmp_path / "l3", ("lnk", "h", "../secret")), root)


def test_devices_are_refused_and_setuid_stripped_whiteouts_still_apply(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(oci.PullError, match="device node"):
        oci.unpack_layer(layer(tmp_path / "l0", ("chr", "null", None)), root)
    assert not (root / "null").exists()
    oci.unpack_layer(layer(tmp_path / "l1", ("dir", "tmp", 0o1777), ("file", "bin/suid", "x"),
                           ("file", "gone", "g"), ("lnk", "bin/same", "bin/suid")), root)
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o1777
    assert stat.S_IMODE((root / "bin/suid").stat().st_mode) == 0o755
    assert (root / "bin/same").stat().st_ino == (root / "bin/suid").stat().st_ino
    oci.unpack_layer(layer(tmp_path / "l2", ("file", ".wh.gone", "")), root)
    assert not (root / "gone").exists()


def test_layers_are_checked_against_the_configs_diff_ids(tmp_path):
    raw = layer(tmp_path / "raw", ("file", "f", "x")).read_bytes()
    blob = tmp_path / "blob"
    blob.write_bytes(gzip.compress(raw))
    manifest = {"layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip"}]}
    good = {"rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]}}
    oci.check_diff_ids(manifest, good, [blob])
    with pytest.raises(oci.PullError, match="diff_id"):
        oci.check_diff_ids(manifest, {"rootfs": {"diff_ids": ["sha256:" + "0" * 64]}}, [blob])
    with pytest.raises(oci.PullError, match="name 0 layers"):
        oci.check_diff_ids(manifest, {"rootfs": {}}, [blob])


def test_credentials_are_not_sent_to_another_host_on_a_redirect():
    seen: dict[str, str | None] = {}

    class Storage(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen["storage"] = self.headers.get("Authorization")
            self.send_response(200)
            self.send_header("Content-Length", "4")
            self.end_headers()
            self.wfile.write(b"blob")

        def log_message(self, *args):
            pass

    storage = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Storage)

    class Registry(Storage):
        def do_GET(self):
            seen["registry"] = self.headers.get("Authorization")
            self.send_response(307)
            self.send_header("Location", f"http://localhost:{storage.server_port}/blob")
            self.send_header("Content-Length", "0")
            self.end_headers()

    registry = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    for server in (storage, registry):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        session = oci.Session(f"http://127.0.0.1:{registry.server_port}", "team/u", USER, PASSWORD)
        session.authorization = f"Basic {session.basic}"
        assert session.get("blobs/sha256:x")[0] == b"blob"
    finally:
        for server in (storage, registry):
            server.shutdown()
    assert seen == {"registry": f"Basic {session.basic}", "storage": None}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                          timeout=30, env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e",
                                           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"}).stdout.strip()


def test_labels_come_from_git(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "f").write_text("x")
    git(tmp_path, "add", "f")
    git(tmp_path, "commit", "-q", "-m", "one")
    git(tmp_path, "tag", "v1.0.0")
    warnings: list[str] = []
    labels = image.git_labels(tmp_path, warn=warnings.append)
    assert labels == image.Labels("v1.0.0", git(tmp_path, "rev-parse", "HEAD"), image.DEFAULT_SOURCE)
    assert warnings and "no public git remote 'origin'" in warnings[0]
    (tmp_path / "f").write_text("y")
    git(tmp_path, "remote", "add", "origin", "git@github.com:team/octopod-control.git")
    labels = image.git_labels(tmp_path, warn=warnings.append)
    assert (labels.version, labels.source) == ("v1.0.0-dirty", "https://github.com/team/octopod-control")
    assert image.git_labels(tmp_path, version="2.0.0", source="https://s").version == "2.0.0"
    git(tmp_path, "checkout", "-q", "f")
    assert image.git_labels(tmp_path, warn=warnings.append).version == "v1.0.0"
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.md").write_text("not built in")  # untracked, outside the bundle
    assert image.git_labels(tmp_path, warn=warnings.append).version == "v1.0.0"
    (tmp_path / "octopod_control").mkdir()
    (tmp_path / "octopod_control" / "new.py").write_text("")  # untracked, built in: describe misses it
    assert image.git_labels(tmp_path, warn=warnings.append).version == "v1.0.0-dirty"
    (tmp_path / "octopod_control" / "new.py").unlink()
    git(tmp_path, "remote", "set-url", "origin", "/srv/clone")  # a clone of a local clone, as in CI
    assert image.git_labels(tmp_path, warn=warnings.append).source == image.DEFAULT_SOURCE
    assert "no public git remote 'origin'" in warnings[-1]


def test_outside_git_the_version_must_be_given(tmp_path):
    with pytest.raises(image.ImageError, match="pass --version and --revision"):
        image.git_labels(tmp_path)
    labels = image.git_labels(tmp_path, version="1.0.0", revision="r1", source="https://s")
    assert labels == image.Labels("1.0.0", "r1", "https://s")


def test_a_failed_or_hung_call_is_one_message(tmp_path):
    with pytest.raises(image.ImageError, match=r"^image: buildah push failed \(exit 3\): denied$"):
        image.run(["sh", "-c", "echo denied >&2; exit 3"], "buildah push", 10)
    with pytest.raises(image.ImageError, match=r"^image: buildah build timed out after 0.3 s$"):
        image.run(["sleep", "10"], "buildah build", 0.3)
    with pytest.raises(image.ImageError, match="not found"):
        image.run([str(tmp_path / "nope")], "docker push", 10)


# -- slow: the real image ----------------------------------------------------------------------

def log(line: str) -> None:
    print(f"image test: {line}", file=sys.stderr)


@dataclass
class Built:
    report: image.Report
    spec: image.BuildSpec
    builder: image.Builder
    labels: image.Labels
    registry: str  # host:port
    pulled: oci.Pulled
    rootfs: Path
    timings: dict[str, float]


@pytest.fixture(scope="module")
def store() -> Iterator[image_store.Store]:
    require_root("the image tests need root: buildah's own store, chroot(2) into the unpacked image")
    missing = [tool for tool in ("buildah", "debootstrap", "docker-registry", "htpasswd", "skopeo")
               if not shutil.which(tool)]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: apt-get install buildah debootstrap skopeo "
                    "docker-registry apache2-utils (./run does)")
    # The store is shared by every run on the machine: held alone until this module is done.
    with image_store.locked(log):
        yield image_store.Store.for_machine()


@pytest.fixture(scope="module")
def built(store, tmp_path_factory) -> Built:
    """The Dockerfile built, pushed with credentials, pulled back by hand and unpacked."""
    work = tmp_path_factory.mktemp("image")
    timings: dict[str, float] = {}
    started = time.monotonic()
    try:
        keep = image_store.ensure_bases(store, log)
    except image_store.StoreError as exc:
        pytest.fail(f"making the base images: {exc}")
    timings["base images"] = time.monotonic() - started
    registry = start_registry(work / "registry", work / "storage", basic_auth(htpasswd_file(work / "htpasswd")))
    try:
        reference = f"{registry.host}/{REPOSITORY}:test"
        labels = image.git_labels(ROOT, warn=log)
        builder = image.Builder("buildah", shutil.which("buildah"), store.options())
        auth = work / "auth.json"  # buildah reads it through REGISTRY_AUTH_FILE: no secret in argv
        secret = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        auth.write_text(json.dumps({"auths": {registry.host: {"auth": secret}}}))
        env = {**os.environ, "REGISTRY_AUTH_FILE": str(auth)}
        build_log = work / "build.log"
        spec = image.BuildSpec(reference, labels, pull="never", isolation="chroot")
        started = time.monotonic()
        report = make(spec, builder, build_log, push_it=True, tls_verify=False, env=env)
        timings["build and push"] = time.monotonic() - started
        assert PASSWORD not in build_log.read_text()
        image_store.prune(store, build_log.read_text(), keep)
        started = time.monotonic()
        with pytest.raises(oci.PullError, match="asks for credentials"):
            oci.pull(registry.url, REPOSITORY, "test", work / "anonymous")
        pulled = oci.pull(registry.url, REPOSITORY, "test", work / "blobs", USER, PASSWORD)
        rootfs = oci.unpack(pulled, work / "rootfs")
        timings["pull and unpack"] = time.monotonic() - started
    finally:
        registry.stop()
    log(", ".join(f"{what} {seconds:.1f} s" for what, seconds in timings.items()))
    for line in report.lines():
        log(line)
    return Built(report, spec, builder, labels, registry.host, pulled, rootfs, timings)


def make(spec: image.BuildSpec, builder: image.Builder, build_log: Path, **kw) -> image.Report:
    """image.make, the build's output in build_log (its tail in the failure)."""
    with build_log.open("w") as output:
        try:
            return image.make(spec, builder, output=output, **kw)
        except image.ImageError as exc:
            pytest.fail(f"{exc}\n{build_log.read_text()[-4000:]}")


def git_says(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True,
                          timeout=30).stdout.strip()


@pytest.mark.slow
def test_invoke_image_reports_the_pushed_image(built):
    report = built.report
    assert report.reference == f"{built.registry}/{REPOSITORY}:test"
    assert report.digest == built.pulled.digest  # what buildah pushed is what came back
    assert report.pushed_size == built.pulled.compressed_size  # skopeo read the same manifest
    assert 50_000_000 < report.size < 300_000_000, report.size
    assert report.lines()[1] == f"size: {image.human_size(report.size)} uncompressed"


@pytest.mark.slow
def test_the_image_carries_the_oci_labels_and_octopods_path(built):
    config = built.pulled.config["config"]
    labels = {k.removeprefix(LABEL): v for k, v in config["Labels"].items() if k.startswith(LABEL)}
    assert labels["version"] == git_says("describe", "--tags", "--always", "--dirty")
    assert labels["revision"] == git_says("rev-parse", "HEAD")
    assert labels["source"] == built.labels.source and labels["source"].startswith("https://")
    assert "PATH=/utils:/bin" in config["Env"]
    assert built.pulled.config["architecture"] == "amd64" and built.pulled.config["os"] == "linux"


def final_stage(dockerfile: Path) -> str:
    """The Dockerfile's global ARGs and last stage without its COPY --from (FROM, ARG, LABEL, ENV)."""
    text = dockerfile.read_text()
    head = [line for line in text[:text.index("\nFROM ")].splitlines(keepends=True) if line.startswith("ARG ")]
    stage = text[text.rindex("\nFROM ") + 1:].splitlines(keepends=True)
    return "".join(head + [line for line in stage if not line.startswith("COPY --from")])


@pytest.mark.slow
def test_a_rebuild_with_only_a_new_version_is_relabelled(built, tmp_path):
    """All steps cached, only VERSION changed: buildah 1.28's cache alone keeps the old label.

    The real Dockerfile's final stage (on busybox alone, so cheap on any store driver), built
    twice by image.make."""
    (tmp_path / "Dockerfile").write_text(final_stage(ROOT / "Dockerfile"))
    template = '{{index .OCIv1.Config.Labels "org.opencontainers.image.version"}}'
    for version in ("1.0.0-first", "1.0.0-second"):
        labels = dataclasses.replace(built.labels, version=version)
        spec = dataclasses.replace(built.spec, reference="localhost/octopod-utils:relabelled",
                                   labels=labels, context=tmp_path)
        make(spec, built.builder, tmp_path / "build.log")
        done = subprocess.run(built.builder.argv("inspect", "--type", "image", "--format", template,
                                                 spec.reference),
                              capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stdout.strip()) == (0, version), done.stderr
    assert "Using cache" in (tmp_path / "build.log").read_text()  # the second build was cached


@pytest.mark.slow
def test_the_image_holds_only_what_octopod_needs(built):
    root = built.rootfs
    assert sorted(p.name for p in (root / "utils").iterdir()) == UTILS
    for path in (root / "utils").iterdir():
        info = path.lstat()
        assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o755, path
        if bundle.is_elf(path):
            assert bundle.elf_interp(path) is None, f"{path.name} is dynamically linked"
    for tool in ("sh", "cp"):
        assert os.access(root / "bin" / tool, os.X_OK), tool
    pythons = [str(p.relative_to(root)) for p in root.rglob("*")
               if p.name.startswith(("python", "libpython")) or p.suffix in (".py", ".pyc")]
    assert pythons == []
    # busybox's tree and /utils: no build stage leftovers (/src, /opt, apt, a venv)
    assert {p.name for p in root.iterdir()} <= {"bin", "etc", "home", "root", "tmp", "var", "usr", "utils"}
    assert not (root / "lib").exists() and not (root / "lib64").exists()


@pytest.fixture(scope="module")
def init_copy(built) -> subprocess.CompletedProcess:
    """Octopod's copy-control-scripts init container: its command, in the image, as uid 1000,
    with the image's environment, into /copy (the emptyDir the chart mounts there)."""
    copy = built.rootfs / "copy"
    copy.mkdir()
    os.chown(copy, UID, UID)
    return subprocess.run(["chroot", f"--userspec={UID}:{UID}", str(built.rootfs), "/bin/env", "-i",
                           *built.pulled.config["config"]["Env"], "/bin/sh", "-c", "cp /utils/* /copy/"],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_octopods_init_container_copies_utils_as_uid_1000(built, init_copy):
    assert (init_copy.returncode, init_copy.stderr) == (0, "")
    copied = sorted((built.rootfs / "copy").iterdir())
    assert [p.name for p in copied] == UTILS
    for path in copied:
        assert path.read_bytes() == (built.rootfs / "utils" / path.name).read_bytes(), path.name
        assert path.stat().st_uid == UID and os.access(path, os.X_OK)


@pytest.fixture(scope="module")
def server_root(built, init_copy, tmp_path_factory) -> Path:
    """Octopod's server image, as far as the scripts can tell: busybox and the copied /utils."""
    if init_copy.returncode != 0:
        pytest.fail(f"the init container's copy failed: {init_copy.stderr}")
    root = tmp_path_factory.mktemp("server")
    shutil.copytree(built.rootfs / "copy", root / "utils")
    return make_root(root)


@pytest.mark.slow
def test_the_copied_files_run_where_octopod_runs_them(server_root, cluster, namespace):
    kubeconfig = add_kubeconfig(server_root, cluster.kubeconfig)
    assert not any((server_root / d).exists() for d in ("usr", "lib", "lib64", "etc"))
    done = in_jail(server_root, "helm", "version", "--short")
    assert done.returncode == 0 and done.stdout.startswith("v3.18.0"), (done.stdout, done.stderr)
    done = in_jail(server_root, "info", *COMMON, "--namespace", namespace, "--name", "web", env=(kubeconfig,))
    assert done.returncode == 0, done.stderr
    assert "app,https://web.staging.example.com" in done.stdout.splitlines()
    args = [*COMMON, "--namespace", namespace, "--name", "web"]
    with cluster.controller(namespace):
        done = in_jail(server_root, "create", *args, "--tag", "v1", env=(kubeconfig, "HELM_TIMEOUT=60"))
    assert done.returncode == 0, done.stderr
    done = in_jail(server_root, "check", *args, "--tag", "v1", env=(kubeconfig,))
    assert (done.returncode, done.stdout) == (0, ""), done.stderr
    done = in_jail(server_root, "check", *args, "--tag", "v2", env=(kubeconfig,))
    assert done.returncode == 3, (done.returncode, done.stderr)
