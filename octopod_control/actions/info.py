"""info: `key,value` lines for Octopod, from INFO_URLS and the release's live Ingresses.

stdout carries nothing else, ever: Octopod drops the whole result on one line
without a comma. A missing release or an unreachable API still prints the
configured URLs (the Ingress part is logged as skipped).
"""
from __future__ import annotations

import string

from ..args import Deployment
from ..errors import ConfigError, ExternalError
from ..log import warn
from ..settings import Settings, render_template
from ..target import resolve_target


def configured_urls(settings: Settings, deployment: Deployment) -> list[tuple[str, str]]:
    """INFO_URLS rendered; one whose placeholder has no value (say, no base domain) is skipped."""
    fields = deployment.template_fields()
    pairs = []
    for item in settings.words("INFO_URLS"):
        key, sep, template = item.partition("=")
        if not sep or not key or "," in key:
            raise ConfigError(f"INFO_URLS: {item!r} is not key=template (a key holds no comma)")
        url = render_template("INFO_URLS", template, fields)
        empty = [f for _, f, _, _ in string.Formatter().parse(template) if f and not fields.get(f)]
        if empty:
            warn(f"info: {key} skipped: {{{empty[0]}}} has no value")
            continue
        pairs.append((key, url))
    return pairs


def ingress_urls(ingresses: list[dict]) -> list[tuple[str, str]]:
    """One URL per Ingress host, https where a TLS entry covers the host."""
    pairs = []
    for ingress in ingresses:
        name = ingress["metadata"]["name"].replace(",", "-")
        spec = ingress.get("spec") or {}
        tls_hosts = {h for entry in spec.get("tls") or [] for h in entry.get("hosts") or []}
        for rule in spec.get("rules") or []:
            host = rule.get("host")
            if host:
                scheme = "https" if host in tls_hosts else "http"
                pairs.append((name, f"{scheme}://{host}"))
    return pairs


def release_ingresses(settings: Settings, deployment: Deployment) -> list[dict]:
    from ..kube import client_for
    from ..workloads import release_objects

    target = resolve_target(settings, deployment)
    client = client_for(settings)
    try:
        return release_objects(client, target.namespace, target.release, "Ingress")
    finally:
        client.close()


def info_lines(settings: Settings, deployment: Deployment) -> list[str]:
    pairs = configured_urls(settings, deployment)
    if settings.flag("INFO_INGRESS"):
        try:
            pairs += ingress_urls(release_ingresses(settings, deployment))
        except (ExternalError, ConfigError) as exc:
            warn(f"info: Ingress hosts skipped: {exc}")
    seen: set[str] = set()
    lines = []
    for key, url in pairs:
        if url and url not in seen:
            seen.add(url)
            lines.append(f"{key.strip()},{url}")
    return lines
