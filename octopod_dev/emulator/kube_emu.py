#!/usr/bin/env python3
"""
kube_emu -- a small in-memory Kubernetes API emulator for CLI integration tests.

Enough of the REST API for real `kubectl` and `helm` (3.x and 4.x) binaries:
discovery (served verbatim from kmock's bundled k3s discovery dump), CRUD,
PUT/replace with resourceVersion conflicts, JSON / merge / strategic-merge /
server-side-apply patches (approximated), label & field selectors, watches,
deletecollection, status & scale subresources, Table output, namespaces,
pod logs (`pods/{name}/log` with container, tailLines, previous, limitBytes: the
text a test set through POST /_emu/logs, as the kubelet would serve it), and core/v1
Events listed by the field selectors the API server supports for them
(involvedObject.*, reason, type, ...).
No controllers: Deployments never become ready unless a test patches
`.status` (or the emulator is started with --auto-ready). Tests play the controllers
and the kubelet with plain requests: ReplicaSets owned by a Deployment, Pods owned by
a ReplicaSet (ownerReferences), Pod statuses, Events (octopod_dev/emulator/cluster.py).

Plain HTTP without authentication by default. Opt-in, as a real API server: HTTPS
(--tls-cert/--tls-key), client certificates (--client-ca, --require-client-cert) and
bearer tokens (--token); with any credential option a request with neither a valid
token nor a verified client certificate gets 401 Unauthorized. The /_emu/* test hooks
stay open (they are the test acting as controllers).

Usage:
    python kube_emu.py --port 0 --kubeconfig /tmp/kc.yaml   # prints "READY <url>"
"""
from __future__ import annotations

import argparse
import asyncio
import copy
import datetime
import gzip
import importlib.resources
import itertools
import json
import pathlib
import random
import re
import ssl
import string
import threading
import time
import uuid
from typing import Any

import jsonpatch  # a dependency of kmock
from aiohttp import web

try:
    import yaml
except ImportError:  # only needed for server-side apply bodies sent as YAML
    yaml = None

JSON = 'application/json'


# --------------------------------------------------------------------------- errors
class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def response(self) -> web.Response:
        body = {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Failure',
                'message': self.message, 'reason': self.reason, 'code': self.code}
        if self.details:
            body['details'] = self.details
        return web.json_response(body, status=self.code)


def not_found(res: 'Res', name: str) -> ApiError:
    return ApiError(404, 'NotFound', f'{res.qualified} "{name}" not found',
                    {'name': name, 'group': res.group, 'kind': res.plural})


# --------------------------------------------------------------------------- discovery
class Res:
    def __init__(self, group: str, version: str, plural: str, entry: dict):
        self.group, self.version, self.plural = group, version, plural
        self.kind = entry['kind']
        self.namespaced = bool(entry.get('namespaced'))
        self.verbs = set(entry.get('verbs', []))
        self.subresources: set[str] = set()

    @property
    def gv(self) -> str:
        return f'{self.group}/{self.version}' if self.group else self.version

    @property
    def qualified(self) -> str:
        return f'{self.plural}.{self.group}' if self.group else self.plural


def _version_rank(v: str) -> tuple:
    m = re.match(r'v(\d+)(alpha|beta)?(\d*)', v)
    if not m:
        return (0, 0, 0)
    stability = {'alpha': 0, 'beta': 1, None: 2}[m.group(2)]
    return (stability, int(m.group(1)), int(m.group(3) or 0))


class Discovery:
    def __init__(self, docs: list[dict]):
        self.docs: dict[str, dict] = {}
        self.res: dict[tuple[str, str, str], Res] = {}
        self.groups: dict[str, list[str]] = {}
        for doc in docs:
            doc = dict(doc, apiVersion='v1', kind='APIResourceList')
            gv = doc['groupVersion']
            group, version = gv.rsplit('/', 1) if '/' in gv else ('', gv)
            self.docs[gv] = doc
            if group:
                self.groups.setdefault(group, []).append(version)
            for e in doc['resources']:
                if '/' not in e['name']:
                    self.res[(group, version, e['name'])] = Res(group, version, e['name'], e)
            for e in doc['resources']:
                if '/' in e['name']:
                    parent, sub = e['name'].split('/', 1)
                    if (group, version, parent) in self.res:
                        self.res[(group, version, parent)].subresources.add(sub)
        for g in self.groups:
            self.groups[g].sort(key=_version_rank, reverse=True)

    @classmethod
    def bundled(cls) -> 'Discovery':
        data = importlib.resources.files('kmock._internal').joinpath('resources.json.gz').read_bytes()
        return cls(json.loads(gzip.decompress(data)))

    def group_doc(self, group: str) -> dict:
        versions = [{'groupVersion': f'{group}/{v}', 'version': v} for v in self.groups[group]]
        return {'kind': 'APIGroup', 'apiVersion': 'v1', 'name': group,
                'versions': versions, 'preferredVersion': versions[0]}

    def find_kind(self, group: str, kind: str) -> Res | None:
        for r in self.res.values():
            if r.group == group and r.kind == kind:
                return r
        return None


# --------------------------------------------------------------------------- selectors
_REQ = re.compile(r'\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(==|=|!=)\s*([^,]*)|\s+(in|notin)\s*\(([^)]*)\))?\s*')


def parse_label_selector(sel: str | None):
    reqs = []
    if not sel:
        return reqs
    pos = 0
    while pos < len(sel):
        m = _REQ.match(sel, pos)
        if not m or m.end() == pos:
            raise ApiError(400, 'BadRequest', f'unable to parse requirement: {sel!r}')
        neg, key, op, val, setop, setvals = m.groups()
        if op:
            reqs.append((key, '!=' if op == '!=' else '=', {val.strip()}))
        elif setop:
            reqs.append((key, setop, {v.strip() for v in setvals.split(',') if v.strip()}))
        else:
            reqs.append((key, '!exists' if neg else 'exists', set()))
        pos = m.end()
        if pos < len(sel):
            if sel[pos] != ',':
                raise ApiError(400, 'BadRequest', f'unable to parse requirement: {sel!r}')
            pos += 1
    return reqs


def labels_match(reqs, labels: dict) -> bool:
    for key, op, vals in reqs:
        present, v = key in labels, labels.get(key)
        if op == '=' and not (present and v in vals):
            return False
        if op == '!=' and present and v in vals:
            return False
        if op == 'in' and not (present and v in vals):
            return False
        if op == 'notin' and present and v in vals:
            return False
        if op == 'exists' and not present:
            return False
        if op == '!exists' and present:
            return False
    return True


# The field selectors the API server supports for core/v1 Events (besides metadata.name and
# metadata.namespace, which every kind has); `source` is the source's component.
EVENT_FIELDS = {'involvedObject.kind', 'involvedObject.namespace', 'involvedObject.name',
                'involvedObject.uid', 'involvedObject.apiVersion', 'involvedObject.resourceVersion',
                'involvedObject.fieldPath', 'reason', 'reportingComponent', 'source', 'type',
                'metadata.name', 'metadata.namespace'}


def event_field_selector(sel: str | None) -> str | None:
    """An Events field selector as the API server takes it: an unsupported field is a 400."""
    if not sel:
        return sel
    parts = []
    for part in sel.split(','):
        m = re.match(r'\s*([^=!]+?)\s*((?:==|=|!=).*)$', part)
        if not m or m.group(1) not in EVENT_FIELDS:
            raise ApiError(400, 'BadRequest', f'field label not supported: {m.group(1) if m else part}')
        parts.append(('source.component' if m.group(1) == 'source' else m.group(1)) + m.group(2))
    return ','.join(parts)


def fields_match(sel: str | None, obj: dict) -> bool:
    if not sel:
        return True
    for part in sel.split(','):
        m = re.match(r'\s*([^=!]+?)\s*(==|=|!=)\s*(.*?)\s*$', part)
        if not m:
            raise ApiError(400, 'BadRequest', f'invalid field selector: {sel!r}')
        path, op, val = m.groups()
        cur: Any = obj
        for p in path.split('.'):
            cur = cur.get(p) if isinstance(cur, dict) else None
        actual = '' if cur is None else str(cur)
        if (op == '!=') == (actual == val):
            return False
    return True


# --------------------------------------------------------------------------- patches
MERGE_KEYS = {
    'containers': 'name', 'initContainers': 'name', 'ephemeralContainers': 'name',
    'env': 'name', 'volumes': 'name', 'volumeMounts': 'mountPath', 'volumeDevices': 'devicePath',
    'imagePullSecrets': 'name', 'hostAliases': 'ip', 'conditions': 'type',
    'ownerReferences': 'uid', 'topologySpreadConstraints': 'topologyKey', 'resourceClaims': 'name',
}
MERGE_PRIMITIVE_LISTS = {'finalizers'}


def _list_key(field: str, items: list) -> str | None:
    if field == 'ports':
        for it in items:
            if isinstance(it, dict):
                return 'containerPort' if 'containerPort' in it else 'port'
        return None
    return MERGE_KEYS.get(field)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


def strategic_merge(target: Any, patch: Any, field: str = '') -> Any:
    """An approximation of strategic-merge-patch for the commonly used built-in fields."""
    if isinstance(patch, list):
        return _strategic_list(target if isinstance(target, list) else [], patch, field)
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get('$patch') == 'replace':
        return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith('$')}
    if patch.get('$patch') == 'delete':
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k.startswith('$'):
            continue
        if v is None:
            result.pop(k, None)
        else:
            merged = strategic_merge(result.get(k), v, k)
            if merged is None:
                result.pop(k, None)
            else:
                result[k] = merged
    for k, v in patch.items():
        if k.startswith('$deleteFromPrimitiveList/'):
            f = k.split('/', 1)[1]
            if isinstance(result.get(f), list):
                result[f] = [x for x in result[f] if x not in v]
        elif k.startswith('$setElementOrder/'):
            f = k.split('/', 1)[1]
            lst = result.get(f)
            key = _list_key(f, lst or [])
            if isinstance(lst, list):
                order = [o.get(key) if isinstance(o, dict) else o for o in v]
                ident = (lambda x: x.get(key)) if key else (lambda x: x)
                lst.sort(key=lambda x: order.index(ident(x)) if ident(x) in order else len(order))
    if isinstance(patch.get('$retainKeys'), list):
        keep = set(patch['$retainKeys'])
        result = {k: v for k, v in result.items() if k in keep}
    return result


def _strategic_list(target: list, patch: list, field: str) -> list:
    if any(isinstance(p, dict) and p.get('$patch') == 'replace' for p in patch):
        return [copy.deepcopy(p) for p in patch if not (isinstance(p, dict) and '$patch' in p)]
    if field in MERGE_PRIMITIVE_LISTS:
        out = list(target)
        out += [p for p in patch if p not in out]
        return out
    key = _list_key(field, patch + target)
    if not key:
        return copy.deepcopy(patch)
    out = copy.deepcopy(target)
    for p in patch:
        if not isinstance(p, dict):
            continue
        idx = next((i for i, t in enumerate(out) if isinstance(t, dict) and t.get(key) == p.get(key)), None)
        if p.get('$patch') == 'delete':
            if idx is not None:
                out.pop(idx)
        elif idx is None:
            out.append({k: v for k, v in p.items() if not k.startswith('$')})
        else:
            out[idx] = strategic_merge(out[idx], p, field)
    return out


def prune_unapplied(target: Any, prev: Any, cur: Any, field: str = '') -> Any:
    """Server-side-apply approximation: drop fields this manager applied before but not now."""
    if isinstance(prev, dict) and isinstance(target, dict):
        cur = cur if isinstance(cur, dict) else {}
        for k, pv in prev.items():
            if k not in cur:
                target.pop(k, None)
            elif k in target:
                target[k] = prune_unapplied(target[k], pv, cur[k], k)
        return target
    if isinstance(prev, list) and isinstance(target, list) and isinstance(cur, list):
        key = _list_key(field, prev + cur)
        if key:
            cur_keys = {c.get(key) for c in cur if isinstance(c, dict)}
            gone = {p.get(key) for p in prev if isinstance(p, dict)} - cur_keys
            target = [t for t in target if not (isinstance(t, dict) and t.get(key) in gone)]
            for t in target:
                pv = next((p for p in prev if isinstance(p, dict) and p.get(key) == t.get(key)), None)
                cv = next((c for c in cur if isinstance(c, dict) and c.get(key) == t.get(key)), None)
                if pv is not None and cv is not None:
                    prune_unapplied(t, pv, cv)
    return target



# --------------------------------------------------------------------------- protobuf request bodies
# client-go typed clients (e.g. Helm's release storage for Secrets/ConfigMaps) send request bodies
# as Kubernetes protobuf ("k8s\x00" + runtime.Unknown). Decode the few message types they use.
_PB = {
    'Unknown': {1: ('typeMeta', 'msg:TypeMeta'), 2: ('raw', 'raw'), 3: ('contentEncoding', 'str'),
                4: ('contentType', 'str')},
    'TypeMeta': {1: ('apiVersion', 'str'), 2: ('kind', 'str')},
    'ObjectMeta': {1: ('name', 'str'), 2: ('generateName', 'str'), 3: ('namespace', 'str'),
                   5: ('uid', 'str'), 6: ('resourceVersion', 'str'), 7: ('generation', 'int'),
                   8: ('creationTimestamp', 'time'), 9: ('deletionTimestamp', 'time'),
                   10: ('deletionGracePeriodSeconds', 'int'), 11: ('labels', 'map:str'),
                   12: ('annotations', 'map:str'), 13: ('ownerReferences', '[]msg:OwnerReference'),
                   14: ('finalizers', '[]str')},
    'OwnerReference': {1: ('kind', 'str'), 3: ('name', 'str'), 4: ('uid', 'str'), 5: ('apiVersion', 'str'),
                       6: ('controller', 'bool'), 7: ('blockOwnerDeletion', 'bool')},
    'Time': {1: ('seconds', 'int'), 2: ('nanos', 'int')},
    'Secret': {1: ('metadata', 'msg:ObjectMeta'), 2: ('data', 'map:b64'), 3: ('type', 'str'),
               4: ('stringData', 'map:str'), 5: ('immutable', 'bool')},
    'ConfigMap': {1: ('metadata', 'msg:ObjectMeta'), 2: ('data', 'map:str'), 3: ('binaryData', 'map:b64'),
                  4: ('immutable', 'bool')},
    'Namespace': {1: ('metadata', 'msg:ObjectMeta'), 2: ('spec', 'msg:NamespaceSpec'),
                  3: ('status', 'msg:NamespaceStatus')},
    'NamespaceSpec': {1: ('finalizers', '[]str')},
    'NamespaceStatus': {1: ('phase', 'str')},
    'MapEntry': {1: ('key', 'raw'), 2: ('value', 'raw')},
}


def _pb_fields(buf: bytes):
    i = 0
    while i < len(buf):
        def varint():
            nonlocal i
            shift = result = 0
            while True:
                b = buf[i]; i += 1
                result |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    return result
        tag = varint()
        num, wt = tag >> 3, tag & 7
        if wt == 0:
            yield num, varint()
        elif wt == 2:
            n = varint()
            yield num, buf[i:i + n]
            i += n
        elif wt == 1:
            yield num, buf[i:i + 8]; i += 8
        elif wt == 5:
            yield num, buf[i:i + 4]; i += 4
        else:
            raise ValueError(f'unsupported protobuf wire type {wt}')


def _pb_decode(buf: bytes, msg: str) -> dict:
    import base64
    out: dict = {}
    for num, val in _pb_fields(buf):
        if num not in _PB[msg]:
            continue
        name, typ = _PB[msg][num]
        rep = typ.startswith('[]')
        typ = typ.removeprefix('[]')
        if typ == 'str':
            v = val.decode()
        elif typ == 'raw':
            v = val
        elif typ == 'int':
            v = val - (1 << 64) if val >= 1 << 63 else val
        elif typ == 'bool':
            v = bool(val)
        elif typ == 'time':
            t = _pb_decode(val, 'Time')
            v = datetime.datetime.fromtimestamp(t.get('seconds', 0), datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
        elif typ.startswith('msg:'):
            v = _pb_decode(val, typ[4:])
        elif typ.startswith('map:'):
            e = _pb_decode(val, 'MapEntry')
            k, mv = e.get('key', b'').decode(), e.get('value', b'')
            out.setdefault(name, {})[k] = base64.b64encode(mv).decode() if typ == 'map:b64' else mv.decode()
            continue
        if rep:
            out.setdefault(name, []).append(v)
        else:
            out[name] = v
    return out


def decode_k8s_protobuf(raw: bytes) -> dict:
    if not raw.startswith(b'k8s\x00'):
        raise ValueError('not a Kubernetes protobuf envelope')
    unk = _pb_decode(raw[4:], 'Unknown')
    tm = unk.get('typeMeta', {})
    kind = tm.get('kind')
    if kind not in ('Secret', 'ConfigMap', 'Namespace'):
        raise ValueError(f'protobuf decoding of {kind} is not implemented')
    obj = _pb_decode(unk.get('raw', b''), kind)
    obj['apiVersion'], obj['kind'] = tm.get('apiVersion', 'v1'), kind
    return obj


# --------------------------------------------------------------------------- server
def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def age(ts: str | None) -> str:
    if not ts:
        return '<unknown>'
    then = datetime.datetime.strptime(ts, '%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=datetime.timezone.utc)
    secs = int((datetime.datetime.now(datetime.timezone.utc) - then).total_seconds())
    return f'{secs}s' if secs < 120 else f'{secs // 60}m' if secs < 7200 else f'{secs // 3600}h'


class KubeEmulator:
    def __init__(self, discovery: Discovery | None = None, *, version: str = 'v1.33.0',
                 auto_ready: bool = False, log: pathlib.Path | None = None,
                 tokens: list[str] | None = None, client_certs: bool = False):
        self.discovery = discovery or Discovery.bundled()
        self.version = version
        self.auto_ready = auto_ready
        self.log = log
        # Authentication, off unless asked: accepted bearer tokens, and whether a client
        # certificate the TLS layer verified (against --client-ca) authenticates.
        self.tokens = set(tokens or ())
        self.client_certs = client_certs
        self.rv = 1
        self.objects: dict[tuple[str, str, str, str], dict] = {}  # (group, plural, ns, name)
        self.applied: dict[tuple, dict] = {}  # (objkey, fieldManager) -> last applied config
        self.events: list[tuple[int, str, tuple, dict]] = []
        self.cond = asyncio.Condition()
        self.requests: list[tuple[str, str, int, str]] = []  # (method, path, status, User-Agent)
        self.fault: dict | None = None  # test hook: {'mode': '500'|'hang', 'prefix': '/apis', 'method': 'GET', 'times': N}
        self.logs: dict[tuple[str, str, str, bool], str] = {}  # (ns, pod, container, previous) -> text
        self._ip = itertools.count(10)
        ns = self.discovery.res[('', 'v1', 'namespaces')]
        for name in ('default', 'kube-system', 'kube-public', 'kube-node-lease'):
            self._store_new(ns, '', {'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': name}})

    # ---- http entry point
    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 ** 2)
        app.router.add_route('*', '/{tail:.*}', self.handle)
        return app

    async def _injected_fault(self, request: web.Request) -> web.StreamResponse | None:
        f = self.fault
        if not f or request.path.startswith('/_emu/') or not request.path.startswith(f.get('prefix', '/')):
            return None
        if f.get('method') and f['method'] != request.method:
            return None
        if f.get('times') is not None:  # only the first N matching requests, then the fault is gone
            f['times'] -= 1
            if f['times'] <= 0:
                self.fault = None
        if f['mode'] == 'hang':
            await asyncio.sleep(3600)
        return ApiError(500, 'InternalError', 'kube_emu: injected fault').response()

    def _authenticated(self, request: web.Request) -> bool:
        if not (self.tokens or self.client_certs) or request.path.startswith('/_emu/'):
            return True
        scheme, _, token = request.headers.get('Authorization', '').partition(' ')
        if scheme.lower() == 'bearer' and token.strip() in self.tokens:
            return True
        # With CERT_OPTIONAL/REQUIRED, ssl reports a peer certificate only once verified.
        return bool(self.client_certs and request.transport
                    and request.transport.get_extra_info('peercert'))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not self._authenticated(request):
            # what kube-apiserver answers when no authenticator accepts the request
            self.requests.append((request.method, str(request.rel_url), 401, request.headers.get('User-Agent', '')))
            return ApiError(401, 'Unauthorized', 'Unauthorized').response()
        if request.path == '/_emu/fault':
            # test hook: POST {"mode": "500"|"hang", "prefix": "/apis", "method": "GET", "times": 1}
            # injects (times: only the first N matching requests), DELETE clears
            self.fault = await request.json() if request.method == 'POST' else None
            return web.json_response(self.fault or {})
        injected = await self._injected_fault(request)
        if injected is not None:
            self.requests.append((request.method, str(request.rel_url), injected.status, request.headers.get('User-Agent', '')))
            return injected
        try:
            resp = await self._dispatch(request)
        except ApiError as e:
            resp = e.response()
        except Exception as e:  # report server bugs to the client as a K8s Status
            import traceback
            traceback.print_exc()
            resp = ApiError(500, 'InternalError', f'kube_emu: {e!r}').response()
        self.requests.append((request.method, str(request.rel_url), resp.status, request.headers.get('User-Agent', '')))
        if self.log:
            with open(self.log, 'a') as f:
                f.write(f'{request.method} {request.rel_url} '
                        f'[{request.headers.get("Content-Type", "")}] accept=[{request.headers.get("Accept", "")}] -> {resp.status}\n')
        return resp

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip('/') or '/'
        parts = [p for p in path.split('/') if p]
        d = self.discovery
        if request.method == 'GET':
            if path == '/version':
                major, minor = re.match(r'v(\d+)\.(\d+)', self.version).groups()
                return web.json_response({'major': major, 'minor': minor, 'gitVersion': self.version,
                                          'gitCommit': 'kube-emu', 'gitTreeState': 'clean',
                                          'buildDate': '2025-01-01T00:00:00Z', 'goVersion': 'go1.24',
                                          'compiler': 'gc', 'platform': 'linux/amd64'})
            if path in ('/healthz', '/readyz', '/livez'):
                return web.Response(text='ok')
            if path == '/api':
                return web.json_response({'kind': 'APIVersions', 'versions': ['v1'],
                                          'serverAddressByClientCIDRs': [
                                              {'clientCIDR': '0.0.0.0/0', 'serverAddress': request.host}]})
            if path == '/apis':
                return web.json_response({'kind': 'APIGroupList', 'apiVersion': 'v1',
                                          'groups': [d.group_doc(g) for g in d.groups]})
            if path == '/api/v1':
                return web.json_response(d.docs['v1'])
            if len(parts) == 2 and parts[0] == 'apis' and parts[1] in d.groups:
                return web.json_response(d.group_doc(parts[1]))
            if len(parts) == 3 and parts[0] == 'apis' and f'{parts[1]}/{parts[2]}' in d.docs:
                return web.json_response(d.docs[f'{parts[1]}/{parts[2]}'])
            if path == '/openapi/v2':
                # An empty OpenAPI v2 document (protobuf: zero bytes). Client-side validation then
                # knows no schemas and accepts everything, so --validate defaults keep working.
                return web.Response(body=b'', content_type='application/com.github.proto-openapi.spec.v2.v1.0+protobuf')
        if request.method == 'POST' and path == '/_emu/logs':
            # test hook (the kubelet's container logs): POST {"namespace", "pod", "container",
            # "previous": false, "text"}; served by GET .../pods/{pod}/log
            b = await request.json()
            self.logs[(b['namespace'], b['pod'], b['container'], bool(b.get('previous')))] = b.get('text', '')
            return web.json_response({})
        if path == '/_emu/requests':
            # test hook: GET lists (method, path, status) of every API request so far (with
            # ?agents=true, each with its User-Agent too); DELETE resets
            if request.method == 'DELETE':
                self.requests.clear()
            width = 4 if request.query.get('agents') == 'true' else 3
            return web.json_response([r[:width] for r in self.requests if not r[1].startswith('/_emu/')])
        if request.method == 'POST' and path == '/_emu/ready':
            # test hook: mark workloads ready (optionally only ?namespace=&name=) like controllers would
            q = request.query
            done = []
            for key in list(self.objects):
                g, p, n_s, n = key
                if q.get('namespace', n_s) == n_s and q.get('name', n) == n:
                    r = next(r for r in d.res.values() if (r.group, r.plural) == (g, p))
                    before = self.objects[key].get('status')
                    self.make_ready(r, key)
                    if key in self.objects and self.objects[key].get('status') != before:
                        done.append(f'{r.qualified}/{n_s}/{n}')
            return web.json_response({'marked': done})
        # resource URLs: /api/v1/... and /apis/{group}/{version}/...
        if parts[:2] == ['api', 'v1']:
            group, version, rest = '', 'v1', parts[2:]
        elif len(parts) >= 3 and parts[0] == 'apis':
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, 'NotFound', 'the server could not find the requested resource')
        ns = ''
        if len(rest) >= 3 and rest[0] == 'namespaces' and (group, version, rest[2]) in d.res:
            ns, rest = rest[1], rest[2:]
        if not rest or (group, version, rest[0]) not in d.res:
            raise ApiError(404, 'NotFound', 'the server could not find the requested resource')
        res = d.res[(group, version, rest[0])]
        name = rest[1] if len(rest) > 1 else None
        sub = '/'.join(rest[2:]) or None
        if sub and sub not in res.subresources:
            raise ApiError(404, 'NotFound', 'the server could not find the requested resource')
        if ns and not res.namespaced:
            raise ApiError(404, 'NotFound', 'the server could not find the requested resource')
        q = request.query
        m = request.method
        if m == 'GET' and name is None:
            if q.get('watch') in ('true', '1'):
                return await self._watch(request, res, ns)
            return self._reply(request, res, self._list(res, ns, q))
        if m == 'GET' and sub == 'log' and res.plural == 'pods':
            return self._pod_log(res, ns, name, q)
        if m == 'GET':
            obj = self._get(res, ns, name)
            return self._reply(request, res, self._scale(res, obj) if sub == 'scale' else obj)
        body = await self._body(request)
        if m == 'POST' and name is None:
            if not res.namespaced:
                ns = ''
            elif not ns:
                ns = (body.get('metadata') or {}).get('namespace') or ''
            return web.json_response(await self._create(res, ns, body, q), status=201)
        if m == 'PUT' and name:
            return web.json_response(await self._replace(res, ns, name, sub, body, q))
        if m == 'PATCH' and name:
            ctype = request.content_type
            return web.json_response(await self._patch(res, ns, name, sub, ctype, body, q))
        if m == 'DELETE' and name:
            return web.json_response(await self._delete(res, ns, name, q))
        if m == 'DELETE':
            deleted = [await self._delete(res, o['metadata'].get('namespace', ''), o['metadata']['name'], q)
                       for o in self._list(res, ns, q)['items']]
            return web.json_response({'kind': f'{res.kind}List', 'apiVersion': res.gv,
                                      'metadata': {'resourceVersion': str(self.rv)}, 'items': deleted})
        raise ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource')

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            return {}
        if request.content_type == 'application/vnd.kubernetes.protobuf':
            try:
                return decode_k8s_protobuf(raw)
            except (ValueError, IndexError, UnicodeDecodeError) as e:
                if request.method == 'DELETE':  # protobuf DeleteOptions: ignored
                    return {}
                raise ApiError(415, 'UnsupportedMediaType', f'kube_emu: {e}')
        try:
            return json.loads(raw)
        except ValueError:
            if yaml is not None:
                try:
                    return yaml.safe_load(raw)
                except yaml.YAMLError:
                    pass
        raise ApiError(415, 'UnsupportedMediaType',
                       f'kube_emu accepts JSON (or YAML) bodies only, got {request.content_type}')

    # ---- output helpers
    def _reply(self, request: web.Request, res: Res, payload: dict) -> web.Response:
        if 'as=Table' not in request.headers.get('Accept', ''):
            return web.json_response(payload)
        items = payload['items'] if 'items' in payload else [payload]
        include = request.query.get('includeObject', 'Metadata')
        cols = [('Name', 'name')] + ([('Status', '')] if res.plural == 'namespaces' else []) + [('Age', '')]
        rows = []
        for o in items:
            md = o.get('metadata', {})
            cells = [md.get('name')]
            if res.plural == 'namespaces':
                cells.append((o.get('status') or {}).get('phase', 'Active'))
            cells.append(age(md.get('creationTimestamp')))
            obj = o if include == 'Object' else {'kind': 'PartialObjectMetadata', 'apiVersion': 'meta.k8s.io/v1',
                                                  'metadata': md}
            rows.append({'cells': cells, 'object': obj if include != 'None' else None})
        return web.json_response({
            'kind': 'Table', 'apiVersion': 'meta.k8s.io/v1',
            'metadata': {'resourceVersion': str(self.rv)},
            'columnDefinitions': [{'name': c, 'type': 'string', 'format': f, 'description': c, 'priority': 0}
                                  for c, f in cols],
            'rows': rows})

    def _out(self, res: Res, obj: dict) -> dict:
        out = copy.deepcopy(obj)
        out['apiVersion'], out['kind'] = res.gv, res.kind
        return out

    # ---- storage
    def _key(self, res: Res, ns: str, name: str) -> tuple:
        return (res.group, res.plural, ns if res.namespaced else '', name)

    def _get(self, res: Res, ns: str, name: str) -> dict:
        obj = self.objects.get(self._key(res, ns, name))
        if obj is None:
            raise not_found(res, name)
        return self._out(res, obj)

    def _field_selector(self, res: Res, q) -> str | None:
        sel = q.get('fieldSelector')
        return event_field_selector(sel) if (res.group, res.plural) == ('', 'events') else sel

    def _list(self, res: Res, ns: str, q) -> dict:
        lsel = parse_label_selector(q.get('labelSelector'))
        fsel = self._field_selector(res, q)
        items = [self._out(res, o) for (g, p, n, _), o in sorted(self.objects.items())
                 if g == res.group and p == res.plural and (not ns or n == ns)
                 and labels_match(lsel, o['metadata'].get('labels') or {})
                 and fields_match(fsel, o)]
        return {'kind': f'{res.kind}List', 'apiVersion': res.gv,
                'metadata': {'resourceVersion': str(self.rv)}, 'items': items}

    def _emit(self, etype: str, res: Res, obj: dict) -> None:
        self.events.append((self.rv, etype, (res.group, res.plural), self._out(res, obj)))
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self.cond:
            self.cond.notify_all()

    def _bump(self, obj: dict) -> None:
        self.rv += 1
        obj['metadata']['resourceVersion'] = str(self.rv)

    def _defaults(self, res: Res, obj: dict) -> None:
        spec = obj.setdefault('spec', {}) if res.plural in ('deployments', 'statefulsets', 'services',
                                                             'persistentvolumeclaims', 'namespaces') else None
        if res.plural == 'namespaces':
            spec.setdefault('finalizers', ['kubernetes'])
            obj['metadata'].setdefault('labels', {})['kubernetes.io/metadata.name'] = obj['metadata']['name']
            obj['status'] = {'phase': 'Active'}
        elif res.plural in ('deployments', 'statefulsets'):
            spec.setdefault('replicas', 1)
            spec.setdefault('revisionHistoryLimit', 10)
            if res.plural == 'deployments':
                spec.setdefault('progressDeadlineSeconds', 600)
                spec.setdefault('strategy', {'type': 'RollingUpdate',
                                             'rollingUpdate': {'maxSurge': '25%', 'maxUnavailable': '25%'}})
        elif res.plural == 'services':
            spec.setdefault('type', 'ClusterIP')
            if spec['type'] != 'ExternalName' and spec.get('clusterIP') != 'None':
                n = next(self._ip)
                spec.setdefault('clusterIP', f'10.43.{n // 250}.{n % 250 + 1}')
                spec.setdefault('clusterIPs', [spec['clusterIP']])
            for p in spec.get('ports') or []:
                p.setdefault('protocol', 'TCP')
                p.setdefault('targetPort', p.get('port'))
        elif res.plural == 'persistentvolumeclaims':
            spec.setdefault('volumeMode', 'Filesystem')
            obj.setdefault('status', {}).setdefault('phase', 'Pending')
        elif res.plural == 'secrets':
            import base64
            obj.setdefault('type', 'Opaque')
            for k, v in (obj.pop('stringData', None) or {}).items():
                obj.setdefault('data', {})[k] = base64.b64encode(v.encode()).decode()

    # ---- "controllers": only on request (POST /_emu/ready) or with --auto-ready
    def make_ready(self, res: Res, key: tuple) -> None:
        """Pretend the workload's controller did its job: status ready, a ReplicaSet, PVC bound."""
        obj = self.objects.get(key)
        if obj is None:
            return
        md, spec = obj['metadata'], obj.get('spec') or {}
        gen, n = md.get('generation', 1), spec.get('replicas', 1)
        if res.plural == 'deployments':
            self._ensure_replicaset(obj, n)
            status = {'observedGeneration': gen, 'replicas': n, 'updatedReplicas': n, 'readyReplicas': n,
                      'availableReplicas': n,
                      'conditions': [{'type': 'Available', 'status': 'True', 'reason': 'MinimumReplicasAvailable'},
                                     {'type': 'Progressing', 'status': 'True', 'reason': 'NewReplicaSetAvailable'}]}
        elif res.plural in ('statefulsets', 'replicasets'):
            rev = f"{md['name']}-{self._hash(spec.get('template'))}"
            status = {'observedGeneration': gen, 'replicas': n, 'readyReplicas': n, 'availableReplicas': n,
                      'currentReplicas': n, 'updatedReplicas': n, 'fullyLabeledReplicas': n,
                      'currentRevision': rev, 'updateRevision': rev}
        elif res.plural == 'daemonsets':
            status = {'observedGeneration': gen, 'currentNumberScheduled': 1, 'desiredNumberScheduled': 1,
                      'numberAvailable': 1, 'numberReady': 1, 'updatedNumberScheduled': 1, 'numberMisscheduled': 0}
        elif res.plural == 'jobs':
            status = {'startTime': now_iso(), 'completionTime': now_iso(), 'succeeded': spec.get('completions') or 1,
                      'conditions': [{'type': 'Complete', 'status': 'True'}]}
        elif res.plural == 'persistentvolumeclaims':
            status = {'phase': 'Bound', 'accessModes': spec.get('accessModes', []),
                      'capacity': ((spec.get('resources') or {}).get('requests') or {})}
        elif res.plural == 'services' and spec.get('type') == 'LoadBalancer':
            status = {'loadBalancer': {'ingress': [{'ip': '127.0.0.1'}]}}
        elif res.plural == 'pods':
            status = {'phase': 'Running', 'conditions': [{'type': 'Ready', 'status': 'True'}]}
        else:
            return
        if obj.get('status') != status:
            obj['status'] = status
            self._bump(obj)
            self._emit('MODIFIED', res, obj)

    @staticmethod
    def _hash(value: Any) -> str:
        import hashlib
        return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:10]

    def _ensure_replicaset(self, dep: dict, n: int) -> None:
        rs_res = self.discovery.res[('apps', 'v1', 'replicasets')]
        md = dep['metadata']
        ns, uid = md['namespace'], md['uid']
        tmpl = copy.deepcopy((dep.get('spec') or {}).get('template') or {})
        h = self._hash(tmpl)
        tmpl.setdefault('metadata', {}).setdefault('labels', {})['pod-template-hash'] = h
        sel = copy.deepcopy((dep.get('spec') or {}).get('selector') or {})
        sel.setdefault('matchLabels', {})['pod-template-hash'] = h
        name = f"{md['name']}-{h}"
        for k, o in list(self.objects.items()):  # scale down older ReplicaSets of this Deployment
            if k[:3] == ('apps', 'replicasets', ns) and k[3] != name and any(
                    r.get('uid') == uid for r in o['metadata'].get('ownerReferences') or []):
                if o['spec'].get('replicas') or (o.get('status') or {}).get('replicas'):
                    o['spec']['replicas'] = 0
                    o['status'] = {'replicas': 0, 'observedGeneration': o['metadata'].get('generation', 1)}
                    self._bump(o)
                    self._emit('MODIFIED', rs_res, o)
                    self._delete_owned_pods(ns, o['metadata']['uid'])
        if self._key(rs_res, ns, name) in self.objects:
            return
        rs = self._store_new(rs_res, ns, {'metadata': {
            'name': name, 'labels': dict(tmpl['metadata']['labels']),
            'annotations': {'deployment.kubernetes.io/revision': '1'},
            'ownerReferences': [{'apiVersion': 'apps/v1', 'kind': 'Deployment', 'name': md['name'], 'uid': uid,
                                 'controller': True, 'blockOwnerDeletion': True}]},
            'spec': {'replicas': n, 'selector': sel, 'template': tmpl}})
        rs['status'] = {'replicas': n, 'readyReplicas': n, 'availableReplicas': n, 'fullyLabeledReplicas': n,
                        'observedGeneration': 1}
        self._emit('ADDED', rs_res, rs)

    def _delete_owned_pods(self, ns: str, uid: str) -> None:
        """The ReplicaSet controller's part when a ReplicaSet is scaled to 0: its Pods go
        (those a test made with an ownerReference to it; the emulator makes none itself)."""
        pods = self.discovery.res[('', 'v1', 'pods')]
        for key, pod in list(self.objects.items()):
            if key[:3] == ('', 'pods', ns) and any(
                    r.get('uid') == uid and r.get('controller') for r in pod['metadata'].get('ownerReferences') or []):
                del self.objects[key]
                self._bump(pod)
                self._emit('DELETED', pods, pod)

    def _store_new(self, res: Res, ns: str, body: dict) -> dict:
        obj = copy.deepcopy(body)
        md = obj.setdefault('metadata', {})
        if res.namespaced:
            md['namespace'] = ns
        else:
            md.pop('namespace', None)
        if 'status' in obj and 'status' in res.subresources and res.plural != 'persistentvolumeclaims':
            obj['status'] = {}
        md['uid'] = str(uuid.uuid4())
        md['creationTimestamp'] = now_iso()
        if 'spec' in obj or res.plural in ('deployments', 'statefulsets', 'daemonsets', 'jobs'):
            md['generation'] = 1
        self._defaults(res, obj)
        self._bump(obj)
        self.objects[self._key(res, ns, md['name'])] = obj
        return obj

    async def _create(self, res: Res, ns: str, body: dict, q, *, from_apply: str | None = None) -> dict:
        if not isinstance(body, dict):
            raise ApiError(400, 'BadRequest', 'the body of the request was in an unknown format')
        md = body.setdefault('metadata', {})
        if not md.get('name') and md.get('generateName'):
            md['name'] = md['generateName'] + ''.join(random.choices(string.ascii_lowercase + string.digits, k=5))
        name = md.get('name')
        if not name:
            raise ApiError(422, 'Invalid', f'{res.kind} "" is invalid: metadata.name: Required value',
                           {'kind': res.kind, 'group': res.group})
        if res.namespaced:
            if not ns:
                raise ApiError(400, 'BadRequest', 'namespace is required for namespaced resources')
            if md.get('namespace') and md['namespace'] != ns:
                raise ApiError(400, 'BadRequest', 'the namespace of the provided object does not match '
                                                  'the namespace sent on the request')
            if ('', 'namespaces', '', ns) not in self.objects:
                raise ApiError(404, 'NotFound', f'namespaces "{ns}" not found',
                               {'name': ns, 'kind': 'namespaces'})
        key = self._key(res, ns, name)
        if key in self.objects:
            raise ApiError(409, 'AlreadyExists', f'{res.qualified} "{name}" already exists',
                           {'name': name, 'group': res.group, 'kind': res.plural})
        if q.get('dryRun'):
            return self._out(res, body)
        obj = self._store_new(res, ns, body)
        if from_apply:
            self.applied[(key, from_apply)] = copy.deepcopy(body)
        self._emit('ADDED', res, obj)
        if self.auto_ready:
            self.make_ready(res, key)
        return self._out(res, self.objects[key])

    def _commit(self, res: Res, key: tuple, old: dict, new: dict, q) -> dict:
        md = new.setdefault('metadata', {})
        for f in ('uid', 'creationTimestamp', 'name', 'namespace', 'deletionTimestamp', 'generation'):
            if f in old['metadata']:
                md[f] = old['metadata'][f]
            else:
                md.pop(f, None)
        if old.get('spec') != new.get('spec') and 'generation' in md:
            md['generation'] += 1
        new.pop('apiVersion', None), new.pop('kind', None)
        if q.get('dryRun'):
            return self._out(res, new)
        self._bump(new)
        if md.get('deletionTimestamp') and not md.get('finalizers'):
            del self.objects[key]
            self._emit('DELETED', res, new)
        else:
            self.objects[key] = new
            self._emit('MODIFIED', res, new)
            if self.auto_ready and old.get('spec') != new.get('spec'):
                self.make_ready(res, key)
                new = self.objects[key]
        return self._out(res, new)

    async def _replace(self, res: Res, ns: str, name: str, sub: str | None, body: dict, q) -> dict:
        key = self._key(res, ns, name)
        old = self.objects.get(key)
        if old is None:
            raise not_found(res, name)
        want_rv = (body.get('metadata') or {}).get('resourceVersion')
        if want_rv and want_rv != old['metadata']['resourceVersion']:
            raise ApiError(409, 'Conflict', f'Operation cannot be fulfilled on {res.qualified} "{name}": '
                                            'the object has been modified; please apply your changes '
                                            'to the latest version and try again',
                           {'name': name, 'group': res.group, 'kind': res.plural})
        if sub == 'scale':
            new = copy.deepcopy(old)
            new['spec']['replicas'] = (body.get('spec') or {}).get('replicas', 0)
            self._commit(res, key, old, new, q)
            return self._scale(res, self.objects.get(key, new))
        if sub == 'status':
            new = copy.deepcopy(old)
            new['status'] = body.get('status')
        else:
            new = copy.deepcopy(body)
            if 'status' in res.subresources:
                new['status'] = copy.deepcopy(old.get('status'))
        return self._commit(res, key, old, new, q)

    async def _patch(self, res: Res, ns: str, name: str, sub: str | None, ctype: str, body: Any, q) -> dict:
        key = self._key(res, ns, name)
        old = self.objects.get(key)
        manager = q.get('fieldManager', '')
        if ctype == 'application/apply-patch+yaml':
            if not isinstance(body, dict):
                raise ApiError(400, 'BadRequest', 'apply patch must be an object')
            if old is None and not sub:
                body.setdefault('metadata', {})['name'] = name
                return await self._create(res, ns, body, q, from_apply=manager)
        if old is None:
            raise not_found(res, name)
        base = self._out(res, old) if sub != 'scale' else self._scale(res, old)
        if ctype == 'application/json-patch+json':
            try:
                new = jsonpatch.apply_patch(base, body)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
                raise ApiError(422, 'Invalid', f'the JSON patch failed: {e}')
        elif ctype == 'application/merge-patch+json':
            new = merge_patch(base, body)
        elif ctype == 'application/strategic-merge-patch+json':
            new = strategic_merge(base, body)
        elif ctype == 'application/apply-patch+yaml':
            new = strategic_merge(base, body)
            prev = self.applied.get((key, manager))
            if prev is not None:
                new = prune_unapplied(new, prev, body)
            if not q.get('dryRun'):
                self.applied[(key, manager)] = copy.deepcopy(body)
        else:
            raise ApiError(415, 'UnsupportedMediaType', f'the body of the request was in an unknown format: {ctype}')
        if sub == 'scale':
            full = copy.deepcopy(old)
            full['spec']['replicas'] = (new.get('spec') or {}).get('replicas', 0)
            self._commit(res, key, old, full, q)
            return self._scale(res, self.objects.get(key, full))
        if sub == 'status':
            full = copy.deepcopy(old)
            full['status'] = new.get('status')
            new = full
        elif 'status' in res.subresources:
            new['status'] = copy.deepcopy(old.get('status'))
        return self._commit(res, key, old, new, q)

    async def _delete(self, res: Res, ns: str, name: str, q) -> dict:
        key = self._key(res, ns, name)
        obj = self.objects.get(key)
        if obj is None:
            raise not_found(res, name)
        if q.get('dryRun'):
            return self._out(res, obj)
        md = obj['metadata']
        if md.get('finalizers') and res.plural != 'namespaces':
            if not md.get('deletionTimestamp'):
                md['deletionTimestamp'] = now_iso()
                self._bump(obj)
                self._emit('MODIFIED', res, obj)
            return self._out(res, obj)
        if res.plural == 'namespaces':  # no namespace controller: drop the contents at once
            for k in [k for k in self.objects if k[2] == name]:
                r = next(r for r in self.discovery.res.values() if (r.group, r.plural) == k[:2])
                o = self.objects.pop(k)
                self._bump(o)
                self._emit('DELETED', r, o)
        del self.objects[key]
        self._bump(obj)
        self._emit('DELETED', res, obj)
        # garbage collection of dependents (ownerReferences), without waiting
        uid = md['uid']
        for k, o in list(self.objects.items()):
            if any(ref.get('uid') == uid for ref in o['metadata'].get('ownerReferences') or []):
                r = next(r for r in self.discovery.res.values() if (r.group, r.plural) == k[:2])
                await self._delete(r, k[2], k[3], {})
        return {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Success',
                'details': {'name': name, 'group': res.group, 'kind': res.plural, 'uid': uid}}

    def _pod_log(self, res: Res, ns: str, name: str, q) -> web.Response:
        """GET pods/{name}/log as the kubelet answers it, from the text tests set (POST /_emu/logs).

        container (required when the pod has several), previous (the last terminated
        instance's), tailLines (the last N lines), limitBytes (the first N bytes of those);
        a container that never started, or no previous instance, is a 400 with the
        kubelet's message. A crash-looping container's current log is its last instance's.
        """
        pod = self._get(res, ns, name)
        spec, status = pod.get('spec') or {}, pod.get('status') or {}
        names = [c.get('name') for c in spec.get('containers') or []]
        inits = [c.get('name') for c in spec.get('initContainers') or []]
        container = q.get('container')
        if not container:
            if len(names) != 1:
                message = f'a container name must be specified for pod {name}, choose one of: [{" ".join(names)}]'
                if inits:
                    message += f' or one of the init containers: [{" ".join(inits)}]'
                raise ApiError(400, 'BadRequest', message)
            container = names[0]
        if container not in names + inits:
            raise ApiError(400, 'BadRequest', f'container {container} is not valid for pod {name}')
        cstatus = next((c for key in ('containerStatuses', 'initContainerStatuses')
                        for c in status.get(key) or [] if c.get('name') == container), {})
        state, last = cstatus.get('state') or {}, (cstatus.get('lastState') or {}).get('terminated')
        previous = q.get('previous') in ('true', '1')
        if previous:
            if not last and (ns, name, container, True) not in self.logs:
                raise ApiError(400, 'BadRequest',
                               f'previous terminated container "{container}" in pod "{name}" not found')
            text = self.logs.get((ns, name, container, True), '')
        elif state.get('running') or state.get('terminated') or (ns, name, container, False) in self.logs:
            text = self.logs.get((ns, name, container, False), '')
        elif last:  # waiting to restart (CrashLoopBackOff): the last instance's log
            text = self.logs.get((ns, name, container, True), '')
        else:
            reason = (state.get('waiting') or {}).get('reason') or 'ContainerCreating'
            if reason in ('ErrImagePull', 'ImagePullBackOff'):
                reason = 'trying and failing to pull image'
            raise ApiError(400, 'BadRequest', f'container "{container}" in pod "{name}" is waiting to start: {reason}')
        try:
            tail = int(q['tailLines']) if 'tailLines' in q else None
            limit = int(q['limitBytes']) if 'limitBytes' in q else None
        except ValueError:
            raise ApiError(400, 'BadRequest', 'tailLines and limitBytes are integers')
        lines = text.splitlines(keepends=True)
        if tail is not None:
            lines = lines[-tail:] if tail > 0 else []
        data = ''.join(lines).encode()
        if limit is not None:
            data = data[:max(limit, 0)]
        return web.Response(body=data, content_type='text/plain')

    def _scale(self, res: Res, obj: dict) -> dict:
        md = obj['metadata']
        sel = ((obj.get('spec') or {}).get('selector') or {}).get('matchLabels') or {}
        return {'kind': 'Scale', 'apiVersion': 'autoscaling/v1',
                'metadata': {k: md[k] for k in ('name', 'namespace', 'uid', 'resourceVersion',
                                                'creationTimestamp') if k in md},
                'spec': {'replicas': (obj.get('spec') or {}).get('replicas', 0)},
                'status': {'replicas': (obj.get('status') or {}).get('replicas', 0),
                           'selector': ','.join(f'{k}={v}' for k, v in sel.items())}}

    async def _watch(self, request: web.Request, res: Res, ns: str) -> web.StreamResponse:
        q = request.query
        lsel = parse_label_selector(q.get('labelSelector'))
        fsel = self._field_selector(res, q)
        timeout = float(q.get('timeoutSeconds') or 1800)
        rv_param = q.get('resourceVersion') or '0'
        initial = q.get('sendInitialEvents') == 'true'

        def wanted(obj: dict) -> bool:
            md = obj['metadata']
            return ((not ns or md.get('namespace') == ns) and labels_match(lsel, md.get('labels') or {})
                    and fields_match(fsel, obj))

        resp = web.StreamResponse(headers={'Content-Type': JSON, 'Transfer-Encoding': 'chunked'})
        await resp.prepare(request)

        async def send(etype: str, obj: dict) -> None:
            await resp.write(json.dumps({'type': etype, 'object': obj}).encode() + b'\n')

        try:
            if rv_param == '0' or initial:
                last = self.rv
                for o in self._list(res, ns, q)['items']:
                    await send('ADDED', o)
            else:
                last = int(rv_param)
            if initial:
                await send('BOOKMARK', {'kind': res.kind, 'apiVersion': res.gv, 'metadata': {
                    'resourceVersion': str(last), 'annotations': {'k8s.io/initial-events-end': 'true'}}})
            deadline = time.monotonic() + timeout
            while True:
                for rv, etype, gp, obj in self.events:
                    if rv > last and gp == (res.group, res.plural) and wanted(obj):
                        out = copy.deepcopy(obj)
                        out['apiVersion'] = res.gv
                        await send(etype, out)
                last = self.rv
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                async with self.cond:
                    try:
                        await asyncio.wait_for(self.cond.wait_for(lambda: self.rv > last), remaining)
                    except asyncio.TimeoutError:
                        break
            await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return resp


# --------------------------------------------------------------------------- running it
def kubeconfig(url: str, namespace: str = 'default', *, ca: str | None = None,
               token: str | None = 'kube-emu', cert: str | None = None, key: str | None = None) -> str:
    cluster: dict[str, Any] = {'server': url}
    if ca:
        cluster['certificate-authority'] = str(pathlib.Path(ca).resolve())
    user: dict[str, Any] = {'token': token} if token else {}
    if cert and key:
        user.update({'client-certificate': str(pathlib.Path(cert).resolve()),
                     'client-key': str(pathlib.Path(key).resolve())})
    return json.dumps({
        'apiVersion': 'v1', 'kind': 'Config', 'current-context': 'kube-emu',
        'clusters': [{'name': 'kube-emu', 'cluster': cluster}],
        'users': [{'name': 'kube-emu', 'user': user}],
        'contexts': [{'name': 'kube-emu', 'context': {'cluster': 'kube-emu', 'user': 'kube-emu',
                                                      'namespace': namespace}}],
    }, indent=2)


class EmulatorThread:
    """Run the emulator in a background thread (for pytest fixtures): `with EmulatorThread() as emu:`."""

    def __init__(self, port: int = 0, **kwargs: Any):
        self.port, self.kwargs = port, kwargs
        self.loop = asyncio.new_event_loop()
        self.emu: KubeEmulator | None = None
        self.url = ''

    def __enter__(self) -> 'EmulatorThread':
        started = threading.Event()

        async def boot() -> None:
            self.emu = KubeEmulator(**self.kwargs)
            self.runner = web.AppRunner(self.emu.app())
            await self.runner.setup()
            site = web.TCPSite(self.runner, '127.0.0.1', self.port)
            await site.start()
            self.url = f'http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}'

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(boot())
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        started.wait(30)
        return self

    def __exit__(self, *exc: Any) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def main(argv: list[str] | None = None) -> None:
    t0 = time.monotonic()
    ap = argparse.ArgumentParser(prog='kube_emu')
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--kubeconfig', help='write a kubeconfig pointing at the emulator here')
    ap.add_argument('--version', default='v1.33.0', help='what /version reports')
    ap.add_argument('--auto-ready', action='store_true', help='mark workloads ready / PVCs bound at once')
    ap.add_argument('--log', help='append one line per request to this file')
    tls = ap.add_argument_group('TLS and authentication (all off by default: plain HTTP, no checks)')
    tls.add_argument('--tls-cert', help='serve HTTPS with this certificate (PEM; may hold its chain)')
    tls.add_argument('--tls-key', help='the private key of --tls-cert')
    tls.add_argument('--tls-ca', help='the CA that signed --tls-cert, named in the --kubeconfig written '
                                      '(default: --tls-cert itself, for a self-signed one)')
    tls.add_argument('--client-ca', help='accept client certificates signed by this CA (PEM)')
    tls.add_argument('--require-client-cert', action='store_true',
                     help='refuse a TLS handshake without a client certificate signed by --client-ca')
    tls.add_argument('--token', action='append', default=[],
                     help='an accepted bearer token (repeatable); the first goes into --kubeconfig')
    tls.add_argument('--kubeconfig-cert', help='client certificate the --kubeconfig written uses')
    tls.add_argument('--kubeconfig-key', help='the key of --kubeconfig-cert')
    args = ap.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error('--tls-cert and --tls-key go together')
    if (args.client_ca or args.require_client_cert) and not args.tls_cert:
        ap.error('client certificates need --tls-cert/--tls-key')
    if args.require_client_cert and not args.client_ca:
        ap.error('--require-client-cert needs --client-ca')
    context = None
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        if args.client_ca:
            context.load_verify_locations(cafile=args.client_ca)
            context.verify_mode = ssl.CERT_REQUIRED if args.require_client_cert else ssl.CERT_OPTIONAL

    async def serve() -> None:
        emu = KubeEmulator(version=args.version, auto_ready=args.auto_ready,
                           log=pathlib.Path(args.log) if args.log else None,
                           tokens=args.token, client_certs=bool(args.client_ca))
        runner = web.AppRunner(emu.app())
        await runner.setup()
        site = web.TCPSite(runner, '127.0.0.1', args.port, ssl_context=context)
        await site.start()
        scheme = 'https' if context else 'http'
        url = f'{scheme}://127.0.0.1:{site._server.sockets[0].getsockname()[1]}'
        if args.kubeconfig:
            pathlib.Path(args.kubeconfig).write_text(kubeconfig(
                url, ca=(args.tls_ca or args.tls_cert) if context else None,
                token=args.token[0] if args.token else None if args.client_ca else 'kube-emu',
                cert=args.kubeconfig_cert, key=args.kubeconfig_key))
        print(f'READY {url} ({time.monotonic() - t0:.2f}s)', flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    main()
