"""helm's release record, read straight from the API (no helm process).

helm 3/4 store each revision as a Secret (default driver) or a ConfigMap
labelled owner=helm,name=<release>,version=<n>,status=<status>. Its
`release` field is base64 of gzipped JSON (a Secret base64-encodes that once
more). The current revision is the highest version; superseded revisions are
never it, so the API is asked to leave them out (a smaller answer).
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


def _version(item: dict) -> int:
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


def storage_items(client: KubeClient, namespace: str, release: str, driver: str) -> list[dict]:
    """The storage objects of the release's revisions that are not superseded (one LIST):
    the newest, the last deployed, and any failed, pending or uninstalled one."""
    selector = f"owner=helm,name={release},status!=superseded"
    return client.list(PATHS[storage_kind(driver)].format(ns=namespace), label_selector=selector)


def newest_item(items: list[dict]) -> dict | None:
    """The storage object of the highest revision (its labels carry the ownership mark)."""
    return max(items, key=_version) if items else None


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
    newest = max(items, key=_version)
    record = decode(newest, driver)
    status = (record.get("info") or {}).get("status")
    if status in GONE:
        return None, None
    if status == "deployed":
        return record, record
    deployed = [i for i in items if ((i.get("metadata") or {}).get("labels") or {}).get("status") == "deployed"]
    return record, (decode(max(deployed, key=_version), driver) if deployed else None)


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


# -- the rendered manifest: which workloads the release has, without a YAML parser
_DOC_SPLIT = re.compile(r"^---[ \t]*$", re.M)
_KIND = re.compile(r"^kind:[ \t]*['\"]?([A-Za-z]+)", re.M)
_METADATA = re.compile(r"^metadata:[ \t]*\n((?:[ \t]+.*\n?|[ \t]*\n)*)", re.M)


def _child(block: str, key: str) -> str | None:
    """A direct child scalar of a YAML block (the first line's indentation is the child level)."""
    lines = [l for l in block.splitlines() if l.strip() and not l.lstrip().startswith("#")]
    if not lines:
        return None
    indent = len(lines[0]) - len(lines[0].lstrip())
    for line in lines:
        if len(line) - len(line.lstrip()) == indent and line.lstrip().startswith(f"{key}:"):
            return line.split(":", 1)[1].strip().strip("'\"") or None
    return None


def manifest_objects(manifest: str) -> list[tuple[str, str | None, str | None]]:
    """(kind, name, namespace) of each document of a rendered manifest; name/namespace None if unread."""
    found = []
    for doc in _DOC_SPLIT.split(manifest or ""):
        kind = _KIND.search(doc)
        if not kind:
            continue
        meta = _METADATA.search(doc)
        block = meta.group(1) if meta else ""
        found.append((kind.group(1), _child(block, "name"), _child(block, "namespace")))
    return found


# -- the rendered manifest parsed in full (restore and cleanup, which are not start-time bound)
def rendered_specs(record: dict | None) -> dict[tuple[str, str], dict] | None:
    """(kind, name) -> spec as the release's manifest renders it; None when unreadable."""
    if not record or not record.get("manifest"):
        return None
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        docs = list(yaml.load_all(record["manifest"], Loader=loader))
    except yaml.YAMLError:
        return None
    return {(d.get("kind"), (d.get("metadata") or {}).get("name")): d.get("spec") or {}
            for d in docs if isinstance(d, dict)}


def claim_templates(record: dict | None) -> list[tuple[str, str]]:
    """(claim template, StatefulSet) pairs of the release: the controller names each volume
    `<template>-<statefulset>-<ordinal>`, and labels alone cannot prove a volume is ours."""
    pairs = []
    for (kind, name), spec in (rendered_specs(record) or {}).items():
        if kind != "StatefulSet" or not isinstance(spec, dict):
            continue
        for template in spec.get("volumeClaimTemplates") or []:
            claim = ((template or {}).get("metadata") or {}).get("name") if isinstance(template, dict) else None
            if claim and name:
                pairs.append((claim, name))
    return pairs
