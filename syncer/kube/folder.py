"""``--from-manifests`` as a live source: the files and folders are watched, and each edit, new file or removed
file is handed over as the object changes it amounts to (GitOps for DNS).

:class:`ManifestWatch` has the :class:`skydns.listwatch.ListWatch` shape: ``load()`` reads every file, ``resume()``
follows file-system events (``watchfiles``, inotify on Linux), ``run()`` does both until cancelled. The rules:

* **What is read**: the files :func:`syncer.kube.manifests.manifest_files` names (hidden names skipped), parsed
  one file at a time by :func:`syncer.kube.manifests.parse_text` and kept as projections
  (:func:`syncer.kube.projection.project`). ``caches[kind][(namespace, name)]`` is the union over all files.
* **Two files, one object**: the file whose path sorts last wins, deterministically, and a warning
  (``manifest_duplicate_object``) names both; a file defining an object twice keeps the later document. When the
  winning file drops the object, the other file's copy takes over.
* **Changes**: only the files an event names are re-read, and a file is re-parsed only when its text changed;
  ``on_changes`` gets one :class:`syncer.kube.changes.ObjectChange` per object whose projection really changed
  (:func:`syncer.kube.projection.same`), so an edit of a field the projection drops is no change. A load is
  handed over as the diff against the caches it replaces (the first one: every object appears; after a failure
  that was not an outage, every object, since the consumer may have missed changes).
* **Bad files never delete records**: a file that can't be read or parsed keeps its last good objects (at start:
  contributes nothing, the other files load), is logged once per content as ``manifest_invalid`` (file, error
  with document and line), listed in ``invalid_files`` and :meth:`ManifestWatch.health`; once it parses again its
  objects apply and ``manifest_valid_again`` is logged. A file that is truncated to nothing is taken as a save in
  progress: it applies only if it is still empty ``EMPTY_GRACE`` seconds later (a generator that writes a
  file slowly, ``cmd > file``, should write a temporary file and rename it over, as the atomic save below).
* **Removed files**: a file removed from a watched folder (or moved out of it, or a folder removed below it)
  removes its objects; a new file adds its. A path named on the command line that disappears (a file, or a
  whole watched folder) keeps its objects and is reported like a bad file until it is back: deleting records
  takes an edit, not an unmount. At start every path must exist (else :class:`ManifestPathMissing`, retried like
  an unreachable source).
* **Atomic saves and swaps**: a save by rename (write a temporary file, ``os.replace`` it over, as editors and
  most tools do) is one change, and a file renamed or moved within the watched folders is none. A Kubernetes
  ConfigMap/Secret volume publishes by swapping its ``..data`` symlink to a new ``..<timestamp>`` folder; the
  events on those hidden names make the watch re-check the folder's symlinked files (by ``stat``: a swapped file
  has a new inode). A watched path that is itself a symlink, or lies under one (git-sync's ``/git/current/k8s``,
  whose ``current`` link is swapped to a new worktree), is followed: the watch re-arms on the new target and
  re-checks everything. Not followed: edits to a symlinked file's target outside the watched folders, made
  without touching the link.
* **No missed edits**: the watch is armed before the catch-up check that follows every (re)start, and a file
  checked by ``stat`` is re-read when its timestamps are within ``RACY_NS`` of the time it was last read, so an
  edit in the same clock tick as a read is not lost.
* ``-`` (stdin) is read once, at the first load, and not watched (logged at info); the other paths are.
* Files are often quiet for days and a watch has no keep-alives: :meth:`ManifestWatch.silent_for` is 0 while
  the watch is armed, and counts from the last event only while it is not.
* Latency: ``watchfiles`` reports a batch once the folder has been quiet for ``step_ms`` (at most
  ``debounce_ms`` after the first event); the defaults keep that to milliseconds.
"""

from __future__ import annotations

import asyncio
import os
import stat
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import structlog
from watchfiles import Change, awatch
from watchfiles._rust_notify import WatchfilesRustInternalError

from skydns.listwatch import ListWatch
from syncer.config import ANNOTATION_PREFIXES
from syncer.kube.changes import Key, ObjectChange, OnChanges
from syncer.kube.manifests import (
    ManifestError,
    folder_files,
    hidden,
    is_manifest_name,
    label_of,
    parse_text,
    read_text,
)
from syncer.kube.projection import object_key, project, same
from syncer.metrics import CACHED_OBJECTS
from syncer.model import KINDS, ClusterSnapshot, Obj

log = structlog.get_logger()

ObjectId = tuple[str, Key]  # (kind, (namespace, name))
Signature = tuple[int, int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns
WatchPlan = tuple[tuple[str, bool, tuple[int, int] | None], ...]  # (folder, recursive, (st_dev, st_ino))
FileEvents = set[tuple[Change, str]]

RACY_NS = 2_000_000_000  # a file changed this close to our read may have changed within the same timestamp tick
EMPTY_GRACE = 0.5  # seconds a file truncated to nothing may take to get its new content
STDIN = "-"


class ManifestPathMissing(ManifestError):
    """A path named for ``--from-manifests`` does not exist (yet) when the watch starts."""


@dataclass
class _Root:
    arg: str  # as given on the command line
    abs: str
    folder: bool


@dataclass
class _File:
    abs: str  # identity (and sort order: the later path wins)
    label: str  # as messages name it: the path as given plus the part below the folder
    named: bool  # named on its own on the command line
    sig: Signature | None = None
    read_ns: int = 0
    text: str | None = None
    parsed: bool = False  # whether ``text`` parsed
    objects: dict[ObjectId, Obj] = field(default_factory=dict)  # the last good ones
    logged_invalid: set[int] = field(default_factory=set)
    empty_since: float | None = None


class _StopFlag:
    """``awatch``'s ``stop_event``. The watch thread asks ``is_set()`` every step once it is watching, so the first
    question tells the event loop the watch is armed: every change from then on is reported."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.armed = asyncio.Event()
        self.error: Exception | None = None  # the watch could not be armed
        self._loop = loop
        self._stop = threading.Event()
        self._told = False

    def is_set(self) -> bool:
        if not self._told:
            self.arm()
        return self._stop.is_set()

    def arm(self) -> None:
        self._told = True
        self._loop.call_soon_threadsafe(self.armed.set)

    def set(self) -> None:
        self._stop.set()


def _signature(st: os.stat_result) -> Signature:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _existing_ancestor(path: str) -> str:
    here = os.path.dirname(path)
    while not os.path.isdir(here) and os.path.dirname(here) != here:
        here = os.path.dirname(here)
    return here


def _links_on(path: str) -> Iterator[str]:
    """``path`` and its ancestors that are symlinks."""
    here = path
    while os.path.dirname(here) != here:
        if os.path.islink(here):
            yield here
        here = os.path.dirname(here)


def _self_and_ancestors(path: str) -> Iterator[str]:
    yield path
    while os.path.dirname(path) != path:
        path = os.path.dirname(path)
        yield path


def _identity(folder: str) -> tuple[int, int] | None:
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _kind_order(object_id: ObjectId) -> tuple[int, Key]:
    return list(KINDS).index(object_id[0]), object_id[1]


class ManifestWatch(ListWatch):
    """The objects in ``paths`` (files, folders, ``-``), kept current as the files change (module docstring)."""

    what = "manifests"

    def __init__(self, paths: Sequence[str], *, namespace: str | None = None, on_changes: OnChanges | None = None,
                 annotation_prefixes: tuple[str, ...] = ANNOTATION_PREFIXES, debounce_ms: int = 20,
                 step_ms: int = 5, kinds: Iterable[str] = tuple(KINDS), stdin: TextIO | None = None,
                 backoff_max: float = 30.0) -> None:
        super().__init__(backoff_max=backoff_max)
        self.paths = list(paths)
        self.namespace = namespace
        self.on_changes = on_changes
        self.annotation_prefixes = annotation_prefixes
        self.debounce_ms = debounce_ms
        self.step_ms = step_ms
        self.kinds = tuple(kinds)
        self.what = "manifests " + ",".join(self.paths)
        self.caches: dict[str, dict[Key, Obj]] = {kind: {} for kind in self.kinds}
        self.invalid_files: dict[str, str] = {}  # file (as named in logs) -> why, with document and line
        self._stdin = stdin
        self._roots: list[_Root] = []
        self._files: dict[str, _File] = {}
        self._defined_by: dict[ObjectId, set[str]] = {}
        self._duplicates: dict[ObjectId, tuple[str, ...]] = {}
        self._queue: asyncio.Queue[FileEvents | BaseException] | None = None
        self._hand_over_all = False
        self._watching = False  # the watch is armed

    # -- ListWatch ------------------------------------------------------------------------------------------

    async def load(self) -> None:
        """Read every file again; hand over what changed against the caches."""
        if not self._roots:
            self._roots = self._resolve_roots()
        received = time.monotonic()
        touched = self._check_all(force=True)
        touched |= {(kind, key) for kind, cache in self.caches.items() for key in cache}
        self._emit(self._merge(touched, received, everything=self._hand_over_all))
        self._hand_over_all = False

    async def resume(self) -> None:
        """Watch until the set of watched folders must change (a symlink swapped, a folder gone or back)."""
        plan = self._watch_plan()
        if not plan:  # stdin only: nothing can change
            self.established()
            await asyncio.get_running_loop().create_future()
        queue: asyncio.Queue[FileEvents | BaseException] = asyncio.Queue()
        self._queue = queue
        loop = asyncio.get_running_loop()
        flags: list[_StopFlag] = []
        tasks: list[asyncio.Task[None]] = []
        for recursive in (True, False):
            folders = [folder for folder, rec, _ in plan if rec is recursive]
            if folders:
                flag = _StopFlag(loop)
                flags.append(flag)
                tasks.append(asyncio.create_task(self._pump(folders, recursive, flag, queue)))
        try:
            for flag in flags:
                await flag.armed.wait()
                if flag.error is not None:
                    raise flag.error
            self.established()
            self._watching = True
            self._emit(self._merge(self._check_all(force=False), time.monotonic()))
            while True:
                events = await self._next_batch(queue)
                if self._watch_plan() != plan:
                    log.info("manifest_watch_rearming", source=self.what)
                    return
                self._emit(self._apply(events, time.monotonic()))
        finally:
            self._queue = None
            self._watching = False
            for flag in flags:
                flag.set()
            await asyncio.gather(*tasks, return_exceptions=True)

    def transient(self, exc: BaseException) -> bool:
        """A path not there yet, or the watch failing (inotify limits, a folder vanishing as it was armed)."""
        return isinstance(exc, ManifestPathMissing | OSError | WatchfilesRustInternalError)

    def on_failure(self, exc: BaseException) -> None:
        if not self.transient(exc):
            self._hand_over_all = True  # the consumer may have missed what the failed attempt handed over

    def silent_for(self) -> float:
        return 0.0 if self._watching else super().silent_for()

    def health(self) -> dict[str, Any]:
        details = super().health()
        details["files"] = len(self._files)
        details["invalid_files"] = dict(self.invalid_files)
        return details

    # -- what the controller reads ---------------------------------------------------------------------------

    def snapshot(self) -> ClusterSnapshot:
        """The cached projections as a :class:`ClusterSnapshot` (for a full reconcile)."""
        snap = ClusterSnapshot()
        for kind, cache in self.caches.items():
            getattr(snap, KINDS[kind].field).extend(cache[key] for key in sorted(cache))
        return snap

    def _watch_plan(self) -> WatchPlan:
        """The folders to watch: each existing folder recursively; the folder holding each named file, each
        symlink on a path and each missing path's nearest existing ancestor without recursion."""
        recursive: set[str] = set()
        flat: set[str] = set()
        for root in self._roots:
            if root.abs == STDIN:
                continue
            if root.folder and os.path.isdir(root.abs):
                recursive.add(root.abs)
            else:
                flat.add(_existing_ancestor(root.abs))
            for link in _links_on(root.abs):
                flat.add(_existing_ancestor(link))
        recursive = {f for f in recursive if not any(f != o and _under(f, o) for o in recursive)}
        flat = {f for f in flat if not any(_under(f, o) for o in recursive)}
        return tuple(sorted([(f, True, _identity(f)) for f in recursive] + [(f, False, _identity(f)) for f in flat]))

    # -- watching -------------------------------------------------------------------------------------------

    async def _pump(self, folders: list[str], recursive: bool, flag: _StopFlag,
                    queue: asyncio.Queue[FileEvents | BaseException]) -> None:
        try:
            async for events in awatch(*folders, watch_filter=None, debounce=self.debounce_ms, step=self.step_ms,
                                       stop_event=flag, rust_timeout=0, recursive=recursive):
                queue.put_nowait(events)
        except Exception as exc:
            if flag.armed.is_set():
                queue.put_nowait(exc)
            else:
                flag.error = exc
        finally:
            flag.arm()

    async def _next_batch(self, queue: asyncio.Queue[FileEvents | BaseException]) -> FileEvents:
        events: FileEvents = set()
        item = await queue.get()
        while True:
            if isinstance(item, BaseException):
                raise item
            events |= item
            if queue.empty():
                self.heard()
                return events
            item = queue.get_nowait()

    def _recheck_later(self, file: _File) -> None:
        asyncio.get_running_loop().call_later(EMPTY_GRACE, self._poke, file.abs)

    def _poke(self, path: str) -> None:
        if self._queue is not None:
            self._queue.put_nowait({(Change.modified, path)})

    # -- roots and events -----------------------------------------------------------------------------------

    def _resolve_roots(self) -> list[_Root]:
        roots: list[_Root] = []
        for arg in self.paths:
            if arg == STDIN:
                roots.append(_Root(arg, STDIN, False))
                continue
            absolute = os.path.abspath(arg)
            if not os.path.exists(absolute):
                raise ManifestPathMissing(f"--from-manifests: {arg}: no such file or directory")
            roots.append(_Root(arg, absolute, os.path.isdir(absolute)))
        return roots

    def _apply(self, events: FileEvents, received: float) -> list[ObjectChange]:
        reread: dict[str, tuple[str, bool]] = {}  # abs -> (label, named)
        below: set[str] = set()  # folders whose known files are re-checked (moved, removed, added)
        links: set[int] = set()  # roots whose symlinked files are re-checked (a ..data swap)
        for change, raw in events:
            path = os.path.normpath(raw)
            for index, root in enumerate(self._roots):
                self._route(index, root, change, path, reread, below, links)
        touched: set[ObjectId] = set()
        for path, (label, named) in reread.items():
            touched |= self._check(path, label, named, force=True)
        for index in links:
            touched |= self._check_links(self._roots[index])
        if below:
            touched |= self._check_below(below)
        return self._merge(touched, received)

    def _route(self, index: int, root: _Root, change: Change, path: str, reread: dict[str, tuple[str, bool]],
               below: set[str], links: set[int]) -> None:
        if root.abs == STDIN:
            return
        if not root.folder:
            if path == root.abs:
                reread[path] = (root.arg, True)
            elif os.path.dirname(path) == os.path.dirname(root.abs) and os.path.islink(root.abs):
                links.add(index)
            return
        if path == root.abs or not _under(path, root.abs):
            return
        relative = os.path.relpath(path, root.abs)
        if hidden(relative):
            links.add(index)
        elif is_manifest_name(path) and not os.path.isdir(path) and (change != Change.deleted or path in self._files):
            reread[path] = (str(Path(root.arg) / relative), self._named(path))
        else:
            below.add(path)
            if os.path.isdir(path) and not os.path.islink(path):
                for found in folder_files(path):
                    reread[found] = (str(Path(root.arg) / os.path.relpath(found, root.abs)), self._named(found))

    def _named(self, path: str) -> bool:
        return any(not root.folder and root.abs == path for root in self._roots)

    # -- checking files -------------------------------------------------------------------------------------

    def _check_all(self, force: bool) -> set[ObjectId]:
        touched: set[ObjectId] = set()
        for root in self._roots:
            if root.abs == STDIN:
                touched |= self._read_stdin()
            elif not root.folder:
                touched |= self._check(root.abs, root.arg, True, force)
            elif not os.path.isdir(root.abs):
                self._invalid(root.arg, None, f"--from-manifests: {root.arg}: no such file or directory")
            else:
                self._valid(root.arg)
                touched |= self._check_folder(root, force)
        return touched

    def _check_folder(self, root: _Root, force: bool) -> set[ObjectId]:
        found = {path: str(Path(root.arg) / os.path.relpath(path, root.abs)) for path in folder_files(root.abs)}
        touched: set[ObjectId] = set()
        for path, file in list(self._files.items()):
            if _under(path, root.abs) and path not in found and not file.named and \
                    not any(r is not root and r.folder and _under(path, r.abs) for r in self._roots):
                touched |= self._forget(file)
        for path, label in found.items():
            touched |= self._check(path, label, self._named(path), force)
        return touched

    def _check_links(self, root: _Root) -> set[ObjectId]:
        touched: set[ObjectId] = set()
        for path, file in list(self._files.items()):
            if _under(path, root.abs) and os.path.islink(path):
                touched |= self._check(path, file.label, file.named, force=False)
        return touched

    def _check_below(self, folders: set[str]) -> set[ObjectId]:
        touched: set[ObjectId] = set()
        for path, file in list(self._files.items()):
            if any(folder in folders for folder in _self_and_ancestors(path)):
                touched |= self._check(path, file.label, file.named, force=True)
        return touched

    def _check(self, path: str, label: str, named: bool, force: bool) -> set[ObjectId]:
        """Re-read ``path`` when forced, new, or its ``stat`` changed (or is too recent to tell)."""
        file = self._files.get(path)
        try:
            st: os.stat_result | None = os.stat(path)
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):
            if file is None:
                return set()
            if file.named:
                self._invalid(file.label, None, f"--from-manifests: {file.label}: no such file or directory")
                return set()
            return self._forget(file)
        if file is None:
            file = self._files[path] = _File(path, label, named)
        elif not force and _signature(st) == file.sig and max(st.st_mtime_ns, st.st_ctime_ns) < file.read_ns - RACY_NS:
            return set()
        return self._read(file, st)

    def _read(self, file: _File, st: os.stat_result) -> set[ObjectId]:
        file.sig, file.read_ns = _signature(st), time.time_ns()
        try:
            text = read_text(file.abs)
        except ManifestError as exc:
            self._invalid(file.label, file, str(exc))
            return set()
        if text == file.text:
            if file.parsed:
                self._valid(file.label, file)  # back after a read error or going missing
            return set()
        if not text.strip() and file.objects and self._queue is not None:
            now = time.monotonic()
            file.empty_since = file.empty_since or now
            if now - file.empty_since < EMPTY_GRACE:
                self._recheck_later(file)
                return set()
        file.empty_since = None
        file.text = text
        try:
            objects = parse_text(text, file.label, self.namespace)
        except ManifestError as exc:
            file.parsed = False
            self._invalid(file.label, file, str(exc), hash(text))
            return set()
        file.parsed = True
        self._valid(file.label, file)
        return self._set_objects(file, self._project(objects, file.label))

    def _read_stdin(self) -> set[ObjectId]:
        if STDIN in self._files:
            return set()
        file = self._files[STDIN] = _File(STDIN, label_of(STDIN), True)
        log.info("manifest_stdin_not_watched", detail="read once; changes to the other paths are followed")
        try:
            file.text = read_text(STDIN, self._stdin)
            objects = parse_text(file.text, file.label, self.namespace)
        except ManifestError as exc:
            self._invalid(file.label, file, str(exc))
            return set()
        file.parsed = True
        return self._set_objects(file, self._project(objects, file.label))

    def _project(self, objects: list[Obj], label: str) -> dict[ObjectId, Obj]:
        out: dict[ObjectId, Obj] = {}
        for obj in objects:
            kind = obj["kind"]
            if kind not in self.caches:
                continue
            projection = project(obj, kind, self.annotation_prefixes)
            object_id = (kind, object_key(projection))
            if object_id in out:
                log.warning("manifest_duplicate_object", kind=kind, object="/".join(object_id[1]).lstrip("/"),
                            file=label, winner="the later document in the file")
            out[object_id] = projection
        return out

    def _set_objects(self, file: _File, objects: dict[ObjectId, Obj]) -> set[ObjectId]:
        touched = set(file.objects) | set(objects)
        for object_id in set(file.objects) - set(objects):
            self._defined_by[object_id].discard(file.abs)
            if not self._defined_by[object_id]:
                del self._defined_by[object_id]
        for object_id in objects:
            self._defined_by.setdefault(object_id, set()).add(file.abs)
        file.objects = objects
        return touched

    def _forget(self, file: _File) -> set[ObjectId]:
        touched = self._set_objects(file, {})
        del self._files[file.abs]
        self._valid(file.label)
        return touched

    def _invalid(self, label: str, file: _File | None, reason: str, content: int | None = None) -> None:
        if file is not None and content is not None:
            if content in file.logged_invalid:
                self.invalid_files[label] = reason
                return
            file.logged_invalid.add(content)
        elif self.invalid_files.get(label) == reason:
            return
        self.invalid_files[label] = reason
        kept = len(file.objects) if file is not None else sum(len(f.objects) for f in self._files.values()
                                                                if f.label.startswith(label))
        log.warning("manifest_invalid", file=label, error=reason, objects_kept=kept)

    def _valid(self, label: str, file: _File | None = None) -> None:
        if file is not None:
            file.logged_invalid.clear()
        if self.invalid_files.pop(label, None) is not None:
            log.info("manifest_valid_again", file=label)

    # -- the union over files -------------------------------------------------------------------------------

    def _merge(self, touched: set[ObjectId], received: float, everything: bool = False) -> list[ObjectChange]:
        changes: list[ObjectChange] = []
        for object_id in sorted(touched, key=_kind_order):
            kind, key = object_id
            definers = sorted(self._defined_by.get(object_id, ()), key=Path)
            self._warn_duplicates(object_id, definers)
            new = self._files[definers[-1]].objects[object_id] if definers else None
            cache = self.caches[kind]
            old = cache.get(key)
            if new is None:
                cache.pop(key, None)
            else:
                cache[key] = new
            if (everything and new is not None) or not same(old, new):
                changes.append(ObjectChange(kind, key, old, new, received))
        return changes

    def _warn_duplicates(self, object_id: ObjectId, definers: list[str]) -> None:
        labels = tuple(self._files[path].label for path in definers)
        if len(labels) < 2:
            self._duplicates.pop(object_id, None)
        elif self._duplicates.get(object_id) != labels:
            self._duplicates[object_id] = labels
            log.warning("manifest_duplicate_object", kind=object_id[0], object="/".join(object_id[1]).lstrip("/"),
                        winner=labels[-1], ignored=list(labels[:-1]))

    def _emit(self, changes: list[ObjectChange]) -> None:
        if not changes:
            return
        for kind in {change.kind for change in changes}:
            CACHED_OBJECTS.labels(kind).set(len(self.caches[kind]))
        log.debug("manifest_changes", source=self.what, changes=len(changes))
        if self.on_changes is not None:
            self.on_changes(changes)
