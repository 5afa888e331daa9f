"""create and update with HELM_WAIT=true: follow the rollout beside helm, fail fast, say why.

helm keeps its own --wait. Beside it, in a thread, `Follow` reads the release's workloads
once a second and judges them by their kinds' verdicts (kinds/: the rules check uses, one
set), their Pods linked as the controllers link them (a Deployment's through the
ReplicaSet of its current template). On stderr:

- progress (`Progress`): a line when a workload's state changes (kind/name, counts, the
  main reason), at most BURST a workload per PROGRESS_INTERVAL, and every
  PROGRESS_INTERVAL one line naming what is still not ready;
- fail fast (`FailFast`, FAIL_FAST=true): a failure that will not fix itself (a kind's
  `failure`: a Job's Failed condition, a Deployment's ReplicaFailure or
  ProgressDeadlineExceeded; a container stuck in pods.STUCK_REASONS for FAIL_FAST_GRACE
  seconds; a crash loop of FAIL_FAST_RESTARTS restarts) stops helm as a timeout would
  (SIGTERM to its process group: helm marks the release failed);
- a diagnosis (`Follow.diagnose`) when helm failed after it applied the new revision (fail
  fast, HELM_TIMEOUT, anything else): for each workload not ready, its verdict line, one or
  two of its failing Pods with each container's state, the latest Warning events of the
  Pod and of the workload (deduplicated), and the last LOG_TAIL_LINES lines of the failing
  container's log (the crashed instance's for a crash loop).

Everything printed goes through the run's Redactor (override values and secret settings,
in every form process.py knows), a log line included. Nothing goes to stdout.

API requests, all reads: one LIST of the release's records before helm starts (the
revision to wait past); then once a second, one LIST of the records until helm has written
the new revision (usually once or twice), one LIST per kind the release declares and, while
something is not ready, one LIST of the namespace's Pods (and of its ReplicaSets while a
not-ready Deployment's current one is not yet known). A release of Deployments waiting
five minutes: about 2 a second, some 600 in all. A diagnosis: the records, kinds, Pods and
ReplicaSets once (at most 7), then per workload shown one LIST of its Events, one of each
Pod shown, and at most MAX_LOGS log reads: at most 7 + 5 * MAX_WORKLOADS = 32.
"""
from __future__ import annotations

import re
import sys
import threading
import time
from typing import Any, Callable, Optional

from . import manifest
from .errors import OctopodError
from .kinds import Kind, Verdict
from .kinds.base import name_of, uid_of
from .kinds.pods import containers_in_trouble, pod_reasons, stuck, summarize
from .kube import KubeClient, client_for
from .log import warn
from .process import Redactor, Result
from .release_record import decode, revision, storage_items
from .settings import Settings
from .target import Target
from .workloads import PATHS, Declared, missing, release_workloads

EVENTS = "/api/v1/namespaces/{ns}/events"  # core/v1: what kubectl describe shows
POLL = 1.0  # seconds between two looks: at most one request a second per kind
BURST = 2  # state-change lines a workload may print per PROGRESS_INTERVAL; the rest wait for the summary
SUMMARY_NAMES = 4  # workloads named in a summary line
MAX_WORKLOADS = 5  # workloads diagnosed in detail
MAX_PODS = 2  # pods shown per workload
MAX_EVENTS = 3  # events shown per object
MAX_LOGS = 2  # containers whose log is read, of the first pod shown
MAX_LINE = 300  # characters of a log line or an event message
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f]")


class Rules:
    """The thresholds of one run, from the settings."""

    __slots__ = ("fail_fast", "grace", "restarts", "interval", "log_lines")

    def __init__(self, fail_fast: bool, grace: float, restarts: int, interval: float, log_lines: int) -> None:
        self.fail_fast, self.grace, self.restarts = fail_fast, grace, restarts
        self.interval, self.log_lines = interval, log_lines

    @classmethod
    def from_settings(cls, settings: Settings) -> "Rules":
        return cls(settings.flag("FAIL_FAST"), settings.seconds("FAIL_FAST_GRACE"),
                   settings.count("FAIL_FAST_RESTARTS"), settings.seconds("PROGRESS_INTERVAL"),
                   settings.count("LOG_TAIL_LINES"))


class Seen:
    """One workload at one look: its object, verdict, and (when not ready) its own Pods and their reasons."""

    __slots__ = ("kind", "obj", "verdict", "pods", "reasons")

    def __init__(self, kind: Kind, obj: dict, verdict: Verdict, pods: list | None = None) -> None:
        self.kind, self.obj, self.verdict = kind, obj, verdict
        self.pods: list[dict] = pods or []
        self.reasons: list[str] = []  # the pods' reasons (also added to the verdict's)

    @property
    def label(self) -> str:
        return f"{self.kind.name.lower()}/{name_of(self.obj)}"

    @property
    def main_reason(self) -> str:
        """What a person most needs to know: its pods' first reason, else the workload's own."""
        return (self.reasons or self.verdict.reasons or [""])[0]


class Reader:
    """Looks at the release's workloads: one LIST a declared kind, and the Pods (with the
    objects they are owned through, a Deployment's ReplicaSets) only when something is not
    ready. The owners are listed again only while a not-ready workload's own (its current
    ReplicaSet) is not among those read."""

    def __init__(self, client: KubeClient, target: Target) -> None:
        self.client, self.target = client, target
        self._owners: dict[str, list[dict]] = {}

    def _list(self, kind: str) -> list[dict]:
        return self.client.list(PATHS[kind].format(ns=self.target.namespace))

    def look(self, declared: Declared, fresh: bool = False) -> list[Seen]:
        seen = [Seen(kind, obj, kind.verdict(obj)) for kind, obj in release_workloads(self.client, self.target, declared)]
        waiting = [s for s in seen if not s.verdict.ready]
        if not waiting:
            return seen
        pods = self._list("Pod")
        listed: set[str] = set()  # owner kinds read in this look

        def owners(via: str, refresh: bool) -> list[dict]:
            if via not in listed and (refresh or via not in self._owners):
                self._owners[via] = self._list(via)
                listed.add(via)
            return self._owners[via]

        for s in waiting:
            via = s.kind.via
            found = s.kind.pods(s.obj, pods, owners(via, fresh) if via else None)
            if found is None and via:  # its current owner (a new ReplicaSet) is newer than the list
                found = s.kind.pods(s.obj, pods, owners(via, True))
            s.pods = found or []
            s.reasons = summarize(s.pods)
            s.verdict.reasons += s.reasons
        return seen


def _head(reason: str) -> str:
    """A reason without its details in parentheses (restart counts, images): what a change is."""
    return reason.split(" (", 1)[0]


def progress_line(seen: Seen) -> str:
    v = seen.verdict
    text = f"{seen.label}: {'ready' if v.ready else 'not ready'}" + (f", {v.counts}" if v.counts else "")
    return text if v.ready or not seen.main_reason else f"{text}: {seen.main_reason}"


class Progress:
    """What to print while waiting, a pure function of the looks and the clock.

    A line when a workload's state (ready or not, counts, main reason without its details)
    changes, but a workload already ready at the first look is not announced, and at most
    BURST lines a workload per interval (further changes show in the summary); and every
    interval, one summary line naming what is still not ready. So a wait of T seconds prints
    at most T/interval summaries and BURST * (1 + T/interval) lines a workload, however its
    pods flap: a five-minute wait with the default 10 s, tens of lines.
    """

    def __init__(self, interval: float, start: float) -> None:
        self.interval, self.start = interval, start
        self.next_summary = start + interval
        self._state: dict[str, tuple] = {}
        self._printed: dict[str, list[float]] = {}

    def observe(self, now: float, seen: list[Seen]) -> list[str]:
        lines = []
        for s in seen:
            key = (s.verdict.ready, s.verdict.counts, _head(s.main_reason))
            before = self._state.get(s.label)
            self._state[s.label] = key
            if key == before or (before is None and s.verdict.ready):
                continue
            recent = [t for t in self._printed.get(s.label, []) if now - t < self.interval]
            if len(recent) < BURST:
                recent.append(now)
                lines.append(progress_line(s))
            self._printed[s.label] = recent
        if now >= self.next_summary:
            while self.next_summary <= now:
                self.next_summary += self.interval
            waiting = [s for s in seen if not s.verdict.ready]
            if waiting:
                named = "; ".join(f"{s.label} {s.verdict.counts}" + (f" ({s.main_reason})" if s.main_reason else "")
                                  for s in waiting[:SUMMARY_NAMES])
                more = f"; and {len(waiting) - SUMMARY_NAMES} more" if len(waiting) > SUMMARY_NAMES else ""
                lines.append(f"still waiting after {int(now - self.start)}s: {named}{more}")
        return lines


class FailFast:
    """Whether the rollout has failed in a way that will not fix itself, a pure function of the
    looks and the clock: a kind's `failure` at once; a crash loop at `restarts` restarts at
    once; a container stuck (pods.stuck) for `grace` seconds of looks in a row."""

    def __init__(self, grace: float, restarts: int) -> None:
        self.grace, self.restarts = grace, restarts
        self._since: dict[tuple, float] = {}

    def observe(self, now: float, seen: list[Seen],
                fresh: Callable[[Seen], bool] = lambda s: True) -> Optional[str]:
        """`fresh` says whether a workload is the new revision's yet: until then what fails is
        the previous revision (an update fixing it must not be stopped by it)."""
        since: dict[tuple, float] = {}
        found = None
        for s in seen:
            if s.verdict.ready or not fresh(s):
                continue
            final = s.kind.failure(s.obj)
            if final:
                return f"{s.label}: {final}"
            for pod in s.pods:
                for state, text, at_once in stuck(pod, self.restarts):
                    if at_once:
                        return f"{s.label}: pod {name_of(pod)}: {text}"
                    key = (uid_of(pod) or name_of(pod), state)
                    first = since[key] = self._since.get(key, now)
                    if found is None and now - first >= self.grace:
                        found = f"{s.label}: pod {name_of(pod)}: {text}, for {int(now - first)}s"
        self._since = since
        return found


class Follow:
    """One rollout followed beside helm. `run(helm_call)` runs helm with a stop event the
    follower sets when failing fast; `diagnose()` after a failure says why.

    Reading the baseline (the newest revision before helm) is one LIST, before helm starts.
    """

    def __init__(self, settings: Settings, target: Target, secrets: list[str], rules: Rules) -> None:
        self.target, self.driver = target, settings.helm_driver
        self.rules = rules
        self.redact = Redactor(secrets)
        self.settings = settings
        self.client = client_for(settings)
        self.declared: Declared | None = None  # the new revision's workloads, once helm wrote it
        self.revision: int | None = None
        self.failure: str | None = None  # why it failed fast
        self.started = time.monotonic()
        self.stopped_after: float | None = None
        self.baseline = max((revision(i) for i in self._records(self.client)), default=0)
        self.before = self._generations() if rules.fail_fast else {}

    def _generations(self) -> dict[tuple[str, str], tuple[str, int]]:
        """(kind, name) -> (uid, generation) of the release's workloads before helm runs."""
        from .kinds import KINDS
        from .ownership import helm_made

        found = {}
        for kind in KINDS:
            for obj in self.client.list(kind.path.format(ns=self.target.namespace)):
                if helm_made(obj, self.target.release, self.target.namespace):
                    meta = obj.get("metadata") or {}
                    found[(kind.name, name_of(obj))] = (uid_of(obj), int(meta.get("generation") or 0))
        return found

    def fresh(self, seen: Seen) -> bool:
        """Whether a workload is the new revision's: made by it, or changed by it and observed
        by its controller. Before that, its Pods and conditions are the previous revision's."""
        meta, status = seen.obj.get("metadata") or {}, seen.obj.get("status") or {}
        before = self.before.get((seen.kind.name, name_of(seen.obj)))
        if before is None or before[0] != uid_of(seen.obj):
            return True
        generation = int(meta.get("generation") or 0)
        return generation > before[1] and int(status.get("observedGeneration") or 0) >= generation

    # -- output: stderr only, always redacted
    def _say(self, line: str) -> None:
        print(f"[octopod] {self.redact(line)}", file=sys.stderr, flush=True)

    def _records(self, client: KubeClient) -> list[dict]:
        return storage_items(client, self.target.namespace, self.target.release, self.driver)

    def _find_revision(self, client: KubeClient) -> None:
        """The revision helm is rolling out, once it has written it: its manifest says what to watch."""
        newer = [i for i in self._records(client) if revision(i) > self.baseline]
        if newer:
            item = max(newer, key=revision)
            self.declared = manifest.objects(decode(item, self.driver).get("manifest"))
            self.revision = revision(item)

    # -- following
    def run(self, helm_call: Callable[[threading.Event], Result]) -> Result:
        stop, done = threading.Event(), threading.Event()
        thread = threading.Thread(target=self._follow, args=(stop, done), name="rollout-follow", daemon=True)
        thread.start()
        try:
            return helm_call(stop)
        finally:
            done.set()
            thread.join(self.settings.kube_timeout + 2 * POLL)
            if not thread.is_alive():  # else it is stuck in a request, bounded by KUBE_TIMEOUT
                self.client.close()

    def _follow(self, stop: threading.Event, done: threading.Event) -> None:
        progress = Progress(self.rules.interval, self.started)
        fail_fast = FailFast(self.rules.grace, self.rules.restarts) if self.rules.fail_fast else None
        reader = Reader(self.client, self.target)
        warned: set[str] = set()
        while not done.is_set():
            tick = time.monotonic()
            try:
                if self.declared is None:
                    self._find_revision(self.client)
                if self.declared is not None:
                    seen = reader.look(self.declared)
                    for line in progress.observe(tick, seen):
                        self._say(line)
                    failure = fail_fast.observe(tick, seen, self.fresh) if fail_fast else None
                    if failure and not done.is_set():
                        failure = self.redact(failure)  # it ends in the error line too
                        self.failure, self.stopped_after = failure, tick - self.started
                        self._say(f"failing fast: {failure}: this will not fix itself (FAIL_FAST); "
                                  "stopping helm")
                        stop.set()
                        return
            except OctopodError as exc:  # the API failing: helm meets it too and says so
                if str(exc) not in warned:
                    warned.add(str(exc))
                    warn(f"following the rollout: {self.redact(str(exc))}")
            except Exception as exc:  # noqa: BLE001 - a bug here must not stop the deployment
                warn(f"following the rollout stopped: internal error: {type(exc).__name__}: "
                     f"{self.redact(str(exc))}")
                return
            done.wait(max(0.0, POLL - (time.monotonic() - tick)))

    # -- the diagnosis
    def diagnose(self) -> None:
        """After helm failed: why, for each workload of the new revision that is not ready.
        Nothing when helm failed before it wrote one. Never raises: a read that fails is one
        line saying so."""
        client = client_for(self.settings)  # its own: the follower's may still be in a request
        try:
            if self.declared is None:
                self._find_revision(client)
            if self.declared is None:
                return  # helm failed before applying anything: its own output says why
            diagnosis = Diagnosis(client, self.target, self.rules.log_lines, self.redact)
            for line in diagnosis.lines(self.declared, self.revision):
                print(self.redact(line), file=sys.stderr, flush=True)
        except OctopodError as exc:
            warn(f"diagnosis: {self.redact(str(exc))}")
        finally:
            client.close()


class Diagnosis:
    """Why a rollout failed, read once: the lines to print (not yet redacted, but for logs)."""

    def __init__(self, client: KubeClient, target: Target, log_lines: int, redact: Redactor) -> None:
        self.client, self.target, self.log_lines, self.redact = client, target, log_lines, redact

    def lines(self, declared: Declared, revision: int | None) -> list[str]:
        seen = Reader(self.client, self.target).look(declared, fresh=True)
        absent = missing(declared, {(s.kind.name, name_of(s.obj)) for s in seen}, self.target.namespace)
        bad = [s for s in seen if not s.verdict.ready]
        what = f"{self.target.release} (revision {revision})"
        if not bad and not absent:
            return [f"[octopod] diagnosis of {what}: every workload is ready; helm failed for "
                    "another reason (its output is above)"]
        lines = [f"[octopod] diagnosis of {what}: {len(bad) + len(absent)} of "
                 f"{len(seen) + len(absent)} workloads not ready"]
        lines += [v.line() for v in absent]
        for s in bad[:MAX_WORKLOADS]:
            lines.append(s.verdict.line())
            lines += self._events(s.obj, s.kind.name, "  ")
            shown, alike = failing_pods(s.pods)
            for index, pod in enumerate(shown):
                lines += self._pod(pod, logs=index == 0)
            if alike:
                lines.append(f"  and {alike} more pod{'s' if alike > 1 else ''} failing the same way")
        if len(bad) > MAX_WORKLOADS:
            lines.append(f"and {len(bad) - MAX_WORKLOADS} more not ready: "
                         + ", ".join(s.label for s in bad[MAX_WORKLOADS:]))
        return lines

    def _pod(self, pod: dict, logs: bool) -> list[str]:
        phase = (pod.get("status") or {}).get("phase") or "Unknown"
        lines = [f"  pod {name_of(pod)}: {phase}"]
        troubled = containers_in_trouble(pod)
        lines += [f"    {text}" for _, text, _ in troubled]
        if not troubled:
            lines += [f"    {reason}" for reason in pod_reasons(pod)]
        lines += self._events(pod, "Pod", "    ")
        if logs and self.log_lines:
            for container, _, which in [t for t in troubled if t[2]][:MAX_LOGS]:
                lines += self._log(pod, container, which == "previous")
        return lines

    def _events(self, obj: dict, kind: str, indent: str) -> list[str]:
        """The latest Warning events about the object, each (reason, message) once, newest first."""
        selector = (f"involvedObject.kind={kind},involvedObject.name={name_of(obj)},"
                    f"involvedObject.uid={uid_of(obj)},type=Warning")
        try:
            events = self.client.list(EVENTS.format(ns=self.target.namespace), field_selector=selector)
        except OctopodError as exc:
            return [f"{indent}events unavailable: {exc}"]
        return [f"{indent}{line}" for line in latest_events(events)]

    def _log(self, pod: dict, container: str, previous: bool) -> list[str]:
        which = "the crashed instance's" if previous else "its"
        head = f"    log of container {container} ({which} last {self.log_lines} lines):"
        try:
            tail = log_tail(self.client, self.target.namespace, name_of(pod), container, previous,
                            self.log_lines, self.redact)
        except OctopodError as exc:
            return [f"    log of container {container} unavailable: {exc}"]
        return [head] + [f"      | {line}" for line in tail] if tail else [f"{head} (empty)"]


def failing_pods(pods: list[dict]) -> tuple[list[dict], int]:
    """At most MAX_PODS Pods to show, each failing its own way (stuck ones first, then any with
    a reason, newest first), and how many others fail the same way as one shown."""
    troubled = [p for p in pods if pod_reasons(p)]
    troubled.sort(key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "", reverse=True)
    troubled.sort(key=lambda p: not stuck(p, 0))
    shown, ways = [], set()
    for pod in troubled:
        way = tuple(pod_reasons(pod))
        if way not in ways and len(shown) < MAX_PODS:
            ways.add(way)
            shown.append(pod)
    return shown, sum(1 for p in troubled if tuple(pod_reasons(p)) in ways) - len(shown)


def latest_events(events: list[dict]) -> list[str]:
    """At most MAX_EVENTS lines: each (reason, message) once, its counts summed, newest first."""
    def when(event: dict) -> str:
        return (event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp")
                or (event.get("metadata") or {}).get("creationTimestamp") or "")

    merged: dict[tuple[str, str], list[Any]] = {}
    for event in sorted(events, key=when, reverse=True):
        message = " ".join(str(event.get("message") or "").split())
        key = (str(event.get("reason") or "Warning"), message)
        count = (event.get("series") or {}).get("count") or event.get("count") or 1
        if key in merged:
            merged[key][0] += count
        else:
            merged[key] = [count]
    lines = []
    for (reason, message), (count,) in list(merged.items())[:MAX_EVENTS]:
        times = f" (x{count})" if count > 1 else ""
        lines.append(f"event {reason}{times}: {_clip(message)}")
    return lines


def _clip(text: str) -> str:
    return text if len(text) <= MAX_LINE else text[:MAX_LINE - 1] + "…"


def log_tail(client: KubeClient, namespace: str, pod: str, container: str, previous: bool, lines: int,
             redact: Redactor) -> list[str]:
    """The last `lines` lines of a container's log, redacted, each at most MAX_LINE characters.

    Read with tailLines and limitBytes (the API cuts what is over the limit at the end); a
    cut answer loses its last, partial line and any tail that may begin a secret, so a value
    is never shown in part. Terminal escapes and control characters are dropped first.
    """
    limit = max(16384, lines * 1024)
    params = {"container": container, "tailLines": str(lines), "limitBytes": str(limit)}
    if previous:
        params["previous"] = "true"
    raw = client.request("GET", f"/api/v1/namespaces/{namespace}/pods/{pod}/log", params, text=True) or ""
    cut = len(raw.encode("utf-8", "replace")) >= limit
    text = "\n".join(_ESCAPES.sub("", line) for line in raw.split("\n"))
    if cut:
        text = redact.split(text[:text.rfind("\n") + 1])[0]
    else:
        text = redact(text)
    return [_clip(line.rstrip()) for line in text.splitlines()[-lines:]]
