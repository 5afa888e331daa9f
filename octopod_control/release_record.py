"""helm's release record, read straight from the API (no helm process).

helm 3/4 store each revision as a Secret (default driver) or a ConfigMap
labelled owner=helm,name=<release>,version=<n>,status=<status>. Its
`release` field is base64 of gzipped JSON (a Secret base64-encodes that once
more). The current revision is the highest version; superseded revisions are
never it, so the API is asked to leave them out (a smaller answer). The rendered
manifest a record holds (`record["manifest"]`) is read by manifest.py.
"""
from __future__ import annotations

import base64
import json
import re
import zlib
from typing import TYPE_CHECKING, Any

from .errors import ExternalError
from .kube import KubeClient
from .workloads import PATHS

if TYPE_CHECKING:
    from .target import Target

GONE = ("uninstalled", "uninstalling")  # helm uninstall --keep-history leaves these
_GZIP = b"\x1f\x8b\x08"
_VERSION_SUFFIX = re.compile(r"\.v(\d+)$")


def revision(item: dict) -> int:
    """The revision number of a storage object (its version label, else its name's .vN)."""
    meta = item.get("metadata") or {}
    label = (meta.get("labels") or {}).get("version", "")
    if label.isdigit():
        return int(label)
    match = _VERSION_SUFFIX.search(meta.get("name", ""))
    return int(match.group(1)) if match else 0


# A release record (chart, values, rendered manifest) is a few MiB at most, and its encoded
# form is bounded by the API response; gzip can inflate that a thousandfold. Whoever can write
# Secrets in the namespace could plant such a bomb; past this it is refused, not read.
MAX_RECORD = 64 * 1024 * 1024


def decode(item: dict, driver: str) -> dict:
    """The release JSON of one storage object; one decompressing past MAX_RECORD is refused."""
    raw = (item.get("data") or {}).get("release") or ""
    name = (item.get("metadata") or {}).get("name", "?")
    try:
        data = base64.b64decode(raw)
        if driver == "secret":  # Secret data is base64 on the wire, over helm's own base64
            data = base64.b64decode(data)
        if data[:3] == _GZIP:
            # zlib, not gzip: one module fewer to import. At most one byte past the limit is made.
            inflater = zlib.decompressobj(31)
            data = inflater.decompress(data, MAX_RECORD + 1)
            if len(data) > MAX_RECORD:
                raise ExternalError(f"helm release record {name}: decompresses to more than "
                                    f"{MAX_RECORD // 1048576} MiB; refused (a decompression bomb?)")
            if not inflater.eof:
                raise ValueError("incomplete or truncated gzip stream")
        return json.loads(data)
    except (ValueError, zlib.error) as exc:
        raise ExternalError(f"helm release record {name}: cannot decode it ({exc})") from None


def current_release(client: KubeClient, namespace: str, release: str, driver: str) -> dict | None:
    """The highest revision of the release (one LIST), or None when there is none live."""
    return current_and_deployed(client, namespace, release, driver)[0]


def is_installed(client: KubeClient, target: "Target", driver: str) -> bool:
    """Whether the release has a live revision (archive and cleanup ask before acting)."""
    return current_release(client, target.namespace, target.release, driver) is not None


def storage_kind(driver: str) -> str:
    return "ConfigMap" if driver == "configmap" else "Secret"


def storage_items(client: KubeClient, namespace: str, release: str, driver: str,
                  *, superseded: bool = False) -> list[dict]:
    """The storage objects of the release's revisions (one LIST): by default those not
    superseded (the newest, the last deployed, any failed, pending or uninstalled one).

    Labels alone do not make a record (a chart could label a Secret owner=helm): the name
    must be helm's `sh.helm.release.v1.<release>.v<N>` and a Secret of helm's type.
    """
    kind = storage_kind(driver)
    selector = f"owner=helm,name={release}" + ("" if superseded else ",status!=superseded")
    items = client.list(PATHS[kind].format(ns=namespace), label_selector=selector)
    return [item for item in items if _is_record(item, release, kind)]


def _is_record(item: dict, release: str, kind: str) -> bool:
    name = (item.get("metadata") or {}).get("name") or ""
    prefix = f"sh.helm.release.v1.{release}.v"
    if not (name.startswith(prefix) and name[len(prefix):].isdigit()):
        return False
    return kind != "Secret" or item.get("type") == "helm.sh/release.v1"


def newest_item(items: list[dict]) -> dict | None:
    """The storage object of the highest revision (its labels carry the ownership mark)."""
    return max(items, key=revision) if items else None


def is_gone(record: dict) -> bool:
    """An uninstalled revision kept by `helm uninstall --keep-history`: nothing runs."""
    return (record.get("info") or {}).get("status") in GONE


def current_and_deployed(client: KubeClient, namespace: str, release: str,
                         driver: str, items: list[dict] | None = None) -> tuple[dict | None, dict | None]:
    """(the highest revision, the highest one helm marked deployed), from the same one LIST.

    They differ after a failed or interrupted upgrade: helm records the new revision as
    `failed` (or leaves it `pending-*`) and the previous one stays `deployed`. Only the
    latter is known to run; it is decoded only when it is not the highest.
    """
    if items is None:
        items = storage_items(client, namespace, release, driver)
    if not items:
        return None, None
    newest = max(items, key=revision)
    record = decode(newest, driver)
    status = (record.get("info") or {}).get("status")
    if status in GONE:
        return None, None
    if status == "deployed":
        return record, record
    deployed = [i for i in items if ((i.get("metadata") or {}).get("labels") or {}).get("status") == "deployed"]
    return record, (decode(max(deployed, key=revision), driver) if deployed else None)


def value_at(tree: Any, path: tuple[str, ...]) -> Any:
    for segment in path:
        if not isinstance(tree, dict) or segment not in tree:
            return None
        tree = tree[segment]
    return tree


def release_value(record: dict, path: tuple[str, ...]) -> Any:
    """A value as the chart sees it: user-supplied (config) over the chart's defaults."""
    found = value_at(record.get("config") or {}, path)
    if found is None:
        found = value_at((record.get("chart") or {}).get("values") or {}, path)
    return found
