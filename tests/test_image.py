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
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

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


def test_docker_argv_is_a_plain_docker_build():
    builder = image.Builder("docker", "/usr/bin/docker")
    argv = image.build_argv(builder, spec())
    assert argv[:2] == ["/usr/bin/docker", "build"] and "--pull" not in argv
    assert "--pull" in image.build_argv(builder, spec(pull="always"))
    assert "--isolation" not in image.build_argv(builder, spec(isolation="chroot"))


def test_push_argv_carries_tls_choice_and_no_credentials(monkeypatch):
    monkeypatch.setenv("REGISTRY_AUTH_FILE", "/secret/auth.json")
    reference = "127.0.0.1:5000/team/octopod-utils:t"
    buildah = image.Builder("buildah", "buildah")
    argv = image.push_argv(buildah, reference, tls_verify=False, digestfile=Path("/tmp/d"))
    assert argv == ["buildah", "push", "--tls-verify=false", "--digestfile", "/tmp/d", reference,
                    f"docker://{reference}"]
    assert "--tls-verify=true" in image.push_argv(buildah, reference, tls_verify=True)
    assert image.push_argv(image.Builder("docker", "docker"), reference, False) == ["docker", "push", reference]
    everything = " ".join(argv + image.build_argv(buildah, spec()))
    for secret in ("auth", "creds", PASSWORD, "/secret"):
        assert secret not in everything


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
    ("https://git.example.com/platform/octopod-control/", "https://git.example.com/platform/octopod-control"),
    ("/work/main", None),  # a clone of a local clone (CI's): nothing anyone else can open
    ("file:///srv/git/octopod-control.git", None),
])
def test_the_source_label_is_a_public_url(remote, url):
    assert image.public_url(remote) == url


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
def store() -> image_store.Store:
    require_root("the image tests need root: buildah's own store, chroot(2) into the unpacked image")
    missing = [tool for tool in ("buildah", "debootstrap", "docker-registry", "htpasswd", "skopeo")
               if not shutil.which(tool)]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: apt-get install buildah debootstrap skopeo "
                    "docker-registry apache2-utils (./run does)")
    return image_store.Store.for_machine()


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
