"""``--from-manifests``: Kubernetes objects from files, folders (recursively) or stdin, as if from the API.

* A path may be a file, a folder (every ``*.yaml``, ``*.yml`` and ``*.json`` below it, in sorted order) or ``-``
  for stdin. Files hold YAML, multi-document YAML (``---``) or JSON.
* ``List`` documents (``kind: List``, ``ServiceList``, ... as ``kubectl get -o yaml`` prints them) are expanded;
  items of a ``<Kind>List`` without a ``kind`` get ``<Kind>``.
* Service, Ingress, Node, Pod and EndpointSlice objects are kept - with their ``status`` - exactly as the API
  would serve them (timestamps stay strings, as in the API's JSON); a namespaced object without
  ``metadata.namespace`` is in ``default`` (as ``kubectl apply`` would put it). Other kinds are ignored (debug
  log). ``--namespace`` scopes the namespaced kinds, as the API list would.
* A file that can't be read or parsed, or a document that is not an object, raises :class:`ManifestError`
  whose one-line message names the file, the document index and the line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

import structlog
import yaml

from syncer.model import KINDS, ClusterSnapshot

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


def manifest_files(path: str) -> list[str]:
    """The files one ``--from-manifests`` value stands for (``-`` is stdin)."""
    if path == "-":
        return ["-"]
    p = Path(path)
    if p.is_dir():
        return [str(f) for f in sorted(p.rglob("*")) if f.is_file() and f.suffix.lower() in SUFFIXES]
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
    if path == "-":
        return (stdin or sys.stdin).read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"--from-manifests: {path}: cannot read: {exc}") from None


def load(paths: Iterable[str], namespace: str | None = None, stdin: TextIO | None = None) -> ClusterSnapshot:
    """Every usable object in ``paths``, sorted into a snapshot; :class:`ManifestError` on a bad file."""
    snapshot = ClusterSnapshot()
    for path in paths:
        for file in manifest_files(path):
            label = "<stdin>" if file == "-" else file
            text = read_text(file, stdin)
            for index, line, doc in _documents(text, label):
                for obj in _objects(doc, label, index, line):
                    _add(snapshot, obj, label, namespace)
    return snapshot


def _add(snapshot: ClusterSnapshot, obj: dict[str, Any], label: str, namespace: str | None) -> None:
    kind = obj.get("kind")
    spec = KINDS.get(kind) if isinstance(kind, str) else None
    if spec is None:
        log.debug("manifest_object_ignored", file=label, kind=kind)
        return
    if spec.namespaced:
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = {}
            obj = {**obj, "metadata": meta}
        if not meta.get("namespace"):
            obj = {**obj, "metadata": {**meta, "namespace": "default"}}
        if namespace is not None and obj["metadata"]["namespace"] != namespace:
            return
    getattr(snapshot, spec.field).append(obj)
