"""A release's rendered manifest (helm's `manifest` field: YAML documents), read at two levels.

1. `objects(text)`: (kind, name, namespace) of each document, scanned with regular
   expressions. check needs no more, and this keeps PyYAML (about 10 ms of imports
   with its C loader) off the path of a script Octopod runs for every staging every
   few seconds. Good enough for helm's rendered YAML: top-level `kind:` and
   `metadata:` keys, block style; a name or namespace it cannot read is None, and
   check then lists the whole kind rather than trust it.
2. `specs(text)`: (kind, name) -> spec, the documents parsed in full with PyYAML,
   imported on the first call. What restore asks (does the chart set `replicas`, a
   DaemonSet's `template.spec.nodeSelector`?) and cleanup asks (each StatefulSet's
   volumeClaimTemplates: `claim_templates`) is nested and list-valued: a scanner
   would have to become a YAML parser to answer it, and these runs are not start-time
   bound.

Both take the text as the record holds it (None or "" when there is none).
"""
from __future__ import annotations

import re

# -- level 1: kinds and names, without a YAML parser
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


def objects(text: str | None) -> list[tuple[str, str | None, str | None]]:
    """(kind, name, namespace) of each document; name/namespace None where unread."""
    found = []
    for doc in _DOC_SPLIT.split(text or ""):
        kind = _KIND.search(doc)
        if not kind:
            continue
        meta = _METADATA.search(doc)
        block = meta.group(1) if meta else ""
        found.append((kind.group(1), _child(block, "name"), _child(block, "namespace")))
    return found


# -- level 2: the documents parsed in full
def specs(text: str | None) -> dict[tuple[str, str], dict] | None:
    """(kind, name) -> spec as the manifest renders it; None when there is none or it is unreadable."""
    if not text:
        return None
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        docs = list(yaml.load_all(text, Loader=loader))
    except yaml.YAMLError:
        return None
    return {(d.get("kind"), (d.get("metadata") or {}).get("name")): d.get("spec") or {}
            for d in docs if isinstance(d, dict)}


def claim_templates(text: str | None) -> list[tuple[str, str]]:
    """(claim template, StatefulSet) pairs: the controller names each volume
    `<template>-<statefulset>-<ordinal>`, and labels alone cannot prove a volume is ours."""
    pairs = []
    for (kind, name), spec in (specs(text) or {}).items():
        if kind != "StatefulSet" or not isinstance(spec, dict):
            continue
        for template in spec.get("volumeClaimTemplates") or []:
            claim = ((template or {}).get("metadata") or {}).get("name") if isinstance(template, dict) else None
            if claim and name:
                pairs.append((claim, name))
    return pairs
