"""A fake Kubernetes API server for tests, speaking the real REST list/watch protocol over HTTP.

The official ``kubernetes`` Python client and real ``kubectl`` run against it unchanged.

Implemented, as the real API server does it:

* Discovery (``/api``, ``/api/v1``, ``/apis``, ``/apis/<group>[/<version>]``, ``/version``) for Service, Node,
  Pod, Namespace (core/v1), EndpointSlice (discovery.k8s.io/v1), Ingress, IngressClass (networking.k8s.io/v1),
  Lease (coordination.k8s.io/v1), Gateway, HTTPRoute, GRPCRoute, TLSRoute (gateway.networking.k8s.io/v1) and
  TCPRoute, UDPRoute (gateway.networking.k8s.io/v1alpha2), DNSEndpoint (externaldns.k8s.io/v1alpha1, with
  its ``/status`` subresource), in their all-namespaces and namespaced URL forms; a
  kind is served at its one version only.
* Lists: ``resourceVersion`` in ``metadata``, items without kind/apiVersion, ``labelSelector`` (``=``, ``==``,
  ``!=``, exists, ``!`` not-exists, ``in``, ``notin``), ``fieldSelector`` (``=``, ``==``, ``!=``, comma-separated
  terms AND-ed, on ``metadata.name``, ``metadata.namespace`` and a few per-kind fields: Service
  ``spec.clusterIP``/``spec.type``, Pod ``spec.nodeName``/``status.phase``, Namespace ``status.phase``; a
  missing field is ``""``, so ``status.phase!=Succeeded,status.phase!=Failed`` keeps phase-less Pods; other
  fields are 400 ``field label not supported``), ``limit``/``continue`` paging over a consistent
  snapshot, ``resourceVersionMatch=Exact`` (served from history), 410 Expired for compacted continue tokens
  and versions.
* Watches: chunked JSON lines, synthetic ADDED events for ``resourceVersion`` unset/``0``, replay of the
  history after ``resourceVersion=N``, a 410 ERROR event when N was compacted, ``timeoutSeconds``, BOOKMARKs
  (on demand and before a clean timeout end) with ``allowWatchBookmarks``, namespace/label/field filtering
  including the watch cache's ADDED/DELETED conversion when an object moves in or out of the selector.
* Single objects: GET, POST (201, 409 AlreadyExists), PUT (409 Conflict on a stale ``resourceVersion``),
  PATCH (JSON merge patch; strategic merge patch approximated: ``$setElementOrder``/``$patch: delete`` merge
  lists by key, other ``$`` directives dropped; server-side apply as a merge patch that creates if missing;
  JSON patch add/remove/replace/test), DELETE, and the ``/status`` subresource (only ``status`` changes;
  main-resource writes keep the old status). Errors are ``Status`` objects shaped like the real ones.
* A watch whose client hangs up is unregistered at once (``select`` on the connection and a wake-up pipe).
* Server-side tables (``Accept: ...;as=Table``) with the default Name/Created At columns, for ``kubectl get``.

Fault injection and assertions, on ``FakeKubeServer`` (thread-safe; each method's docstring states its rules):

* ``fail_requests(status, count, verb=, kind=, retry_after=, reason=, message=)`` / ``clear_failures()``:
  the next matching requests get an HTTP error with a real-looking ``Status`` (500 InternalError, 503
  ServiceUnavailable, 429 TooManyRequests with ``Retry-After``, 401 Unauthorized, 403 Forbidden in RBAC's
  words, ...). Note that the official client's urllib3 pool retries a GET, PUT or DELETE answered 429, 503 or
  413 *with* ``Retry-After`` by itself (up to 3 times, sleeping as told) before the caller sees an
  ``ApiException``; without ``retry_after`` the first error reaches the caller.
* Watch faults, each optionally for one kind and returning how many watches it hit: ``expire_watches``
  (ERROR 410 Expired, then a clean end), ``end_watches`` (clean end, optionally after a BOOKMARK),
  ``drop_watches`` (connection cut mid-stream), ``stall_watches``/``resume_watches`` (silence; the events
  committed meanwhile are lost to the stalled watch), besides ``compact()`` and ``send_bookmarks()``.
* ``request_log()`` of ``Request(method, path, params, verb, kind, status, time)`` records,
  ``count_requests(verb, kind, **params)`` and ``clear_log()``; ``requests`` keeps the raw (method, path).

Deliberately not implemented: authentication/authorization (any token is accepted; 401/403 only when
injected), admission (namespaces need not exist), protobuf, JSON patch's move/copy operations, deletecollection,
finalizers and graceful deletion, managedFields and apply conflicts, OpenAPI documents (``/openapi/v2`` and
``/openapi/v3`` answer 404; kubectl then needs ``--validate=false`` for create/apply/replace), watch
``sendInitialEvents`` beyond ADDED events plus the initial-events-end BOOKMARK, and periodic bookmarks.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import contextlib
import copy
import dataclasses
import http.client
import json
import queue
import re
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace or "" for cluster-scoped kinds, name)
Predicate = Callable[[Obj], bool]

SERVER_VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0", "gitCommit": "fakekube",
                  "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23",
                  "compiler": "gc", "platform": "linux/amd64"}
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
TABLE_MEDIA = "as=table"


@dataclass(frozen=True)
class Kind:
    kind: str
    group: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    has_status: bool = True
    fields: tuple[str, ...] = ()  # field selector paths beyond metadata.name / metadata.namespace
    returns_deleted: bool = False  # DELETE answers with the object, otherwise with a Success Status
    version: str = "v1"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def resource(self) -> str:
        """The name used in error messages: ``services`` or ``ingresses.networking.k8s.io``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


KINDS = (
    Kind("Service", "", "services", True, ("svc",), fields=("spec.clusterIP", "spec.type"),
         returns_deleted=True),
    Kind("Node", "", "nodes", False, ("no",)),
    Kind("Pod", "", "pods", True, ("po",), fields=("spec.nodeName", "status.phase"), returns_deleted=True),
    Kind("Namespace", "", "namespaces", False, ("ns",), fields=("status.phase",), returns_deleted=True),
    Kind("EndpointSlice", "discovery.k8s.io", "endpointslices", True, has_status=False),
    Kind("Ingress", "networking.k8s.io", "ingresses", True, ("ing",)),
    Kind("IngressClass", "networking.k8s.io", "ingressclasses", False, has_status=False),
    Kind("Lease", "coordination.k8s.io", "leases", True, has_status=False),
    Kind("Gateway", "gateway.networking.k8s.io", "gateways", True, ("gtw",)),
    Kind("HTTPRoute", "gateway.networking.k8s.io", "httproutes", True),
    Kind("GRPCRoute", "gateway.networking.k8s.io", "grpcroutes", True),
    Kind("TLSRoute", "gateway.networking.k8s.io", "tlsroutes", True),
    Kind("TCPRoute", "gateway.networking.k8s.io", "tcproutes", True, version="v1alpha2"),
    Kind("UDPRoute", "gateway.networking.k8s.io", "udproutes", True, version="v1alpha2"),
    Kind("DNSEndpoint", "externaldns.k8s.io", "dnsendpoints", True, version="v1alpha1"),
)
BY_KIND = {k.kind: k for k in KINDS}
BY_PLURAL = {(k.group, k.plural): k for k in KINDS}
GROUPS = sorted({k.group for k in KINDS if k.group})


def group_versions(group: str) -> list[str]:
    """The versions a group serves, newest (``v1``) first."""
    return sorted({k.version for k in KINDS if k.group == group}, key=lambda v: (v != "v1", v))


def kind_named(kind: str) -> Kind:
    if kind not in BY_KIND:
        raise ValueError(f"fakekube does not serve kind {kind!r}; known: {sorted(BY_KIND)}")
    return BY_KIND[kind]


def now_timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------- errors


class ApiError(Exception):
    """An error answered as a ``Status`` object, like the real server's."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details
        self.headers = headers or {}

    def status(self) -> Obj:
        body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                     "message": self.message, "reason": self.reason}
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def _details(kind: Kind, name: str) -> Obj:
    return {"name": name, **({"group": kind.group} if kind.group else {}), "kind": kind.plural}


def not_found(kind: Kind, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{kind.resource} "{name}" not found', _details(kind, name))


def already_exists(kind: Kind, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{kind.resource} "{name}" already exists', _details(kind, name))


def conflict(kind: Kind, name: str) -> ApiError:
    message = (f'Operation cannot be fulfilled on {kind.resource} "{name}": the object has been modified; '
               "please apply your changes to the latest version and try again")
    return ApiError(409, "Conflict", message, _details(kind, name))


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def no_such_resource() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def method_not_allowed() -> ApiError:
    message = "the server does not allow this method on the requested resource"
    return ApiError(405, "MethodNotAllowed", message, {})


def too_old(rv: int, oldest: int) -> ApiError:
    return ApiError(410, "Expired", f"too old resource version: {rv} ({oldest})")


def expired_continue() -> ApiError:
    return ApiError(410, "Expired", "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter.")


# ---------------------------------------------------------------------------------------------- selectors

_SET_TERM = re.compile(r"^([\w./-]+)\s+(in|notin)\s+\(([^()]*)\)$")
_EQ_TERM = re.compile(r"^([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)$")
_EXISTS_TERM = re.compile(r"^(!?)\s*([\w./-]+)$")


def _split_terms(text: str) -> list[str]:
    """Split a selector on the commas that are not inside ``( )``."""
    terms, depth, current = [], 0, ""
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += ch
    terms.append(current)
    return [t.strip() for t in terms if t.strip()]


def _label_requirement(term: str) -> Callable[[dict[str, str]], bool]:
    if m := _SET_TERM.match(term):
        key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
        if op == "in":
            return lambda labels: key in labels and labels[key] in values
        return lambda labels: labels.get(key) not in values
    if m := _EQ_TERM.match(term):
        key, op, value = m.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if m := _EXISTS_TERM.match(term):
        negate, key = m.group(1) == "!", m.group(2)
        return lambda labels: (key in labels) != negate
    raise bad_request(f"unable to parse requirement: {term!r}")


def label_selector(text: str) -> Predicate:
    requirements = [_label_requirement(term) for term in _split_terms(text)]
    return lambda obj: all(req(obj.get("metadata", {}).get("labels") or {}) for req in requirements)


def _field_value(obj: Obj, path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return json.dumps(value) if isinstance(value, bool) else ("" if value is None else str(value))


def field_selector(kind: Kind, text: str) -> Predicate:
    requirements = []
    for term in _split_terms(text):
        m = re.match(r"^([\w.]+)\s*(==|=|!=)\s*(.*)$", term)
        if not m:
            raise bad_request(f"invalid selector: {text!r}")
        path, op, value = m.groups()
        if path not in ("metadata.name", "metadata.namespace", *kind.fields):
            raise bad_request(f"field label not supported: {path}")
        requirements.append((path, op == "!=", value))
    return lambda obj: all((_field_value(obj, p) == v) != neg for p, neg, v in requirements)


# ---------------------------------------------------------------------------------------------- patches


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch; returns a new value and never mutates ``target``."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Kubernetes strategic merge patch, approximated without the type schema.

    Lists merge by key where kubectl says how (``$setElementOrder/<field>``), otherwise they are replaced.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        order = patch.get(f"$setElementOrder/{key}")
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and order is not None:
            result[key] = _merge_list(result.get(key) or [], value, order)
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def _merge_list(current: list[Any], patch: list[Any], order: list[Any]) -> list[Any]:
    if not all(isinstance(item, dict) for item in [*current, *patch, *order]):
        return copy.deepcopy(order)  # a primitive list: the order lists the final elements
    named = [k for item in [*order, *patch] for k in item if not k.startswith("$")]
    if not named:
        return copy.deepcopy(current)
    merge_key = named[0]
    old = {item.get(merge_key): item for item in current}
    new = {item.get(merge_key): item for item in patch}
    deleted = {k for k, item in new.items() if item.get("$patch") == "delete"}
    ordered = [entry[merge_key] for entry in order]
    merged = [strategic_merge_patch(old.get(k), new.get(k, {})) for k in ordered if k not in deleted]
    return merged + [item for k, item in old.items() if k not in ordered and k not in deleted]


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 JSON patch with the add, remove, replace and test operations."""
    if not isinstance(operations, list):
        raise bad_request("a JSON patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in operations:
        tokens = [t.replace("~1", "/").replace("~0", "~") for t in op.get("path", "").split("/")[1:]]
        try:
            parent = doc
            for token in tokens[:-1]:
                parent = parent[int(token)] if isinstance(parent, list) else parent[token]
            _json_patch_op(parent, tokens[-1], op)
        except (KeyError, IndexError, ValueError, TypeError) as err:
            raise ApiError(422, "Invalid", f"the JSON patch operation {op} failed: {err!r}") from None
    return doc


def _json_patch_op(parent: Any, token: str, op: Obj) -> None:
    index: Any = token
    if isinstance(parent, list):
        index = len(parent) if token == "-" else int(token)
    if op["op"] == "test":
        if parent[index] != op["value"]:
            raise ValueError(f"the value at {op['path']} is not {op['value']!r}")
    elif op["op"] == "remove":
        del parent[index]
    elif op["op"] == "replace":
        if isinstance(parent, dict) and index not in parent:
            raise KeyError(index)
        parent[index] = copy.deepcopy(op["value"])
    elif op["op"] == "add" and isinstance(parent, list):
        parent.insert(index, copy.deepcopy(op["value"]))
    elif op["op"] == "add":
        parent[index] = copy.deepcopy(op["value"])
    else:
        raise ValueError(f"unsupported operation {op['op']!r}")


# ---------------------------------------------------------------------------------------------- store


@dataclass
class Event:
    rv: int
    type: str  # ADDED, MODIFIED or DELETED
    kind: Kind
    obj: Obj  # the object after the change (for DELETED: the last state, with the deletion's resourceVersion)
    prev: Obj | None  # the object before the change


def _with_rv(obj: Obj, rv: int) -> Obj:
    out = copy.deepcopy(obj)
    out["metadata"]["resourceVersion"] = str(rv)
    return out


def watch_event(event: Event, matches: Predicate) -> tuple[str, Obj] | None:
    """What a watcher with this filter sees of a change, as the watch cache computes it."""
    now = event.type != "DELETED" and matches(event.obj)
    before = event.prev is not None and matches(event.prev)
    if now and before:
        return event.type, event.obj
    if now:
        return "ADDED", event.obj
    if before and event.prev is not None:
        return "DELETED", _with_rv(event.prev, event.rv) if event.type != "DELETED" else event.obj
    return None


DROP, STOP = "drop", "stop"  # control items on a watcher's queue


Item = tuple[str, Obj] | str  # an event or bookmark (type, object), or DROP / STOP


class Watcher:
    """One open watch: its handler thread takes events, bookmarks and control items from a queue.

    A socket pair wakes the handler, so that it can wait in ``select`` for new items and for the client
    hanging up at the same time: a watch the client abandoned does not stay registered.
    """

    def __init__(self, kind: Kind, matches: Predicate, bookmarks: bool) -> None:
        self.kind, self.matches, self.bookmarks = kind, matches, bookmarks
        self.queue: queue.SimpleQueue[Item] = queue.SimpleQueue()
        self.closed = threading.Event()
        self.stalled = False  # set and cleared under the store's lock; see FakeKubeServer.stall_watches
        self.last_rv = 0  # the newest resourceVersion queued to it (its start point until then)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_w.setblocking(False)

    def put(self, item: Item) -> None:
        if isinstance(item, tuple) and (rv := item[1].get("metadata", {}).get("resourceVersion")):
            self.last_rv = int(rv)
        self.queue.put(item)
        self.wake()

    def wake(self) -> None:
        with contextlib.suppress(OSError):  # the pair is full (so a wake-up is pending anyway) or closed
            self._wake_w.send(b"\0")

    def take(self) -> Iterator[Item]:
        """The items queued so far."""
        while True:
            try:
                yield self.queue.get_nowait()
            except queue.Empty:
                return

    def wait(self, client: socket.socket, timeout: float | None) -> bool:
        """Block until an item is queued (True) or the timeout passes (False); raise if the client left."""
        ready, _, _ = select.select([self._wake_r, client], [], [], timeout)
        if client in ready:  # a watch client sends nothing: this is the end of its connection
            raise ConnectionResetError("the watch client hung up")
        if ready:
            self._wake_r.recv(4096)
        return bool(ready)

    def close(self) -> None:
        self.closed.set()
        self._wake_r.close()
        self._wake_w.close()


class Store:
    """Objects by kind and key, the event history since the last compaction, and the open watches."""

    def __init__(self, first_rv: int = 100) -> None:
        self.cond = threading.Condition()
        self.rv = first_rv
        self.compacted_rv = first_rv  # history holds every event with rv > compacted_rv
        self.objects: dict[Kind, dict[Key, Obj]] = {k: {} for k in KINDS}
        self.history: list[Event] = []
        self.watchers: list[Watcher] = []

    # --- writes; every write stores a fresh object and never mutates a stored one

    def commit(self, kind: Kind, key: Key, new: Obj | None) -> Obj:
        """Store ``new`` (None deletes) under the next resourceVersion and tell the watchers."""
        with self.cond:
            self.rv += 1
            prev = self.objects[kind].get(key)
            if new is None:
                assert prev is not None
                new = _with_rv(prev, self.rv)
                del self.objects[kind][key]
                event = Event(self.rv, "DELETED", kind, new, prev)
            else:
                new["metadata"]["resourceVersion"] = str(self.rv)
                self.objects[kind][key] = new
                event = Event(self.rv, "MODIFIED" if prev else "ADDED", kind, new, prev)
            self.history.append(event)
            self._notify(event)
            return copy.deepcopy(new)

    def _notify(self, event: Event) -> None:
        for watcher in self.watchers:  # a stalled watch loses the event, as a dead connection would
            seen = watcher.kind is event.kind and not watcher.stalled and watch_event(event, watcher.matches)
            if seen:
                watcher.put(seen)

    def compact(self) -> None:
        with self.cond:
            self.history.clear()
            self.compacted_rv = self.rv

    # --- reads

    def get(self, kind: Kind, key: Key) -> Obj:
        with self.cond:
            if key not in self.objects[kind]:
                raise not_found(kind, key[1])
            return copy.deepcopy(self.objects[kind][key])

    def check_readable(self, rv: int) -> None:
        """ApiError unless the state at ``rv`` can be read: not in the future, not compacted away."""
        with self.cond:
            if rv > self.rv:
                cause = {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
                raise ApiError(504, "Timeout", f"Too large resource version: {rv}, current: {self.rv}",
                               {"causes": [cause], "retryAfterSeconds": 1})
            if rv < self.compacted_rv:
                raise too_old(rv, self.compacted_rv)

    def snapshot(self, kind: Kind, rv: int | None) -> tuple[int, dict[Key, Obj]]:
        """The objects of a kind as they were at ``rv`` (None: now), undoing the newer history."""
        with self.cond:
            if rv is None or rv == self.rv:
                return self.rv, dict(self.objects[kind])
            self.check_readable(rv)
            objects = dict(self.objects[kind])
            for event in reversed(self.history):
                if event.rv <= rv:
                    break
                if event.kind is kind:
                    self._undo(objects, event)
            return rv, objects

    @staticmethod
    def _undo(objects: dict[Key, Obj], event: Event) -> None:
        key = (event.obj["metadata"].get("namespace", ""), event.obj["metadata"]["name"])
        if event.prev is None:
            objects.pop(key, None)
        else:
            objects[key] = event.prev

    # --- watches

    def open_watch(self, watcher: Watcher, since: int | None) -> tuple[int, list[tuple[str, Obj]]]:
        """Register a watcher; return the current resourceVersion and the events it must see first."""
        with self.cond:
            if since is None:
                initial = [("ADDED", obj) for _, obj in sorted(self.objects[watcher.kind].items())
                           if watcher.matches(obj)]
            elif since < self.compacted_rv:
                raise too_old(since, self.compacted_rv)
            else:
                replay = (watch_event(e, watcher.matches) for e in self.history
                          if e.rv > since and e.kind is watcher.kind)
                initial = [seen for seen in replay if seen]
            watcher.last_rv = self.rv if since is None else max([since, *(int(obj["metadata"]["resourceVersion"])
                                                                          for _, obj in initial)])
            self.watchers.append(watcher)
            self.cond.notify_all()
            return self.rv, initial

    def close_watch(self, watcher: Watcher) -> int:
        """Unregister a watcher; return the resourceVersion every event it was sent is at or below."""
        with self.cond:
            if watcher in self.watchers:
                self.watchers.remove(watcher)
            watcher.close()
            self.cond.notify_all()
            return self.rv

    def select(self, kind: Kind | None, stalled: bool | None = False) -> list[Watcher]:
        """The open watches of ``kind`` (None: all) that are stalled or not (None: either); hold ``cond``."""
        return [w for w in self.watchers
                if (kind is None or w.kind is kind) and (stalled is None or w.stalled is stalled)]

    def wait_for_watches(self, count: int, timeout: float) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.watchers) == count, timeout):
                raise TimeoutError(f"{len(self.watchers)} watches open, waited for {count}")


def bookmark_object(kind: Kind, rv: int, initial_events_end: bool = False) -> Obj:
    metadata: Obj = {"resourceVersion": str(rv)}
    if initial_events_end:
        metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {"kind": kind.kind, "apiVersion": kind.api_version, "metadata": metadata}


# ---------------------------------------------------------------------------------------------- API logic


@dataclass(frozen=True)
class Route:
    kind: Kind
    namespace: str | None  # None: all namespaces (or a cluster-scoped kind)
    name: str | None = None
    subresource: str | None = None

    def key(self, name: str | None = None) -> Key:
        return (self.namespace or "", name or self.name or "")


def parse_route(path: str) -> Route | None:
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis" and parts[2] in group_versions(parts[1]):
        group, rest = parts[1], parts[3:]
    else:
        return None
    version = parts[1] if not group else parts[2]
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces" and (group, rest[2]) in BY_PLURAL:
        namespace, rest = rest[1], rest[2:]
    kind = BY_PLURAL.get((group, rest[0])) if 1 <= len(rest) <= 3 else None
    if kind is None or kind.version != version or (namespace is not None and not kind.namespaced):
        return None
    if namespace is None and kind.namespaced and len(rest) > 1:
        return None  # a namespaced object needs its namespace in the URL
    subresource = rest[2] if len(rest) == 3 else None
    if subresource is not None and (subresource != "status" or not kind.has_status):
        return None
    return Route(kind, namespace, rest[1] if len(rest) > 1 else None, subresource)


def truthy(value: str | None) -> bool:
    return value not in (None, "", "0", "false", "False")


def parse_rv(value: str | None) -> int | None:
    """A resourceVersion parameter; None for unset or "0" (meaning: any, start from the current state)."""
    if value in (None, "", "0"):
        return None
    try:
        return int(value)
    except ValueError:
        raise bad_request(f"invalid resource version: {value!r}") from None


def parse_body(raw: bytes) -> Any:
    """A request body: None when empty, else JSON."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as err:
        raise bad_request(f"the body is not JSON (the fake does not parse YAML): {err}") from None


def request_filter(route: Route, params: dict[str, str]) -> Predicate:
    labels = label_selector(params.get("labelSelector", ""))
    fields = field_selector(route.kind, params.get("fieldSelector", ""))
    namespace = route.namespace

    def matches(obj: Obj) -> bool:
        in_namespace = namespace is None or obj["metadata"].get("namespace") == namespace
        return in_namespace and labels(obj) and fields(obj)

    return matches


def _encode_continue(rv: int, key: Key) -> str:
    token = {"v": "meta.k8s.io/v1", "rv": rv, "start": key}
    return base64.urlsafe_b64encode(json.dumps(token).encode()).decode()


def _decode_continue(token: str) -> tuple[int, Key]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(data["rv"]), (data["start"][0], data["start"][1])
    except (ValueError, KeyError, IndexError, TypeError, binascii.Error):
        raise bad_request(f"invalid continue token: {token!r}") from None


def strip_type(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


def _list_start(store: Store, params: dict[str, str]) -> tuple[int | None, Key | None]:
    """Which resourceVersion a list reads at (None: now) and the key it continues after."""
    if token := params.get("continue"):
        at, after = _decode_continue(token)
        if at < store.compacted_rv:
            raise expired_continue()
        return at, after
    exact = params.get("resourceVersionMatch") == "Exact"
    return (parse_rv(params.get("resourceVersion")) if exact else None), None


_LIST_CACHE: dict[tuple[int, Any, ...], tuple[list[Key], list[Obj]]] = {}
_LIST_CACHE_LOCK = threading.Lock()


def _sorted_matches(store: Store, route: Route, params: dict[str, str], at: int | None
                    ) -> tuple[int, list[Key], list[Obj]]:
    """The matching objects of one (kind, resourceVersion, namespace, selectors), sorted by key - built once and
    kept for the pages that follow (a paged list would otherwise sort every object for every page)."""
    with store.cond:
        rv = store.rv if at is None else at
        cache_key = (id(store), route.kind.kind, rv, route.namespace, params.get("labelSelector", ""),
                     params.get("fieldSelector", ""))
        with _LIST_CACHE_LOCK:
            entry = _LIST_CACHE.get(cache_key)
        if entry is None:
            rv, objects = store.snapshot(route.kind, at)
        elif at is not None and at != store.rv:
            store.check_readable(at)
    if entry is None:
        matches = request_filter(route, params)
        pairs = [(key, obj) for key, obj in sorted(objects.items()) if matches(obj)]
        entry = ([k for k, _ in pairs], [o for _, o in pairs])
        with _LIST_CACHE_LOCK:
            if len(_LIST_CACHE) > 16:
                _LIST_CACHE.clear()
            _LIST_CACHE[cache_key] = entry
    return rv, entry[0], entry[1]


def list_objects(store: Store, route: Route, params: dict[str, str]) -> Obj:
    at, after = _list_start(store, params)
    rv, keys, objs = _sorted_matches(store, route, params, at)
    start = 0 if after is None else bisect.bisect_right(keys, after)
    items = objs[start:]
    metadata: Obj = {"resourceVersion": str(rv)}
    limit = int(params.get("limit") or 0)
    if 0 < limit < len(items):
        last = items[limit - 1]["metadata"]
        metadata["continue"] = _encode_continue(rv, (last.get("namespace", ""), last["name"]))
        if not params.get("labelSelector") and not params.get("fieldSelector"):
            metadata["remainingItemCount"] = len(items) - limit
        items = items[:limit]
    kind = route.kind
    return {"kind": f"{kind.kind}List", "apiVersion": kind.api_version, "metadata": metadata,
            "items": [strip_type(copy.deepcopy(obj)) for obj in items]}


def stamp(kind: Kind, obj: Obj, old: Obj | None) -> Obj:
    """Fill in what the server owns: kind, apiVersion, namespace, uid, creationTimestamp, generation."""
    obj = copy.deepcopy(obj)
    obj["kind"], obj["apiVersion"] = kind.kind, kind.api_version
    meta = obj.setdefault("metadata", {})
    if not kind.namespaced:
        meta.pop("namespace", None)
    meta.setdefault("uid", old["metadata"]["uid"] if old else str(uuid.uuid4()))
    meta.setdefault("creationTimestamp", old["metadata"]["creationTimestamp"] if old else now_timestamp())
    if "spec" in obj:
        generation = old["metadata"].get("generation", 1) if old else 1
        meta["generation"] = generation + 1 if old and old.get("spec") != obj["spec"] else generation
    return obj


def check_identity(route: Route, obj: Obj, name: str | None) -> Obj:
    """Reject a body whose namespace or name contradicts the URL; default the namespace from the URL."""
    meta = obj.setdefault("metadata", {})
    if route.kind.namespaced:
        if meta.get("namespace") not in (None, "", route.namespace):
            raise bad_request("the namespace of the provided object does not match the namespace sent on the "
                              "request")
        meta["namespace"] = route.namespace
    if name is not None and meta.get("name") not in (None, name):
        raise bad_request(f"the name of the object ({meta.get('name')}) does not match the name on the URL "
                          f"({name})")
    return obj


def create(store: Store, route: Route, body: Obj) -> Obj:
    if route.name is not None or (route.kind.namespaced and route.namespace is None):
        raise method_not_allowed()
    obj = check_identity(route, body, None)
    meta = obj["metadata"]
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
    if not meta.get("name"):
        message = f'{route.kind.kind} "" is invalid: metadata.name: Required value: name or generateName is '
        message += "required"
        raise ApiError(422, "Invalid", message, {"kind": route.kind.kind})
    for owned in ("uid", "creationTimestamp", "resourceVersion", "generation"):
        meta.pop(owned, None)
    if route.kind.has_status:
        obj.pop("status", None)
    with store.cond:
        if route.key(meta["name"]) in store.objects[route.kind]:
            raise already_exists(route.kind, meta["name"])
        return store.commit(route.kind, route.key(meta["name"]), stamp(route.kind, obj, None))


def update(store: Store, route: Route, body: Obj) -> Obj:
    """PUT: replace the object (or only its status); a stale metadata.resourceVersion is a Conflict."""
    assert route.name is not None
    obj = check_identity(route, body, route.name)
    with store.cond:
        old = store.get(route.kind, route.key())
        wanted = obj["metadata"].get("resourceVersion")
        if wanted and wanted != old["metadata"]["resourceVersion"]:
            raise conflict(route.kind, route.name)
        if route.subresource == "status":
            new = {**old, "status": obj.get("status")}
        else:
            new = {k: v for k, v in obj.items() if k != "status"} if route.kind.has_status else obj
            if route.kind.has_status and "status" in old:
                new["status"] = old["status"]
            new["metadata"] = {**new["metadata"], "uid": old["metadata"]["uid"],
                               "creationTimestamp": old["metadata"]["creationTimestamp"]}
        return store.commit(route.kind, route.key(), stamp(route.kind, new, old))


PATCHERS: dict[str, Callable[[Any, Any], Any]] = {
    "application/json-patch+json": json_patch,
    "application/merge-patch+json": merge_patch,
    "application/strategic-merge-patch+json": strategic_merge_patch,
    "application/apply-patch+yaml": merge_patch,
}


def _patcher(content_type: str, body: Any) -> Callable[[Any, Any], Any]:
    media = content_type.split(";")[0].strip()
    if media not in PATCHERS:
        raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                       f"accepted media types include: {', '.join(PATCHERS)}")
    expected = list if media == "application/json-patch+json" else dict
    if not isinstance(body, expected):
        raise bad_request(f"a {media} body must be a JSON {'array' if expected is list else 'object'}")
    return PATCHERS[media]


def patch(store: Store, route: Route, body: Any, content_type: str, params: dict[str, str]) -> Obj:
    """PATCH an object, or its status; a server-side apply creates it when missing."""
    assert route.name is not None
    patcher = _patcher(content_type, body)
    is_apply = content_type.startswith("application/apply-patch")
    if is_apply and not params.get("fieldManager"):
        raise bad_request("PATCH, fieldManager is required for apply requests")
    with store.cond:
        if is_apply and route.key() not in store.objects[route.kind]:
            return create(store, Route(route.kind, route.namespace), check_identity(route, body, route.name))
        patched = patcher(store.get(route.kind, route.key()), body)
        if route.subresource is None and route.kind.has_status:
            patched.pop("status", None)
        return update(store, route, patched)


def delete(store: Store, route: Route) -> Obj:
    if route.name is None:
        raise method_not_allowed()
    with store.cond:
        store.get(route.kind, route.key())
        gone = store.commit(route.kind, route.key(), None)
    if route.kind.returns_deleted:
        return gone
    details = {**_details(route.kind, route.name), "uid": gone["metadata"]["uid"]}
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


# ---------------------------------------------------------------------------------------------- discovery


def _resource_list(group: str, version: str = "v1") -> Obj:
    resources = []
    for kind in (k for k in KINDS if k.group == group and k.version == version):
        common = {"namespaced": kind.namespaced, "kind": kind.kind}
        resources.append({"name": kind.plural, "singularName": kind.kind.lower(), **common, "verbs": VERBS,
                          **({"shortNames": list(kind.short_names)} if kind.short_names else {})})
        if kind.has_status:
            resources.append({"name": f"{kind.plural}/status", "singularName": "", **common,
                              "verbs": ["get", "patch", "update"]})
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else "v1", "resources": resources}


def _group(group: str) -> Obj:
    versions = [{"groupVersion": f"{group}/{v}", "version": v} for v in group_versions(group)]
    return {"name": group, "versions": versions, "preferredVersion": versions[0]}


def discovery(path: str, host: str) -> Obj | None:
    path = path.rstrip("/")
    if path == "/version":
        return SERVER_VERSION
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]}
    if path == "/api/v1":
        return _resource_list("")
    if path == "/apis":
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group(g) for g in GROUPS]}
    for group in GROUPS:
        if path == f"/apis/{group}":
            return {"kind": "APIGroup", "apiVersion": "v1", **_group(group)}
        for version in group_versions(group):
            if path == f"/apis/{group}/{version}":
                return _resource_list(group, version)
    return None


def as_table(doc: Obj) -> Obj:
    """The server-side table kubectl asks for, with the default Name and Created At columns."""
    objects = doc.get("items", [doc])
    columns = [{"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0},
               {"name": "Created At", "type": "date", "format": "", "description": "Creation timestamp",
                "priority": 0}]
    rows = [{"cells": [o["metadata"]["name"], o["metadata"].get("creationTimestamp")],
             "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                        "metadata": o["metadata"]}} for o in objects]
    metadata = {k: v for k, v in doc["metadata"].items() if k in ("resourceVersion", "continue")}
    if "items" not in doc:
        metadata = {"resourceVersion": doc["metadata"].get("resourceVersion", "")}
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
            "columnDefinitions": columns, "rows": rows}


# ---------------------------------------------------------------------------------------------- fault injection

FORBIDDEN_USER = "system:serviceaccount:x:y"  # who an injected 403 says was refused
INJECTED_CAUSE = "fakekube: injected failure"

# Per HTTP status: the reason and the default message of an injected error, worded as the real server's.
INJECTED_ERRORS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "the server rejected our request for an unknown reason"),
    401: ("Unauthorized", "Unauthorized"),
    403: ("Forbidden", ""),  # worded per request by forbidden()
    404: ("NotFound", "the server could not find the requested resource"),
    405: ("MethodNotAllowed", "the server does not allow this method on the requested resource"),
    409: ("Conflict", "the server reported a conflict"),
    410: ("Expired", "The resourceVersion for the provided {verb} is too old."),
    413: ("RequestEntityTooLarge", "the request entity is too large"),
    415: ("UnsupportedMediaType", "the server was unable to handle the media type requested"),
    422: ("Invalid", "the server rejected our request due to an error in our request"),
    429: ("TooManyRequests", "Too many requests, please try again later."),
    500: ("InternalError", f"Internal error occurred: {INJECTED_CAUSE}"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: ("Timeout", "Timeout: request did not complete within requested timeout - context deadline exceeded"),
}


def request_verb(method: str, route: Route | None, params: dict[str, str]) -> str | None:
    """The authorization verb of a request, as RBAC sees it; None off the resource API (discovery, 404s)."""
    if route is None:
        return None
    if method == "GET":
        return "get" if route.name else "watch" if truthy(params.get("watch")) else "list"
    if method == "DELETE" and route.name is None:
        return "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method)


@dataclass(eq=False)
class Failure:
    """One ``fail_requests`` rule, and the handle it returns; read ``hits`` and ``remaining`` from it."""

    status: int
    remaining: int | None  # requests still to fail; None: until clear_failures()
    verb: str | None
    kind: str | None
    retry_after: int | None
    reason: str | None
    message: str | None
    hits: int = 0  # the requests it has answered

    def matches(self, verb: str, kind: Kind) -> bool:
        return self.verb in (None, verb) and self.kind in (None, kind.kind)

    def error(self, route: Route, verb: str) -> ApiError:
        """The Status this rule answers ``route`` with: the real wording unless reason/message override it."""
        default = _default_error(self.status, route, verb)
        details = dict(default.details or {})
        headers = {}
        if self.retry_after is not None:
            details["retryAfterSeconds"] = self.retry_after
            headers["Retry-After"] = str(self.retry_after)
        return ApiError(self.status, self.reason or default.reason, self.message or default.message,
                        details or None, headers)


def _default_error(status: int, route: Route, verb: str) -> ApiError:
    if status == 403:
        return forbidden(route, verb, FORBIDDEN_USER)
    if status == 404 and route.name:
        return not_found(route.kind, route.name)
    if status == 409 and route.name:
        return conflict(route.kind, route.name)
    if status == 500:
        return ApiError(500, "InternalError", INJECTED_ERRORS[500][1], {"causes": [{"message": INJECTED_CAUSE}]})
    reason, message = INJECTED_ERRORS.get(status, ("", http.client.responses.get(status, "error")))
    return ApiError(status, reason, message.format(verb=verb))


def forbidden(route: Route, verb: str, user: str) -> ApiError:
    """The RBAC authorizer's 403, word for word."""
    kind = route.kind
    resource = f"{kind.plural}/{route.subresource}" if route.subresource else kind.plural
    scope = f'in the namespace "{route.namespace}"' if route.namespace else "at the cluster scope"
    subject = f'{kind.resource} "{route.name}"' if route.name else kind.resource
    message = (f'{subject} is forbidden: User "{user}" cannot {verb} resource "{resource}" in API group '
               f'"{kind.group}" {scope}')
    details = _details(kind, route.name) if route.name else {**({"group": kind.group} if kind.group else {}),
                                                             "kind": kind.plural}
    return ApiError(403, "Forbidden", message, details)


@dataclass(frozen=True)
class Request:
    """One request as ``FakeKubeServer.request_log()`` records it, when it is answered."""

    method: str
    path: str  # without the query string
    params: dict[str, str]  # the query parameters (the last value of a repeated one)
    verb: str | None  # see request_verb(); None off the resource API
    kind: str | None  # "Service", "Ingress", ...; None off the resource API
    status: int | None  # the HTTP status answered (200 for a watch stream); None if no answer was sent
    time: float  # time.monotonic() when the request arrived

    def matches(self, verb: str | None, kind: str | None, params: dict[str, Any]) -> bool:
        """Whether it has this verb and kind (None: any) and these parameters (None: absent)."""
        return (verb in (None, self.verb) and kind in (None, self.kind)
                and all(self.params.get(k) == (None if v is None else str(v)) for k, v in params.items()))


# ---------------------------------------------------------------------------------------------- HTTP


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    _pending: Request | None = None  # the request being handled, until it is logged with its status

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self, method: str) -> None:
        fake = self.server.fake
        fake.requests.append((method, self.path))
        url = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        route = parse_route(url.path)
        verb = request_verb(method, route, params)
        self._pending = Request(method, url.path, dict(params), verb, route.kind.kind if route else None, None,
                                time.monotonic())
        try:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if route is not None and verb is not None and (failure := fake._take_failure(verb, route.kind)):
                raise failure.error(route, verb)
            self._dispatch(method, url.path, route, params, parse_body(raw))
        except ApiError as err:
            self._send_json(err.code, err.status(), err.headers)
        except OSError:  # the client went away, or drop_watches() cut the connection
            self.close_connection = True
        except Exception as err:  # a bug in the fake: answer it rather than hang the client
            self._send_json(500, ApiError(500, "InternalError", f"fakekube: {err!r}").status())
        finally:
            self._log(None)

    def send_response(self, code: int, message: str | None = None) -> None:
        self._log(code)
        super().send_response(code, message)

    def _log(self, status: int | None) -> None:
        """Log the request being handled with the status it is answered with, once."""
        if self._pending is not None:
            self.server.fake._log_request(dataclasses.replace(self._pending, status=status))
            self._pending = None

    def _dispatch(self, method: str, path: str, route: Route | None, params: dict[str, str], body: Any) -> None:
        store = self.server.fake.store
        if method == "GET" and (doc := discovery(path, self.headers.get("Host", ""))) is not None:
            return self._send_json(200, doc)
        if route is None:
            raise no_such_resource()
        if method == "GET" and route.name is None and truthy(params.get("watch")):
            return self._watch(route, params)
        if method == "GET":
            doc = store.get(route.kind, route.key()) if route.name else list_objects(store, route, params)
            return self._send_json(200, as_table(doc) if TABLE_MEDIA in self._accept() else doc)
        if method == "DELETE":
            return self._send_json(200, delete(store, route))
        if method == "PATCH" and route.name is not None and body is not None:
            content_type = self.headers.get("Content-Type", "")
            return self._send_json(200, patch(store, route, body, content_type, params))
        if not isinstance(body, dict):
            raise bad_request("the request needs a JSON object as its body")
        if method == "POST":
            return self._send_json(201, create(store, route, body))
        if method == "PUT" and route.name is not None:
            return self._send_json(200, update(store, route, body))
        raise method_not_allowed()

    def _accept(self) -> str:
        return self.headers.get("Accept", "").replace(" ", "").lower()

    def _send_json(self, code: int, doc: Obj, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    # --- watch streaming

    def _watch(self, route: Route, params: dict[str, str]) -> None:
        store = self.server.fake.store
        bookmarks = truthy(params.get("allowWatchBookmarks"))
        watcher = Watcher(route.kind, request_filter(route, params), bookmarks)
        timeout = float(params["timeoutSeconds"]) if params.get("timeoutSeconds") else None
        self.close_connection = True
        self._log(200)  # before the watch is registered: once wait_for_watches() returns, it is in the log
        try:
            rv, initial = store.open_watch(watcher, parse_rv(params.get("resourceVersion")))
            self._start_stream()
            for event_type, obj in initial:
                self._send_event(event_type, obj)
            if truthy(params.get("sendInitialEvents")) and watcher.bookmarks:
                self._send_event("BOOKMARK", bookmark_object(route.kind, rv, initial_events_end=True))
            self._pump(watcher, None if timeout is None else time.monotonic() + timeout)
        except ApiError as err:
            if err.code != 410:
                raise
            self._start_stream()  # an expired resourceVersion is an ERROR event in a 200 stream
            self._send_event("ERROR", err.status())
            self._end_stream()
        finally:
            store.close_watch(watcher)

    def _pump(self, watcher: Watcher, deadline: float | None) -> None:
        """Forward queued events until the deadline, a STOP (clean end) or a DROP (abrupt close)."""
        for item in self._queued(watcher, deadline):
            if item == DROP:
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if item == STOP:
                return self._end_stream()
            self._send_event(*item)
        last_rv = self.server.fake.store.close_watch(watcher)
        for item in watcher.take():
            if isinstance(item, tuple):
                self._send_event(*item)
        if watcher.bookmarks:
            self._send_event("BOOKMARK", bookmark_object(watcher.kind, last_rv))
        self._end_stream()

    def _queued(self, watcher: Watcher, deadline: float | None) -> Iterator[Item]:
        """The items of a watch as they come; a stalled watch does not time out (its client would not know)."""
        while True:
            yield from watcher.take()
            remaining = None if deadline is None or watcher.stalled else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            watcher.wait(self.connection, remaining)  # then look again: it may have been stalled meanwhile

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _send_event(self, event_type: str, obj: Obj) -> None:
        line = json.dumps({"type": event_type, "object": obj}).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 makes a burst of connections wait out a 1 s SYN retry

    def __init__(self, fake: FakeKubeServer) -> None:
        self.fake = fake
        self.open_sockets: set[socket.socket] = set()
        self.handler_threads: set[threading.Thread] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.handler_threads.add(threading.current_thread())
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.sockets_lock:
                self.open_sockets.discard(request)
                self.handler_threads.discard(threading.current_thread())

    def close_connections(self, timeout: float) -> None:
        """Cut every connection (idle keep-alive ones block their handler thread) and join the threads."""
        with self.sockets_lock:
            sockets, threads = list(self.open_sockets), list(self.handler_threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(timeout)


# ---------------------------------------------------------------------------------------------- public API


class FakeKubeServer:
    """A Kubernetes API server fake on 127.0.0.1; use ``with FakeKubeServer() as kube: ...``."""

    def __init__(self) -> None:
        self.store = Store()
        self.requests: list[tuple[str, str]] = []  # (method, path with query), as they arrive
        self._lock = threading.Lock()  # guards the request log and the failure rules
        self._log: list[Request] = []
        self._failures: list[Failure] = []
        self._http: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle

    def start(self) -> FakeKubeServer:
        self._http = _HTTPServer(self)
        self._thread = threading.Thread(target=self._http.serve_forever, args=(0.05,), name="fakekube",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._http is None:
            return
        self._signal(None, lambda _: [STOP], stalled=None)
        self._http.shutdown()
        self._http.close_connections(timeout=5)
        self._http.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._http = None

    def __enter__(self) -> FakeKubeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._http is not None, "the server is not started"
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    def write_kubeconfig(self, path: str | Path) -> Path:
        """Write a kubeconfig (JSON, which is YAML) pointing at this server, for the client and kubectl."""
        config = {"apiVersion": "v1", "kind": "Config", "current-context": "fakekube", "preferences": {},
                  "clusters": [{"name": "fakekube", "cluster": {"server": self.url}}],
                  "users": [{"name": "fakekube", "user": {"token": "fakekube-token"}}],
                  "contexts": [{"name": "fakekube", "context": {"cluster": "fakekube", "user": "fakekube",
                                                                "namespace": "default"}}]}
        path = Path(path)
        path.write_text(json.dumps(config, indent=2))
        return path

    # --- state, as a controller or kubectl would change it

    def apply(self, obj: Obj) -> Obj:
        """Create or replace an object by (kind, namespace, name), status included; returns what is stored."""
        kind = kind_named(obj["kind"])
        if obj.get("apiVersion", kind.api_version) != kind.api_version:
            raise ValueError(f"{kind.kind} is served as {kind.api_version}, not {obj['apiVersion']}")
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if kind.namespaced:
            meta["namespace"] = meta.get("namespace") or "default"
        key = (meta.get("namespace", "") if kind.namespaced else "", meta["name"])
        with self.store.cond:
            return self.store.commit(kind, key, stamp(kind, obj, self.store.objects[kind].get(key)))

    def delete(self, kind: str, name: str, namespace: str | None = None) -> Obj:
        """Delete an object (namespace default "default"); returns its last state; ApiError 404 if missing."""
        k = kind_named(kind)
        key = ((namespace or "default") if k.namespaced else "", name)
        with self.store.cond:
            self.store.get(k, key)
            return self.store.commit(k, key, None)

    def get(self, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        """The stored object, or None."""
        k = kind_named(kind)
        try:
            return self.store.get(k, ((namespace or "default") if k.namespaced else "", name))
        except ApiError:
            return None

    @property
    def resource_version(self) -> str:
        """The newest resourceVersion (what a list now would return)."""
        return str(self.store.rv)

    def compact(self) -> None:
        """Forget the history: watches, exact lists and continue tokens from before now get 410 Expired."""
        self.store.compact()

    # --- watches

    def wait_for_watches(self, count: int = 1, timeout: float = 5.0) -> None:
        """Block until exactly ``count`` watches are open: events written after this reach them live."""
        self.store.wait_for_watches(count, timeout)

    @property
    def open_watches(self) -> int:
        with self.store.cond:
            return len(self.store.watchers)

    def send_bookmarks(self) -> int:
        """Send a BOOKMARK at the current resourceVersion on each bookmark-enabled, unstalled watch; count them."""
        with self.store.cond:
            watchers = [w for w in self.store.select(None) if w.bookmarks]
            for watcher in watchers:
                watcher.put(("BOOKMARK", bookmark_object(watcher.kind, self.store.rv)))
            return len(watchers)

    def end_watches(self, kind: str | None = None, *, bookmark: bool = False, timeout: float = 5.0) -> int:
        """End each open watch (of ``kind``) cleanly, as ``timeoutSeconds`` does; returns how many.

        The events committed before the call are sent first; with ``bookmark=True`` a watch that allows
        bookmarks then gets a BOOKMARK at the current resourceVersion. Stalled watches are left alone.
        """
        def items(watcher: Watcher) -> list[Item]:
            if bookmark and watcher.bookmarks:
                return [("BOOKMARK", bookmark_object(watcher.kind, self.store.rv)), STOP]
            return [STOP]

        return self._signal(kind, items, timeout=timeout)

    def expire_watches(self, kind: str | None = None, *, timeout: float = 5.0) -> int:
        """Send each open watch (of ``kind``) an ERROR event with a 410 Expired Status, then end it cleanly.

        This is what a watch gets when the server can no longer follow it. The message is
        ``too old resource version: N (M)``: N is the newest resourceVersion the watch was sent (where it
        started, if none), M the current one. Only the open watches are told: call ``compact()`` as well for
        a re-watch from N to get 410 too (forcing a relist). Stalled watches are left alone; returns how
        many watches got the ERROR.
        """
        return self._signal(kind, lambda w: [("ERROR", too_old(w.last_rv, self.store.rv).status()), STOP],
                            timeout=timeout)

    def drop_watches(self, kind: str | None = None, *, timeout: float = 5.0) -> int:
        """Cut each open watch connection (of ``kind``, stalled ones too) without ending the chunked stream.

        The client sees the connection reset mid-stream; returns how many were cut.
        """
        return self._signal(kind, lambda _: [DROP], stalled=None, timeout=timeout)

    def stall_watches(self, kind: str | None = None) -> int:
        """Hang each open watch (of ``kind``): connected, but sent nothing more until ``resume_watches()``.

        As on a dead TCP connection, the events committed meanwhile are lost to a stalled watch for good (they
        are not sent on resume), no BOOKMARK reaches it, and its ``timeoutSeconds`` end is held back.
        ``end_watches``/``expire_watches`` skip it; ``drop_watches`` and ``stop`` still close it. A client
        must notice the silence with a read timeout, drop the connection and re-watch from its
        resourceVersion, which replays what it missed. Watches opened later are not stalled. Returns how many
        watches were stalled by this call.
        """
        with self.store.cond:
            watchers = self.store.select(self._kind(kind))
            for watcher in watchers:
                watcher.stalled = True
            return len(watchers)

    def resume_watches(self, kind: str | None = None) -> int:
        """Let the stalled watches (of ``kind``) receive the events committed from now on; returns how many."""
        with self.store.cond:
            watchers = self.store.select(self._kind(kind), stalled=True)
            for watcher in watchers:
                watcher.stalled = False
                watcher.wake()  # a watch whose timeoutSeconds passed meanwhile now ends
            return len(watchers)

    def _signal(self, kind: str | None, items: Callable[[Watcher], list[Item]], stalled: bool | None = False,
                timeout: float = 5.0) -> int:
        """Queue ``items(watcher)`` on the selected watches at once, then wait until they closed."""
        with self.store.cond:
            watchers = self.store.select(self._kind(kind), stalled)
            for watcher in watchers:
                for item in items(watcher):
                    watcher.put(item)
        for watcher in watchers:
            watcher.closed.wait(timeout)
        return len(watchers)

    @staticmethod
    def _kind(kind: str | None) -> Kind | None:
        return None if kind is None else kind_named(kind)

    # --- injected failures

    def fail_requests(self, status: int, count: int | None = 1, *, verb: str | None = None,
                      kind: str | None = None, retry_after: int | None = None, reason: str | None = None,
                      message: str | None = None) -> Failure:
        """Answer the next ``count`` matching requests (None: all until ``clear_failures()``) with an error.

        A request matches when its verb (one of VERBS; None: any) and kind (``"Service"``...; None: any)
        match; discovery is never failed. The rules are tried in the order they were registered and the first
        match answers, before the request touches the store. The answer is an HTTP ``status`` with a
        ``Status`` body worded as the real server's (INJECTED_ERRORS; a 403 names FORBIDDEN_USER and the
        verb, resource and scope as RBAC does; a named 404/409 names the object); ``reason``/``message``
        replace the defaults. ``retry_after`` adds the ``Retry-After: N`` header and
        ``details.retryAfterSeconds``. A watch fails with the HTTP status, before its stream starts.
        Returns the rule, whose ``hits`` count the requests it failed.
        """
        if verb is not None and verb not in VERBS:
            raise ValueError(f"verb must be one of {VERBS} or None, not {verb!r}")
        if not 400 <= status <= 599 or (status not in INJECTED_ERRORS and reason is None):
            raise ValueError(f"HTTP {status}: pass a 4xx/5xx status known to INJECTED_ERRORS, or a reason")
        if count is not None and count < 1:
            raise ValueError("count must be at least 1, or None")
        self._kind(kind)  # an unknown kind is a ValueError
        failure = Failure(status, count, verb, kind, retry_after, reason, message)
        with self._lock:
            self._failures.append(failure)
        return failure

    def clear_failures(self) -> None:
        """Forget every fail_requests() rule; requests succeed again."""
        with self._lock:
            self._failures.clear()

    def _take_failure(self, verb: str, kind: Kind) -> Failure | None:
        """The first rule matching a request, which it consumes one use of."""
        with self._lock:
            for failure in self._failures:
                if failure.matches(verb, kind):
                    failure.hits += 1
                    if failure.remaining is not None:
                        failure.remaining -= 1
                        if failure.remaining == 0:
                            self._failures.remove(failure)
                    return failure
        return None

    # --- request log

    def request_log(self) -> list[Request]:
        """The requests answered so far (since ``clear_log()``), in the order their answers started."""
        with self._lock:
            return list(self._log)

    def count_requests(self, verb: str | None = None, kind: str | None = None, **params: Any) -> int:
        """How many logged requests have this verb and kind (None: any) and these query parameters.

        A parameter given as None must be absent; other values are compared as strings, so
        ``count_requests("watch", "Service", resourceVersion=105)`` counts the re-watches from 105.
        """
        return sum(r.matches(verb, kind, params) for r in self.request_log())

    def clear_log(self) -> None:
        """Empty the request log and ``requests``."""
        with self._lock:
            self._log.clear()
            self.requests.clear()

    def _log_request(self, request: Request) -> None:
        with self._lock:
            self._log.append(request)
