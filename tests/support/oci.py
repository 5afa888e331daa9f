"""Pulling an image by hand over the registry API v2 and unpacking it: a puller that is not the pusher.

`pull` answers the registry's challenge (Basic, or Bearer through its token realm, with the
credentials given), reads the manifest (an index resolved to linux/amd64), then the config and
each layer blob, checking every digest: the blobs' against the manifest, the uncompressed
layers' against the config's `rootfs.diff_ids`. The credentials go to the registry's host
only: a redirect elsewhere (a storage backend) is followed without them.

`unpack` applies the layers in order as a container runtime does: a `.wh.NAME` entry deletes
NAME from the layers below, `.wh..wh..opq` empties its directory of what they put there;
owners, modes (less setuid and setgid) and hard links are kept. Nothing is written outside
the root: paths leaving it (absolute, `..`, through a symlink) are refused, an entry replaces
a symlink in its place rather than following it, a hard link to a symlink or out of the root
is refused, and so are device nodes (tarfile's "tar" filter, less its go-w and sticky bit
clearing).
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import re
import shutil
import stat
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")
MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json")
ACCEPT = ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
TIMEOUT = 60


class PullError(Exception):
    pass


@dataclass
class Pulled:
    digest: str  # of the manifest
    manifest: dict
    config: dict
    layers: list[Path]  # blobs, bottom first

    @property
    def compressed_size(self) -> int:
        return sum(int(layer["size"]) for layer in self.manifest["layers"])


class _Redirect(urllib.request.HTTPRedirectHandler):
    """Redirects followed, but the Authorization header only to the same scheme, host and port."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(newurl) != _origin(req.full_url):
            new.remove_header("Authorization")
        return new


def _origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


OPENER = urllib.request.build_opener(_Redirect)


class Session:
    """One repository on one registry, authorised as the registry's challenge asks."""

    def __init__(self, base: str, repo: str, user: str | None = None, password: str | None = None):
        self.base, self.repo = base.rstrip("/"), repo
        self.basic = base64.b64encode(f"{user}:{password}".encode()).decode() if user else None
        self.authorization: str | None = None

    def get(self, path: str, accept: str | None = None) -> tuple[bytes, dict]:
        for attempt in range(2):
            headers = {"Accept": accept} if accept else {}
            if self.authorization:
                headers["Authorization"] = self.authorization
            request = urllib.request.Request(f"{self.base}/v2/{self.repo}/{path}", headers=headers)
            try:
                with OPENER.open(request, timeout=TIMEOUT) as response:
                    return response.read(), dict(response.headers)
            except urllib.error.HTTPError as exc:
                if exc.code != 401 or attempt:
                    raise PullError(f"GET {path}: HTTP {exc.code}") from None
                self.authorization = self.answer(exc.headers.get("WWW-Authenticate", ""))
        raise AssertionError("unreachable")

    def answer(self, challenge: str) -> str:
        scheme, _, params = challenge.partition(" ")
        if not self.basic:
            raise PullError(f"the registry asks for credentials ({scheme}) and none were given")
        if scheme.lower() == "basic":
            return f"Basic {self.basic}"
        if scheme.lower() != "bearer":
            raise PullError(f"unknown auth challenge {challenge!r}")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        query = {"service": fields.get("service", ""), "scope": f"repository:{self.repo}:pull"}
        request = urllib.request.Request(f"{fields['realm']}?{urllib.parse.urlencode(query)}",
                                         headers={"Authorization": f"Basic {self.basic}"})
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            answer = json.loads(response.read())
        return f"Bearer {answer.get('token') or answer['access_token']}"

    def blob(self, digest: str) -> bytes:
        data, _ = self.get(f"blobs/{digest}")
        return verified(data, digest)


def verified(data: bytes, digest: str) -> bytes:
    algorithm, _, expected = digest.partition(":")
    if algorithm != "sha256" or hashlib.sha256(data).hexdigest() != expected:
        raise PullError(f"content does not match its digest {digest}")
    return data


def uncompressed(data: bytes, media_type: str) -> bytes:
    if media_type.endswith(("+gzip", ".gzip")):
        return gzip.decompress(data)
    if media_type.endswith((".tar", "layer.v1.tar")):
        return data
    raise PullError(f"layer media type {media_type!r} is not read here (gzip or plain tar)")


def check_diff_ids(manifest: dict, config: dict, layers: list[Path]) -> None:
    """Each uncompressed layer against the config's rootfs.diff_ids, in order."""
    diff_ids = (config.get("rootfs") or {}).get("diff_ids")
    if not isinstance(diff_ids, list) or len(diff_ids) != len(layers):
        raise PullError(f"the config's rootfs.diff_ids name {len(diff_ids or [])} layers, "
                        f"the manifest {len(layers)}")
    for index, (layer, path, diff_id) in enumerate(zip(manifest["layers"], layers, diff_ids)):
        digest = "sha256:" + hashlib.sha256(uncompressed(path.read_bytes(), layer.get("mediaType", ""))).hexdigest()
        if digest != diff_id:
            raise PullError(f"layer {index}: uncompressed it is {digest}, the config's diff_id is {diff_id}")


def pull(base: str, repo: str, reference: str, into: Path, user: str | None = None,
         password: str | None = None) -> Pulled:
    session = Session(base, repo, user, password)
    body, headers = session.get(f"manifests/{reference}", ACCEPT)
    told = {name.lower(): value for name, value in headers.items()}.get("docker-content-digest")
    if told:
        verified(body, told)
    manifest = json.loads(body)
    if manifest.get("mediaType") in INDEX_TYPES or "manifests" in manifest:
        entry = next((m for m in manifest["manifests"]
                      if m.get("platform", {}).get("architecture") == "amd64"
                      and m.get("platform", {}).get("os") == "linux"), None)
        if entry is None:
            raise PullError("the index has no linux/amd64 image")
        body = verified(session.get(f"manifests/{entry['digest']}", ACCEPT)[0], entry["digest"])
        manifest = json.loads(body)
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    config = json.loads(session.blob(manifest["config"]["digest"]))
    into.mkdir(parents=True, exist_ok=True)
    layers = []
    for index, layer in enumerate(manifest["layers"]):
        path = into / f"layer-{index}"
        path.write_bytes(session.blob(layer["digest"]))
        layers.append(path)
    check_diff_ids(manifest, config, layers)
    return Pulled(digest, manifest, config, layers)


# -- unpacking -----------------------------------------------------------------------------

def _relative(name: str) -> Path:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts:
        raise PullError(f"layer entry {name!r} leaves the root")
    return Path(*parts) if parts else Path(".")


def _inside(root: Path, relative: Path) -> Path:
    """root/relative, refusing a parent that is a symlink (a path out of the root)."""
    current = root
    for part in relative.parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise PullError(f"layer entry {relative} goes through the symlink {current.relative_to(root)}")
    return root / relative


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """tarfile's "tar" filter, keeping go-w and the sticky bit (/tmp is 1777) but not setuid/setgid."""
    if member.ischr() or member.isblk():
        raise PullError(f"layer entry {member.name!r} is a device node")
    dest = os.path.realpath(dest)
    if os.path.commonpath([os.path.realpath(os.path.join(dest, member.name)), dest]) != dest:
        raise PullError(f"layer entry {member.name!r} leaves the root")
    if member.mode is not None and member.mode & (stat.S_ISUID | stat.S_ISGID):
        return member.replace(mode=member.mode & ~(stat.S_ISUID | stat.S_ISGID), deep=False)
    return member


def unpack_layer(layer: Path, root: Path) -> None:
    with tarfile.open(layer, "r:*") as tar:
        members = tar.getmembers()
        # Whiteouts delete what the layers below put there, before this layer's own files land.
        for member in members:
            relative = _relative(member.name)
            if not relative.name.startswith(WHITEOUT):
                continue
            target = _inside(root, relative)
            if relative.name == OPAQUE:
                for child in list(target.parent.iterdir()) if target.parent.is_dir() else []:
                    _remove(child)
            elif relative.name.startswith(WHITEOUT):
                _remove(target.parent / relative.name[len(WHITEOUT):])
        for member in members:
            relative = _relative(member.name)
            if relative.name.startswith(WHITEOUT):
                continue
            target = _inside(root, relative)
            if member.islnk():
                member.linkname = str(_relative(member.linkname))
                source = _inside(root, Path(member.linkname))
                if source.is_symlink():  # os.link would link what it points to, anywhere
                    raise PullError(f"layer entry {relative}: a hard link to the symlink {member.linkname}")
                if not os.path.realpath(source).startswith(os.path.realpath(root) + os.sep):
                    raise PullError(f"layer entry {relative}: a hard link out of the root")
            # A symlink in the entry's place is replaced, never followed (mkdir, chmod, open do).
            if not member.isdir() or target.is_symlink() or (target.exists() and not target.is_dir()):
                _remove(target)
            member.name = str(relative)
            tar.extract(member, root, set_attrs=True, numeric_owner=True, filter=_filter)


def unpack(pulled: Pulled, root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    for layer in pulled.layers:
        unpack_layer(layer, root)
    return root
