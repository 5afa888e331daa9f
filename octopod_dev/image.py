"""`invoke image`: the utils image Octopod pulls, built from the Dockerfile with docker or buildah.

The builder is docker when its engine answers (`docker info`; the client alone builds nothing),
else buildah (no daemon; Debian's `buildah` package). With neither, one line names what is
missing and the exit code is 69 (EX_UNAVAILABLE). The OCI labels come from git as build args
(`VERSION`, `REVISION`, `SOURCE`; the Dockerfile turns them into LABELs).

Credentials are never ours: docker and buildah read them themselves (`REGISTRY_AUTH_FILE`,
`~/.docker/config.json`, buildah's auth.json), so no secret is in an argv or a log. Every
external call is an argv list with a timeout; the build's and the push's output go to stderr,
and stdout carries the result: the reference, its size, and after a push the digest and the
compressed bytes (when the manifest is cheaply at hand: `docker manifest inspect`, or skopeo
beside buildah).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, TextIO

from octopod_control.errors import OctopodError, UsageError

ROOT = Path(__file__).resolve().parent.parent
EX_UNAVAILABLE = 69  # sysexits.h: a service (here, an image builder) is unavailable
# org.opencontainers.image.source when git knows no `origin` remote and --source is not given.
DEFAULT_SOURCE = "https://git.example.com/platform/octopod-control"
HELMS = ("helm3", "helm4")
ISOLATIONS = ("chroot", "oci", "rootless")  # buildah's --isolation values
# What the bundle builds in: untracked files here change the image, but `git describe --dirty`
# sees only tracked ones.
BUILT_IN = ("env", "charts", "bundle", "octopod_control")
OCI_LABEL = "org.opencontainers.image."
PULL = {"missing": "false", "never": "never", "always": "always"}  # buildah 1.28's spellings
DOCKER_INFO_TIMEOUT = 10.0
GIT_TIMEOUT = 10.0
QUERY_TIMEOUT = 60.0
BUILD_TIMEOUT = 3600.0
PUSH_TIMEOUT = 1800.0
# NAME:TAG as distribution's reference grammar has it: [host[:port]/]path:tag, where a host has
# a dot or a port or is localhost, and path components are lower-case; no digest (we build a
# tag). A leading '-' cannot pass, so no argv injection.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST = rf"(?:(?:localhost|{_LABEL}(?:\.{_LABEL})+)(?::[0-9]+)?|{_LABEL}:[0-9]+)"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REFERENCE = re.compile(rf"^(?:{_HOST}/)?{_COMPONENT}(?:/{_COMPONENT})*:[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}$")


class ImageError(OctopodError):
    """A build, push or query that failed or ran out of time (exit 1), or no builder (69)."""


@dataclass(frozen=True)
class Builder:
    name: str  # "docker" or "buildah"
    path: str
    options: tuple[str, ...] = ()  # global options before the subcommand (buildah: a store)

    def argv(self, *args: str) -> list[str]:
        return [self.path, *self.options, *args]


@dataclass(frozen=True)
class Labels:
    version: str
    revision: str
    source: str

    def build_args(self) -> dict[str, str]:
        return {"VERSION": self.version, "REVISION": self.revision, "SOURCE": self.source}

    def oci(self) -> dict[str, str]:
        return {f"{OCI_LABEL}{name}": value
                for name, value in (("version", self.version), ("revision", self.revision),
                                    ("source", self.source))}


@dataclass(frozen=True)
class BuildSpec:
    reference: str
    labels: Labels
    helm: str = "helm3"
    context: Path = ROOT
    pull: str = "missing"  # base images: "missing" (docker's default), "never", "always"
    isolation: str | None = None  # buildah only; None: BUILDAH_ISOLATION or buildah's default
    extra_args: tuple[tuple[str, str], ...] = ()  # more build args (DEBIAN_IMAGE=...)

    @property
    def dockerfile(self) -> Path:
        return self.context / "Dockerfile"


@dataclass
class Report:
    reference: str
    builder: str
    size: int  # uncompressed bytes of the layers
    pushed: bool = False
    digest: str | None = None  # of the pushed manifest, when the builder tells it
    pushed_size: int | None = None  # compressed bytes of the pushed layers, when known
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"image: {self.reference} (built with {self.builder})",
               f"size: {human_size(self.size)} uncompressed"]
        if self.pushed:
            where = f"{self.reference.rsplit(':', 1)[0]}@{self.digest}" if self.digest else self.reference
            compressed = f" ({human_size(self.pushed_size)} compressed)" if self.pushed_size else ""
            out.append(f"pushed: {where}{compressed}")
        return out


def buildah_isolation(chosen: str | None, environ: Mapping[str, str]) -> str | None:
    """buildah's --isolation: the one asked for, else chroot unless BUILDAH_ISOLATION says.

    buildah's own default (oci: runc) needs cgroups that CI containers and hybrid-cgroup hosts
    do not give ("cgroups in hybrid mode not supported"); chroot builds our Dockerfile anywhere
    buildah runs as root, and the Dockerfile's steps are ours.
    """
    if chosen:
        return check_isolation(chosen)
    return None if environ.get("BUILDAH_ISOLATION") else "chroot"


def check_isolation(isolation: str) -> str:
    if isolation not in ISOLATIONS:
        raise UsageError(f"--isolation: expected one of {', '.join(ISOLATIONS)}, got {isolation!r}")
    return isolation


# -- external calls ------------------------------------------------------------------------

def run(argv: list[str], what: str, timeout: float, output: TextIO | None = None,
        env: Mapping[str, str] | None = None) -> str:
    """argv's stdout (or nothing, its output going to `output`); ImageError naming `what`
    when it cannot start, fails or outlives `timeout`."""
    try:
        if output is not None:
            output.flush()
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                                  timeout=timeout, env=env)
        else:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=timeout, env=env)
    except FileNotFoundError:
        raise ImageError(f"image: {what}: {argv[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise ImageError(f"image: {what} timed out after {timeout:g} s") from None
    if done.returncode != 0:
        detail = "" if output is not None else f": {_last_line(done.stderr or done.stdout)}"
        raise ImageError(f"image: {what} failed (exit {done.returncode}){detail}")
    return done.stdout or ""


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


# -- which builder -------------------------------------------------------------------------

def docker_answers(path: str, timeout: float = DOCKER_INFO_TIMEOUT) -> tuple[bool, str]:
    """(True, server version) when docker's engine answers; else (False, why not)."""
    try:
        version = run([path, "info", "--format", "{{.ServerVersion}}"], "docker info", timeout).strip()
    except ImageError as exc:
        return False, str(exc).removeprefix("image: ")
    if not version or version == "<no value>":
        return False, "docker info gave no server version"
    return True, version


def find_builder(which: Callable[[str], str | None] = shutil.which,
                 answers: Callable[[str], tuple[bool, str]] = docker_answers) -> Builder:
    """docker if its engine answers, else buildah; neither: ImageError with exit 69."""
    docker = which("docker")
    if docker:
        ok, why = answers(docker)
        if ok:
            return Builder("docker", docker)
        docker_state = f"docker's engine does not answer ({why})"
    else:
        docker_state = "docker is not installed"
    buildah = which("buildah")
    if buildah:
        return Builder("buildah", buildah)
    raise ImageError(f"image: no image builder: {docker_state} and buildah is not installed; "
                     "install buildah (Debian/Ubuntu: apt-get install buildah) or start a Docker engine",
                     EX_UNAVAILABLE)


# -- argv ----------------------------------------------------------------------------------

def build_argv(builder: Builder, spec: BuildSpec) -> list[str]:
    args = {**spec.labels.build_args(), "HELM": spec.helm, **dict(spec.extra_args)}
    common = ["--file", str(spec.dockerfile), "--tag", spec.reference]
    for name, value in args.items():
        common += ["--build-arg", f"{name}={value}"]
    # The same labels once more as --label: buildah 1.28's layer cache ignores build-arg values
    # in a LABEL step, so a rebuild with only a new version would keep the old label.
    for name, value in spec.labels.oci().items():
        common += ["--label", f"{name}={value}"]
    if builder.name == "docker":  # docker uses a present base image and pulls a missing one
        return builder.argv("build", *(["--pull"] if spec.pull == "always" else []), *common,
                            str(spec.context))
    isolation = ["--isolation", spec.isolation] if spec.isolation else []
    # --layers: docker's step cache; --force-rm: no working container left by a failed step.
    return builder.argv("bud", "--layers", "--force-rm", f"--pull={PULL[spec.pull]}", *isolation,
                        *common, str(spec.context))


def push_argv(builder: Builder, reference: str, tls_verify: bool, digestfile: Path | None = None) -> list[str]:
    if builder.name == "docker":  # the engine decides TLS (its insecure-registries setting)
        return builder.argv("push", reference)
    digest = ["--digestfile", str(digestfile)] if digestfile else []
    return builder.argv("push", f"--tls-verify={str(tls_verify).lower()}", *digest, reference,
                        f"docker://{reference}")


def size_argv(builder: Builder, reference: str) -> list[str]:
    if builder.name == "docker":
        return builder.argv("image", "inspect", "--format", "{{.Size}}", reference)
    return builder.argv("inspect", "--type", "image", "--format", "{{.Manifest}}", reference)


def manifest_argv(builder: Builder, reference: str, tls_verify: bool,
                  which: Callable[[str], str | None] = shutil.which) -> list[str] | None:
    """How to read the pushed manifest back (for its compressed size), or None: not cheaply."""
    if builder.name == "docker":
        return [builder.path, "manifest", "inspect", *([] if tls_verify else ["--insecure"]), reference]
    skopeo = which("skopeo")
    if not skopeo:
        return None
    return [skopeo, "inspect", "--raw", f"--tls-verify={str(tls_verify).lower()}", f"docker://{reference}"]


# -- sizes ---------------------------------------------------------------------------------

def layers_size(manifest: str) -> int | None:
    """The sum of an image manifest's layer sizes; None for anything else (an index)."""
    try:
        layers = json.loads(manifest).get("layers")
        return sum(int(layer["size"]) for layer in layers) if isinstance(layers, list) else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def parse_size(builder: Builder, output: str) -> int:
    if builder.name == "docker":
        size = int(output.strip()) if output.strip().isdigit() else None
    else:
        size = layers_size(output)
    if size is None:
        raise ImageError(f"image: {builder.name} gave no image size: {output.strip()[:200]!r}")
    return size


def human_size(size: int) -> str:
    """Decimal units, as docker and buildah print them: 141.2 MB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


# -- labels from git -----------------------------------------------------------------------

def _git(root: Path, *args: str) -> str:
    return run(["git", "-C", str(root), *args], f"git {args[0]}", GIT_TIMEOUT).strip()


def public_url(remote: str) -> str | None:
    """A remote's URL fit for a label: ssh and scp-like forms as https, no user or token, no .git;
    None for a remote no one else can reach (a local path, file://: a clone of a clone)."""
    scp = re.match(r"^(?:[^@/]+@)?([^:/]+):(?!//)(.+)$", remote)  # git@host:team/repo.git
    url = f"https://{scp.group(1)}/{scp.group(2)}" if scp else remote
    ssh = re.match(r"^(?:ssh|git)://", url)
    url = re.sub(r"^(?:ssh|git)://", "https://", url)
    url = re.sub(r"^(https?://)[^@/]*@", r"\1", url)
    if ssh:  # an ssh or git port is no https port
        url = re.sub(r"^(https://[^/:]+):[0-9]*(?=/|$)", r"\1", url)
    if not re.match(r"^https?://[^/]", url):
        return None
    return url.removesuffix("/").removesuffix(".git")


def git_labels(root: Path = ROOT, version: str | None = None, revision: str | None = None,
               source: str | None = None, warn: Callable[[str], None] | None = None) -> Labels:
    try:
        if not version:
            version = _git(root, "describe", "--tags", "--always", "--dirty")
            # --dirty ignores untracked files, which the build takes in all the same
            if not version.endswith("-dirty") and _git(root, "status", "--porcelain", "-uall", "--", *BUILT_IN):
                version += "-dirty"
        revision = revision or _git(root, "rev-parse", "HEAD")
    except ImageError as exc:
        raise ImageError(f"{exc}; outside a git checkout pass --version and --revision") from None
    if not source:
        try:
            source = public_url(_git(root, "remote", "get-url", "origin"))
        except ImageError:
            source = None
        if not source:
            source = DEFAULT_SOURCE
            (warn or _stderr)(f"warning: no public git remote 'origin': org.opencontainers.image.source "
                              f"is {source} (pass --source)")
    return Labels(version, revision, source)


# -- build, push, report -------------------------------------------------------------------

def check_reference(reference: str) -> str:
    if not REFERENCE.match(reference):
        raise UsageError(f"--tag: {reference!r} is not an image reference NAME:TAG "
                         "(e.g. registry.example.com/team/octopod-utils:1.0.0)")
    return reference


def parse_bool(flag: str, value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise UsageError(f"{flag}: expected true or false, got {value!r}")


def image_size(builder: Builder, reference: str) -> int:
    return parse_size(builder, run(size_argv(builder, reference), f"{builder.name} inspect", QUERY_TIMEOUT))


def push(builder: Builder, reference: str, tls_verify: bool, output: TextIO,
         env: Mapping[str, str] | None = None) -> str | None:
    """Push; the manifest digest (buildah's --digestfile, docker's RepoDigests), if told."""
    with tempfile.TemporaryDirectory(prefix="octopod-image-") as scratch:
        digestfile = Path(scratch) / "digest"
        run(push_argv(builder, reference, tls_verify, digestfile), f"{builder.name} push",
            PUSH_TIMEOUT, output, env)
        if digestfile.is_file():
            return digestfile.read_text().strip() or None
    if builder.name != "docker":
        return None
    listed = run(builder.argv("image", "inspect", "--format", "{{json .RepoDigests}}", reference),
                 "docker image inspect", QUERY_TIMEOUT)
    repository = reference.rsplit(":", 1)[0]
    found = [entry.split("@", 1)[1] for entry in json.loads(listed or "[]") or []
             if entry.startswith(repository + "@")]
    return found[0] if found else None


def pushed_size(builder: Builder, reference: str, tls_verify: bool,
                env: Mapping[str, str] | None = None) -> int | None:
    argv = manifest_argv(builder, reference, tls_verify)
    if argv is None:
        return None
    try:
        return layers_size(run(argv, "reading the pushed manifest", QUERY_TIMEOUT, env=env))
    except ImageError:
        return None  # only a figure for the report: the push itself succeeded


def make(spec: BuildSpec, builder: Builder, push_it: bool = False, tls_verify: bool = True,
         output: TextIO = sys.stderr, env: Mapping[str, str] | None = None) -> Report:
    """Build spec.reference with builder (and push it); what to report."""
    report = Report(spec.reference, builder.name, 0)
    run(build_argv(builder, spec), f"{builder.name} build", BUILD_TIMEOUT, output, env)
    report.size = image_size(builder, spec.reference)
    if push_it:
        if builder.name == "docker" and not tls_verify:
            report.notes.append("note: --tls-verify=false is buildah's; docker trusts a registry "
                                "by its engine's insecure-registries setting")
        report.digest = push(builder, spec.reference, tls_verify, output, env)
        report.pushed = True
        report.pushed_size = pushed_size(builder, spec.reference, tls_verify, env)
    return report
