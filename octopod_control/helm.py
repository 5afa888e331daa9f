"""helm, driven by argv: version detection, upgrade --install, history, rollback, uninstall.

Works with helm 3 and helm 4; the major version is found once per binary
(cached under the user cache dir, keyed by the binary's path, size and mtime).
"""
from __future__ import annotations

import functools
import json
import os
import re
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

from . import log, process
from .errors import ExternalError

# helm's API client has no request timeout of its own: the whole helm process is
# bounded by its --timeout plus this much (at most a minute) for rendering and API calls.
GRACE = 60


def process_timeout(timeout: float) -> float:
    return timeout + min(GRACE, max(timeout, 5))


PENDING_ERROR = "another operation (install/upgrade/rollback) is in progress"
CLIENT_SIDE_APPLY_ERROR = "forceConflicts enabled when serverSideApply disabled"
_VERSION = re.compile(r"v?(\d+)\.(\d+)")
# helm's word for a chart or version its cached repository index lacks (or a missing index).
STALE_INDEX = "(try 'helm repo update')"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "octopod-control"


@dataclass
class Helm:
    binary: str
    env: Mapping[str, str]
    timeout: float  # helm's own --timeout, seconds
    secrets: list[str] = field(default_factory=list)
    insecure: str = "false"  # REGISTRY_INSECURE: which oci:// registries get --plain-http
    _major: int | None = None
    _refreshed: set[str] = field(default_factory=set)  # repositories refreshed in this run

    def _run(self, args: list[str], *, echo: bool = False, stdin: str | None = None,
             timeout: float | None = None, stop: threading.Event | None = None) -> process.Result:
        return process.run([self.binary, *args], env=self.env, stdin=stdin, echo=echo,
                           secrets=self.secrets, merge_stderr=echo,
                           timeout=timeout or process_timeout(self.timeout), stop=stop)

    # -- version
    @property
    def major(self) -> int:
        if self._major is None:
            self._major = self._cached_major()
        return self._major

    def _cached_major(self) -> int:
        path = _resolve(self.binary, self.env)
        try:
            st = os.stat(path)
            key = f"{path}\0{st.st_size}\0{st.st_mtime_ns}"
        except OSError:
            raise ExternalError(f"helm: {self.binary} not found (set HELM_BIN)") from None
        entry = cache_dir() / "helm-major"
        try:
            cached_key, cached = entry.read_text().rsplit("\n", 1)
            if cached_key == key and cached in ("3", "4"):
                return int(cached)
        except (OSError, ValueError):
            pass
        result = self._run(["version", "--template", "{{.Version}}"], timeout=30)
        match = _VERSION.match(result.output.strip())
        if not result.ok or not match:
            raise ExternalError(f"helm version: could not read the version of {self.binary}")
        major = int(match.group(1))
        if major not in (3, 4):
            raise ExternalError(f"helm {result.output.strip()} is not supported (need helm 3 or 4)")
        _write_atomic(entry, f"{key}\n{major}")
        return major

    def wait_flags(self, wait: bool) -> list[str]:
        if not wait:
            return []
        return ["--wait=watcher"] if self.major >= 4 else ["--wait"]

    # -- operations
    def upgrade_install(self, release: str, chart: str, namespace: str, *, values: str,
                        labels: Mapping[str, str], values_files: Iterable[str] = (),
                        version: str = "", wait: bool = True,
                        stop: threading.Event | None = None) -> process.Result:
        """helm upgrade --install, the release marked with `labels`; on helm 4, taking back
        fields other managers changed. Never --take-ownership: helm keeps refusing objects
        that another release (or no release) owns. Setting `stop` (create's rollout follow,
        failing fast) ends helm as a timeout would: SIGTERM, on which helm marks the release
        failed; the Result says `stopped`."""
        run = functools.partial(self._upgrade_install, release, chart, namespace, values=values,
                                labels=labels, values_files=list(values_files), version=version,
                                wait=wait, stop=stop)
        if self.major < 4:
            return run(force_conflicts=False)
        # helm 4 applies server-side: a field another manager touched (archive's replica
        # patch, a hand `kubectl scale`) would fail the upgrade, and Octopod sends the
        # complete desired state. A release helm 3 installed keeps client-side apply
        # (helm's "auto"), where --force-conflicts is refused and not needed.
        result = run(force_conflicts=True)
        if not result.ok and not result.stopped and CLIENT_SIDE_APPLY_ERROR in result.output:
            log.info(f"release {release} uses client-side apply (installed by helm 3); "
                     "upgrading without --force-conflicts")
            result = run(force_conflicts=False)
        return result

    def _upgrade_install(self, release: str, chart: str, namespace: str, *, values: str,
                         labels: Mapping[str, str], values_files: list[str], version: str,
                         wait: bool, force_conflicts: bool,
                         stop: threading.Event | None = None) -> process.Result:
        args = ["upgrade", "--install", release, chart, "--namespace", namespace,
                "--reset-values", "--hide-notes", "--timeout", f"{int(self.timeout)}s"]
        if labels:
            args += ["--labels", ",".join(f"{k}={v}" for k, v in sorted(labels.items()))]
        if version:
            args += ["--version", version]
        args += self.plain_http(chart)
        args += self.wait_flags(wait)
        if force_conflicts:
            args.append("--force-conflicts")
        for path in values_files:
            args += ["--values", path]
        args += ["--values", "-"]  # ours last: the overrides win
        return self._run(args, echo=True, stdin=values, stop=stop)

    def history(self, release: str, namespace: str) -> list[dict]:
        """Revisions of a release, oldest first; [] when there is none."""
        result = self._run(["history", release, "--namespace", namespace, "--max", "256",
                            "--output", "json"], timeout=self._api_timeout())
        if not result.ok:
            if "not found" in result.errors:
                return []
            raise ExternalError(f"helm history: {process.last_line(result.errors)}")
        try:
            return json.loads(result.output or "[]")
        except ValueError:
            raise ExternalError("helm history: unreadable output") from None

    def rollback(self, release: str, namespace: str, revision: int) -> process.Result:
        return self._run(["rollback", release, str(revision), "--namespace", namespace,
                          "--timeout", f"{int(self.timeout)}s"], echo=True)

    def uninstall(self, release: str, namespace: str, *, keep_history: bool = False) -> process.Result:
        """helm uninstall; with keep_history the marked release record stays (status
        uninstalled), so what was the staging's is still known to be ours afterwards."""
        args = ["uninstall", release, "--namespace", namespace, "--timeout", f"{int(self.timeout)}s"]
        return self._run(args + (["--keep-history"] if keep_history else []), echo=True)

    # -- chart repositories (init)
    def repo_add(self, name: str, url: str, *, username: str = "", password: str = "",
                 timeout: float = 120) -> process.Result:
        """Add (or replace) a chart repository; the password goes on stdin, never in argv."""
        args = ["repo", "add", name, url, "--force-update"]
        if username:
            args += ["--username", username, "--password-stdin"]
        return self._run(args, echo=True, stdin=password if username else None, timeout=timeout)

    def repo_update(self, *names: str, timeout: float = 120) -> process.Result:
        """Refresh the named repositories' indexes (every one's without names); a failed
        download is a failure on helm 3 too."""
        args = ["repo", "update", *names] + (["--fail-on-repo-update-fail"] if self.major == 3 else [])
        return self._run(args, echo=True, timeout=timeout)

    def with_fresh_index(self, chart: str, version: str, run: Callable[[], process.Result], *,
                         timeout: float) -> process.Result:
        """run(); when helm says a `repo/chart` (or its version) is missing from the cached index
        of its repository (published after `init`, say), refresh that one repository, once a
        run, and run() again. Still missing: one line naming the chart and the version."""
        result = run()
        repo = repository_of(chart)
        if result.ok or repo is None or STALE_INDEX not in result.output:
            return result
        wanted = f"{chart} version {version}" if version else chart
        if repo not in self._refreshed:
            self._refreshed.add(repo)
            log.info(f"{wanted}: not in the cached index of repository {repo}; refreshing that "
                     "repository once")
            if not self.repo_update(repo, timeout=timeout).ok:
                raise ExternalError(f"helm repo update {repo}: failed (helm's output is above)")
            result = run()
            if result.ok or STALE_INDEX not in result.output:
                return result
        raise ExternalError(f"{wanted}: not found in repository {repo}, even with its index "
                            "refreshed just now")

    # -- OCI registries
    def plain_http(self, reference: str) -> list[str]:
        """`--plain-http` for an `oci://` reference whose registry REGISTRY_INSECURE lists (or
        every registry, when it is true); nothing otherwise."""
        host = oci_host(reference)
        return ["--plain-http"] if host and insecure_registry(host, self.insecure) else []

    def registry_login(self, host: str, username: str, password: str, *,
                       timeout: float = 120) -> process.Result:
        """helm registry login, the password on stdin (never in argv); helm keeps the
        credentials in its own registry config (~/.config/helm/registry/config.json)."""
        args = ["registry", "login", host, "--username", username, "--password-stdin",
                *self.plain_http(f"oci://{host}")]
        return self._run(args, echo=True, stdin=password, timeout=timeout)

    def _api_timeout(self) -> float:
        return min(process_timeout(self.timeout), 120)


def repository_of(chart: str) -> str | None:
    """The repository of a `repo/chart` reference; None for a path, a URL or `oci://`."""
    head, sep, tail = chart.partition("/")
    if not sep or not head or not tail or "://" in chart or chart.startswith((".", "~")):
        return None
    return head


def oci_host(reference: str) -> str | None:
    """The registry (host[:port]) of an `oci://` reference; None for anything else."""
    if not reference.startswith("oci://"):
        return None
    return reference[len("oci://"):].split("/", 1)[0] or None


def insecure_registry(host: str, insecure: str) -> bool:
    """REGISTRY_INSECURE as tag_check reads it: true (every registry), false, or hosts
    (`host` or `host:port`, comma-separated)."""
    from .settings import FALSE_WORDS, TRUE_WORDS

    value = insecure.strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    listed = {h.strip() for h in value.split(",") if h.strip()}
    return host.lower() in listed or host.lower().rsplit(":", 1)[0] in listed


def _resolve(binary: str, env: Mapping[str, str]) -> str:
    if os.sep in binary:
        return os.path.realpath(binary)
    import shutil

    found = shutil.which(binary, path=env.get("PATH", os.defpath))
    return os.path.realpath(found) if found else binary


def _write_atomic(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError:
        pass  # a cache we cannot write only costs a `helm version` next time
