"""``--from-manifests``: Kubernetes objects from files, folders (recursively) or stdin, as if from the API.

* A path may be a file, a folder (every ``*.yaml``, ``*.yml`` and ``*.json`` below it, in sorted order) or ``-``
  for stdin. Files hold YAML, multi-document YAML (``---``) or JSON.
* Expanding a folder skips hidden files and folders (a name starting with ``.``, at any depth below the folder):
  a Kubernetes ConfigMap or Secret volume holds every key as ``name -> ..data/name`` next to the ``..data``
  symlink and its ``..<timestamp>`` folder, which would otherwise be read three times; ``.git`` and editors'
  temporary files are skipped alike. A hidden file named on its own is read. Symlinked files are followed,
  symlinked folders below a folder are not (no loops); a folder given as a symlink is.
* ``List`` documents (``kind: List``, ``ServiceList``, ... as ``kubectl get -o yaml`` prints them) are expanded;
  items of a ``<Kind>List`` without a ``kind`` get ``<Kind>``.
* Service, Ingress, Node, Pod and EndpointSlice objects are kept - with their ``status`` - exactly as the API
  would serve them (timestamps stay strings, as in the API's JSON); a namespaced object without
  ``metadata.namespace`` is in ``default`` (as ``kubectl apply`` would put it). Other kinds are ignored (debug
  log). ``--namespace`` scopes the namespaced kinds, as the API list would.
* A file that can't be read or parsed, or a document that is not an object, raises :class:`ManifestError`
  whose one-line message names the file, the document index and the line.
* :func:`parse_file` (or :func:`parse_text`) reads one file on its own - what the folder watch
  (:mod:`syncer.kube.folder`) re-reads when a file changes; :func:`load` reads them all (``--once``) and stops at
  the first bad file.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

import structlog
import yaml

from syncer.model import KINDS, ClusterSnapshot, Obj

SUFFIXES = (".yaml", ".yml", ".json")
log = structlog.get_logger()


class _Loader(yaml.SafeLoader):
    """YAML as the API server would hand it over: timestamps stay strings (no ``datetime`` objects)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class ManifestError(ValueError):
    """A manifest that can't be used; the message is one line naming the file (and document/line)."""


def hidden(relative: str) -> bool:
    """Whether a path relative to a watched folder passes through a hidden name (``.git/x``, ``..data/a.yaml``)."""
    return any(part.startswith(".") for part in Path(relative).parts)


def is_manifest_name(name: str) -> bool:
    return name.lower().endswith(SUFFIXES)


def folder_files(folder: str) -> list[str]:
    """The manifest files below ``folder``, in sorted order: hidden names skipped, symlinked folders not entered."""
    found: list[Path] = []
    top = Path(folder)
    for here, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        base = top / os.path.relpath(here, folder)
        found += [base / f for f in files
                  if not f.startswith(".") and is_manifest_name(f) and os.path.isfile(os.path.join(here, f))]
    return [str(f) for f in sorted(found)]


def manifest_files(path: str) -> list[str]:
    """The files one ``--from-manifests`` value stands for (``-`` is stdin)."""
    if path == "-":
        return ["-"]
    p = Path(path)
    if p.is_dir():
        return folder_files(path)
    if p.is_file():
        return [str(p)]
    raise ManifestError(f"--from-manifests: {path}: no such file or directory")


def _documents(text: str, label: str) -> Iterator[tuple[int, int | None, Any]]:
    """(document index from 1, line from 1 or None, parsed document)."""
    if label.lower().endswith(".json"):
        try:
            yield 1, 1, json.loads(text)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"--from-manifests: {label}: line {exc.lineno}: invalid JSON: {exc.msg}") from None
        except RecursionError:
            raise ManifestError(f"--from-manifests: {label}: invalid JSON: nested too deeply") from None
        return
    index = 0
    try:
        loader = _Loader(text)
        try:
            while loader.check_node():
                index += 1
                node = loader.get_node()
                line = node.start_mark.line + 1 if node is not None else None
                yield index, line, loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except (ValueError, TypeError, RecursionError) as exc:  # e.g. a date like 2020-13-45 the loader can't build
        if isinstance(exc, ManifestError):
            raise
        raise ManifestError(f"--from-manifests: {label}: document {max(index, 1)}: invalid YAML value: "
                            f"{' '.join(str(exc).split()) or type(exc).__name__}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if mark is None:
            raise ManifestError(f"--from-manifests: {label}: document {max(index, 1)}: invalid YAML: {problem}") \
                from None
        raise ManifestError(f"--from-manifests: {label}: document {_document_at(text, mark.line)}, "
                            f"line {mark.line + 1}: invalid YAML: {problem}") from None


def _document_at(text: str, line: int) -> int:
    """The 1-based index of the YAML document that holds the 0-based ``line``."""
    lines = text.splitlines()[: line + 1]
    starts = [i for i, row in enumerate(lines) if row.startswith("---")]
    content_before_first = any(r.strip() and not r.lstrip().startswith("#") for r in lines[: starts[0]]) \
        if starts else True
    return len(starts) + (1 if content_before_first else 0) or 1


def _objects(doc: Any, label: str, index: int, line: int | None) -> Iterator[dict[str, Any]]:
    where = f"{label}: document {index}" + (f" (line {line})" if line else "")
    if doc is None:
        return
    if not isinstance(doc, dict):
        raise ManifestError(f"--from-manifests: {where}: not a Kubernetes object but a {type(doc).__name__}")
    kind = doc.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(doc.get("items"), list):
        item_kind = kind[:-4] or None
        for i, item in enumerate(doc["items"]):
            if not isinstance(item, dict):
                raise ManifestError(f"--from-manifests: {where}: item {i} is not an object")
            if item_kind and "kind" not in item:
                item = {"kind": item_kind, **item}
            yield item
        return
    yield doc


def read_text(path: str, stdin: TextIO | None = None) -> str:
    """The text of ``path`` (``-``: stdin); :class:`ManifestError` when it can't be read as UTF-8."""
    if path == "-":
        return (stdin or sys.stdin).read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"--from-manifests: {path}: cannot read: {exc}") from None


def label_of(path: str) -> str:
    """How a file is named in messages (``-`` is ``<stdin>``)."""
    return "<stdin>" if path == "-" else path


def parse_text(text: str, label: str, namespace: str | None = None) -> list[Obj]:
    """The usable objects of one file's ``text``, in file order (``label`` names it in errors and picks JSON by
    its ``.json`` suffix): kinds the sources read only, namespaced ones in ``default`` when unset and dropped
    outside ``namespace``. The whole file is refused with :class:`ManifestError` when any of it is bad."""
    objects: list[Obj] = []
    for index, line, doc in _documents(text, label):
        for obj in _objects(doc, label, index, line):
            usable = _usable(obj, label, namespace)
            if usable is not None:
                objects.append(usable)
    return objects


def parse_file(path: str, namespace: str | None = None, stdin: TextIO | None = None) -> list[Obj]:
    """:func:`parse_text` of the file at ``path`` (``-``: stdin); :class:`ManifestError` when it can't be read."""
    return parse_text(read_text(path, stdin), label_of(path), namespace)


def load(paths: Iterable[str], namespace: str | None = None, stdin: TextIO | None = None) -> ClusterSnapshot:
    """Every usable object in ``paths``, sorted into a snapshot; :class:`ManifestError` on a bad file."""
    snapshot = ClusterSnapshot()
    for path in paths:
        for file in manifest_files(path):
            for obj in parse_file(file, namespace, stdin):
                getattr(snapshot, KINDS[obj["kind"]].field).append(obj)
    return snapshot


def _usable(obj: Obj, label: str, namespace: str | None) -> Obj | None:
    kind = obj.get("kind")
    spec = KINDS.get(kind) if isinstance(kind, str) else None
    if spec is None:
        log.debug("manifest_object_ignored", file=label, kind=kind)
        return None
    if spec.namespaced:
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = {}
            obj = {**obj, "metadata": meta}
        if not meta.get("namespace"):
            obj = {**obj, "metadata": {**meta, "namespace": "default"}}
        if namespace is not None and spec.scoped and obj["metadata"]["namespace"] != namespace:
            return None
    return obj
