"""A buildah image store for the image test, and the base images the Dockerfile names, made locally.

No Docker Hub here: `docker.io/library/debian:12` is `debootstrap --variant=minbase bookworm`
from deb.debian.org, shaped like the official image (deb822 sources with -updates and
-security, no apt lists, an empty /dev, `PATH` and `CMD ["bash"]`); `docker.io/library/busybox:1.36.1`
is a scratch image with Debian's busybox-static as /bin/busybox and its applets as hard links
in /bin (as the official image has them), /etc/passwd, /etc/group, /tmp and `CMD ["sh"]`.
Debian's busybox is 1.35, not 1.36.1: it stands in under the name the Dockerfile pins and
serves the same purpose there (sh and cp for Octopod's init container).

One concession to the machine: where its TLS goes through an intercepting proxy whose CA the
host trusts (/usr/local/share/ca-certificates/), the debian image carries those certificates
too (the build's `apt-get install ca-certificates` adds them to the system bundle) and
`PIP_CERT` names that bundle (pip reads its own certifi otherwise), as a company's mirrored
base image would. Without such certificates the image is plain Debian.

The store lives under a fixed directory (`STATE`), so the base images and the build's layer
cache outlive a clean clone: made once per machine. Each base image carries a second name
holding the key of its inputs (`localhost/octopod-test-base/debian:<key>`); a changed recipe
(or busybox binary, or CA) is a new key, and the image is made again. The driver is overlay
where the kernel mounts it (layers are diffs: a cached build step costs nothing), else vfs
(every step a full copy of the tree: slower, several GB).

Runs on one machine share that store, so a run holds an exclusive lock on `STATE/lock`
(`locked()`) from making the base images until its last build, push and prune are done; a
second run waits for it. The base images are not refreshed while their key stands (a new
Debian point release does not change it): `rm -r /var/lib/octopod-control-test` makes them anew.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

STATE = Path("/var/lib/octopod-control-test")
LOCK = STATE / "lock"
RUNTIME = Path("/run/octopod-control-test")
CACHE_NAMESPACE = "localhost/octopod-test-base"
RECIPE = "3"  # bump when a recipe below changes in a way its inputs do not show
MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
DEBIAN = "docker.io/library/debian:12"
BUSYBOX = "docker.io/library/busybox:1.36.1"
HOST_BUSYBOX = Path("/bin/busybox")
HOST_CAS = Path("/usr/local/share/ca-certificates")
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What the official debian:12 image has in /etc/apt/sources.list.d/debian.sources.
DEBIAN_SOURCES = f"""Types: deb
URIs: {MIRROR}
Suites: {SUITE} {SUITE}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: {SUITE}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
POLICY_RC_D = "#!/bin/sh\nexit 101\n"  # the official image's: no service starts in a build
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
GROUP = "root:x:0:\nnobody:x:65534:\n"
# buildah's build log names every image a step made or took from the cache.
STEP_IMAGE = re.compile(r"^--> (?:Using cache )?([0-9a-f]{11,64})$", re.M)

Log = Callable[[str], None]


class StoreError(Exception):
    pass


def _run(argv: list[str], what: str, timeout: float) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise StoreError(f"{what} timed out after {timeout:.0f} s") from None
    if done.returncode != 0:
        raise StoreError(f"{what} failed ({done.returncode}): {(done.stdout + done.stderr).strip()[-2000:]}")
    return done.stdout


# -- the store -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Store:
    """A buildah image store of the test's own (root only): `--root`, `--runroot`, the driver."""
    root: Path
    runroot: Path
    driver: str

    @classmethod
    def for_machine(cls) -> "Store":
        driver = "overlay" if overlay_works(STATE) else "vfs"
        return cls(STATE / "containers" / driver, RUNTIME / "containers" / driver, driver)

    def options(self) -> tuple[str, ...]:
        return ("--root", str(self.root), "--runroot", str(self.runroot), "--storage-driver", self.driver)

    def buildah(self, *args: str, timeout: float = 600) -> str:
        return _run(["buildah", *self.options(), *args], f"buildah {' '.join(args[:2])}", timeout)

    def image_id(self, name: str) -> str | None:
        try:
            return self.buildah("inspect", "--type", "image", "--format", "{{.FromImageID}}",
                                name, timeout=60).strip() or None
        except StoreError:
            return None

    def images(self) -> list[dict]:
        """Every image, intermediate ones too: {"id": full ID, "names": [...]}."""
        listed = json.loads(self.buildah("images", "--all", "--no-trunc", "--json", timeout=60) or "[]")
        return [{"id": image["id"].removeprefix("sha256:"), "names": image.get("names") or []}
                for image in listed]


@contextlib.contextmanager
def locked(log: Log, lock: Path = LOCK) -> Iterator[None]:
    """The store to this run alone: an exclusive flock on `lock` while the block runs
    (waiting, with a line said, while another run holds it). The kernel drops the lock
    when the process dies, so a killed run leaves none behind."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another run's lock on {lock}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def overlay_works(where: Path) -> bool:
    """Whether the kernel mounts overlayfs over this filesystem (not in every container or VM)."""
    where.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=where, prefix=".overlay-probe-") as probe:
        dirs = {name: Path(probe) / name for name in ("lower", "upper", "work", "merged")}
        for path in dirs.values():
            path.mkdir()
        options = f"lowerdir={dirs['lower']},upperdir={dirs['upper']},workdir={dirs['work']}"
        try:
            mounted = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(dirs["merged"])],
                                     capture_output=True, timeout=30).returncode == 0
        except subprocess.TimeoutExpired:
            return False
        if mounted:
            subprocess.run(["umount", str(dirs["merged"])], capture_output=True, timeout=30)
        return mounted


def prune(store: Store, build_log: str, keep: Iterable[str]) -> list[str]:
    """Remove every image neither named in keep nor made or reused by this build (its log).

    The layer cache stays as long as the last build's steps, and no longer: each source change
    would otherwise leave a new bundle layer behind for good. Returns the removed IDs.
    Call it under `locked()`: no other run is then building in the store. Working containers
    are not touched: the build's `--force-rm` and commit's `--rm` remove this run's own.
    """
    used = set(STEP_IMAGE.findall(build_log))
    kept = {store.image_id(name) for name in keep}
    stale = [image["id"] for image in store.images()
             if image["id"] not in kept and not any(image["id"].startswith(short) for short in used)]
    if stale:
        store.buildah("rmi", "--force", *stale, timeout=900)
    return stale


# -- the base images -----------------------------------------------------------------------

@dataclass(frozen=True)
class BaseImage:
    name: str  # as the Dockerfile's FROM resolves it
    key: str  # of the inputs
    make: Callable[[Path, Log], tuple[str, ...]]  # fills a rootfs, returns `buildah config` args

    @property
    def keyed(self) -> str:
        short = self.name.rsplit("/", 1)[-1].split(":")[0]
        return f"{CACHE_NAMESPACE}/{short}:{self.key}"


def _key(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def extra_cas() -> list[Path]:
    """The host's local CA certificates (an intercepting proxy's), which the build needs too."""
    return sorted(HOST_CAS.glob("*.crt")) if HOST_CAS.is_dir() else []


def make_debian(rootfs: Path, log: Log) -> tuple[str, ...]:
    log(f"base images: debootstrap --variant=minbase {SUITE} from {MIRROR} (about 30 s)")
    _run(["debootstrap", "--variant=minbase", SUITE, str(rootfs), MIRROR], "debootstrap", 900)
    (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
    (rootfs / "etc/apt/sources.list.d/debian.sources").write_text(DEBIAN_SOURCES)
    policy = rootfs / "usr/sbin/policy-rc.d"
    policy.write_text(POLICY_RC_D)
    policy.chmod(0o755)
    cas = extra_cas()
    if cas:
        target = rootfs / HOST_CAS.relative_to("/")
        target.mkdir(parents=True, exist_ok=True)
        for ca in cas:
            shutil.copyfile(ca, target / ca.name)
    # As the official image: no package lists, caches or debs; /dev is the runtime's.
    leftovers = [*(rootfs / "var/lib/apt/lists").glob("*_*"), *(rootfs / "var/cache/apt").glob("*.bin"),
                 *(rootfs / "var/cache/apt/archives").glob("*.deb"), *(rootfs / "dev").iterdir()]
    for path in leftovers:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    trust = ("--env", f"PIP_CERT={SYSTEM_BUNDLE}") if cas else ()
    return ("--env", PATH_ENV, *trust, "--cmd", "bash")


def debian_key() -> str:
    version = _run(["debootstrap", "--version"], "debootstrap --version", 30).strip()
    cas = [ca.name.encode() + ca.read_bytes() for ca in extra_cas()]
    return _key(RECIPE, MIRROR, SUITE, "minbase", DEBIAN_SOURCES, POLICY_RC_D, version, *cas)


def applets() -> list[str]:
    return sorted(set(_run([str(HOST_BUSYBOX), "--list"], "busybox --list", 30).split()) - {"busybox"})


def make_busybox(rootfs: Path, log: Log) -> tuple[str, ...]:
    log(f"base images: busybox from {HOST_BUSYBOX} (busybox-static)")
    for name, mode in (("bin", 0o755), ("etc", 0o755), ("root", 0o700), ("home", 0o755),
                       ("tmp", 0o1777), ("var", 0o755)):
        (rootfs / name).mkdir()
        (rootfs / name).chmod(mode)
    binary = rootfs / "bin" / "busybox"
    shutil.copyfile(HOST_BUSYBOX, binary)
    binary.chmod(0o755)
    for applet in applets():
        os.link(binary, rootfs / "bin" / applet)
    (rootfs / "etc/passwd").write_text(PASSWD)
    (rootfs / "etc/group").write_text(GROUP)
    return ("--env", PATH_ENV, "--cmd", "sh")


def busybox_key() -> str:
    return _key(RECIPE, HOST_BUSYBOX.read_bytes(), " ".join(applets()), PASSWD, GROUP)


def commit(store: Store, rootfs: Path, name: str, config: tuple[str, ...]) -> None:
    """A one-layer image of rootfs (buildah has no `import`: from scratch, copy in, commit)."""
    container = store.buildah("from", "scratch").strip()
    try:
        mount = store.buildah("mount", container).strip()
        # tar keeps owners, modes, hard links and device nodes, as a layer must.
        _run(["sh", "-c", 'tar -C "$1" -cf - . | tar -C "$2" -xpf -', "copy", str(rootfs), mount],
             "copying the rootfs", 600)
        store.buildah("config", "--os", "linux", "--arch", "amd64", *config, container)
        store.buildah("commit", "--quiet", "--rm", container, name)
    except BaseException:
        subprocess.run(["buildah", *store.options(), "rm", container], capture_output=True, timeout=120)
        raise


def ensure(store: Store, base: BaseImage, log: Log) -> str:
    """The image's ID; made (and the names of stale keys dropped) only when its key is new."""
    cached = store.image_id(base.keyed)
    if cached:
        if store.image_id(base.name) != cached:
            store.buildah("tag", base.keyed, base.name)
        return cached
    work = store.root.parent / "work"
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work) as scratch:
        rootfs = Path(scratch) / "rootfs"
        rootfs.mkdir()
        commit(store, rootfs, base.name, base.make(rootfs, log))
    store.buildah("tag", base.name, base.keyed)
    family = base.keyed.rsplit(":", 1)[0] + ":"
    stale = [name for image in store.images() for name in image["names"]
             if name.startswith(family) and name != base.keyed]
    if stale:
        store.buildah("rmi", *stale)
    return store.image_id(base.name) or ""


def bases() -> list[BaseImage]:
    return [BaseImage(DEBIAN, debian_key(), make_debian), BaseImage(BUSYBOX, busybox_key(), make_busybox)]


def ensure_bases(store: Store, log: Log) -> list[str]:
    """debian:12 and busybox:1.36.1 in the store (made if missing or stale); their names."""
    made = bases()
    for base in made:
        ensure(store, base, log)
    return [name for base in made for name in (base.name, base.keyed)]
